"""The wheel carries what users need offline: the schema, the registry index generated at build time, the CLI entry point."""

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


def test_wheel_core_requirements_stay_small(wheel):
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(line.split()[1].split(">")[0].split("<")[0].split("=")[0].lower() for line in core) == ["jsonschema", "pyyaml"]


def test_the_wheels_index_is_generated_from_the_registry_when_built(wheel):
    from swindex.registry import render_index

    assert wheel.namelist().count("swindex/data/registry.json") == 1
    assert wheel.read("swindex/data/registry.json").decode("utf-8") == render_index(REPO / "registry")


def test_no_generated_index_is_tracked_by_git():
    import subprocess

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an unpacked sdist)")
    tracked = subprocess.run(["git", "ls-files", "swindex/data"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert "swindex/data/registry.json" not in tracked, "git rm --cached swindex/data/registry.json: the wheel builds it"
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
    assert not any(Path(p).exists() for p in standard["force_include"]), "the generated index is a temporary file, never left in the tree"
