"""The wheel carries what users need offline:
the schema, the registry index generated at build time, the CLI entry point."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("dist")
    path = next(iter(WheelBuilder(str(REPO)).build(directory=str(out), versions=["standard"])))
    return zipfile.ZipFile(path)


def test_wheel_ships_schema_and_registry_index(wheel):
    names = set(wheel.namelist())
    assert {"swindex/data/entry.schema.json", "swindex/data/registry.json"} <= names


def test_wheel_declares_the_cli(wheel):
    entry_points = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "swindex = swindex.cli:main" in wheel.read(entry_points).decode()


def test_wheel_ships_the_typing_marker(wheel):
    assert "swindex/py.typed" in wheel.namelist()


def test_the_version_is_the_installed_distributions():
    from importlib.metadata import version

    import swindex

    assert swindex.__version__ == version("swindex")


def test_a_checkout_that_was_never_installed_reads_its_version_from_pyproject():
    import subprocess
    import sys

    tomllib = pytest.importorskip("tomllib")
    expected = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    code = (
        "import importlib.metadata as m\n"
        "def missing(name): raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import swindex; print(swindex.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert out.strip() == expected


def _run_time_nodes(tree):
    """The nodes of a module that can run: everything outside ``if TYPE_CHECKING:`` blocks (imports a type checker
    alone reads, such as typing_extensions for a Python older than the one running, are no requirement)."""
    import ast

    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _imported_distributions(*folders: str) -> dict[str, set[str]]:
    """{distribution: files} for every third-party module the code under ``folders`` imports when it runs."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in _run_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("swindex", "builder"):
                        continue
                    for dist in owners.get(top, [top]):
                        found.setdefault(_normal(dist), set()).add(str(path.relative_to(REPO)))
    return found


def _normal(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    """Distributions the package declares: core and every extra but dev."""
    import re

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra, listed in project["optional-dependencies"].items():
        requirements += listed if extra != "dev" else []
    return {_normal(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


def test_every_module_the_package_and_builder_import_is_declared():
    declared = _declared()
    missing = {
        dist: sorted(files)
        for dist, files in _imported_distributions("swindex", "builder").items()
        if dist not in declared
    }
    optional = {"rich"}  # builder/summary.py uses it when installed and prints plain text otherwise
    assert {d: f for d, f in missing.items() if d not in optional} == {}


def test_every_declared_requirement_is_imported():
    unused = _declared() - set(_imported_distributions("swindex", "builder"))
    assert unused == {"mkdocs-material"}  # the site's theme: mkdocs.yml names it, no code imports it


def test_wheel_core_requirements_stay_small(wheel):
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(line.split()[1].split(">")[0].split("<")[0].split("=")[0].lower() for line in core) == [
        "jsonschema",
        "pyyaml",
    ]


def test_the_wheels_index_is_generated_from_the_registry_when_built(wheel):
    from swindex.registry import render_index

    assert wheel.namelist().count("swindex/data/registry.json") == 1
    assert wheel.read("swindex/data/registry.json").decode("utf-8") == render_index(REPO / "registry")


def test_no_generated_index_is_tracked_by_git():
    import subprocess

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an unpacked sdist)")
    tracked = subprocess.run(
        ["git", "ls-files", "swindex/data"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "swindex/data/registry.json" not in tracked, (
        "git rm --cached swindex/data/registry.json: the wheel builds it"
    )
    ignored = subprocess.run(["git", "check-ignore", "-q", "swindex/data/registry.json"], cwd=REPO)
    assert ignored.returncode == 0, ".gitignore must keep `swindex index` output out of commits"


def _project_copy(root: Path, registry: Path) -> Path:
    """The packaging-relevant files of this checkout, with another registry: what a wheel is built from."""
    import shutil

    skip = shutil.ignore_patterns("__pycache__", "registry.json", "*.pyc")
    root.mkdir(parents=True)
    for name in ("pyproject.toml", "hatch_build.py", "README.md", "mkdocs.yml"):
        shutil.copy2(REPO / name, root / name)
    for name in ("swindex", "site"):
        shutil.copytree(REPO / name, root / name, ignore=skip)
    shutil.copytree(registry, root / "registry")
    return root


def test_a_wheel_ships_the_index_of_the_registry_it_was_built_from(tmp_path, make_entry, write_registry):
    from hatchling.builders.wheel import WheelBuilder

    from swindex.registry import read_index, render_index

    registry = write_registry(make_entry(), make_entry(id="acme/other-model", aliases=[]))
    project = _project_copy(tmp_path / "project", registry)
    path = next(iter(WheelBuilder(str(project)).build(directory=str(tmp_path / "dist"), versions=["standard"])))
    shipped = zipfile.ZipFile(path).read("swindex/data/registry.json").decode("utf-8")
    assert shipped == render_index(registry)
    (tmp_path / "index.json").write_text(shipped, encoding="utf-8")
    assert [e.id for e in read_index(tmp_path / "index.json")] == ["acme/other-model", "acme/tiny-llama"]


def test_a_wheel_is_never_built_from_an_invalid_registry(tmp_path, make_entry, write_registry):
    from hatchling.builders.wheel import WheelBuilder

    registry = write_registry(make_entry(modified="not a date"))
    project = _project_copy(tmp_path / "project", registry)
    with pytest.raises(RuntimeError, match=r"(?s)cannot package the registry index.*tiny-llama.yaml:\d+: modified"):
        next(iter(WheelBuilder(str(project)).build(directory=str(tmp_path / "dist"), versions=["standard"])))


def test_an_editable_install_carries_no_index_and_reads_registry_files(tmp_path):
    from hatch_build import INDEX_IN_WHEEL, RegistryIndexHook

    hook = RegistryIndexHook(str(REPO), {}, None, None, str(tmp_path), "wheel")
    editable: dict = {"force_include": {}}
    hook.initialize("editable", editable)
    assert editable["force_include"] == {}
    standard: dict = {"force_include": {}}
    hook.initialize("standard", standard)
    assert list(standard["force_include"].values()) == [INDEX_IN_WHEEL]
    hook.finalize("standard", standard, "")
    assert not any(Path(p).exists() for p in standard["force_include"]), (
        "the generated index is a temporary file, never left in the tree"
    )


@pytest.mark.parametrize("command, expected_prefix", [(None, "swindex "), ("verify", "swindex verify ")])
def test_the_tool_string_names_swindex_the_command_and_the_version(command, expected_prefix):
    from swindex.version import tool, version

    assert tool(command) == f"{expected_prefix}{version()}"
