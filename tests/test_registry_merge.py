"""Two contributors add two models the documented way from one base: git merges both without a conflict,
and the merged registry validates. A committed generated index made every such pair conflict."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from swindex.cli import main
from swindex._lookup import lookup
from swindex.yamlio import dump_yaml

REPO = Path(__file__).resolve().parent.parent
HEADER = "# yaml-language-server: $schema=../../swindex/data/entry.schema.json\n"


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Contributor",
        "GIT_AUTHOR_EMAIL": "contributor@example.org",
        "GIT_COMMITTER_NAME": "Contributor",
        "GIT_COMMITTER_EMAIL": "contributor@example.org",
    }
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=check)


def documented_commands() -> list[list[str]]:
    """The `swindex ...` commands CONTRIBUTING.md tells a contributor to run after writing an entry."""
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    step = text[text.index("Update `modified`") :]
    block = re.search(r"```bash\n(.*?)```", step, flags=re.S)
    assert block, "CONTRIBUTING.md: the step that updates `modified` shows the commands to run in a bash block"
    commands = [
        shlex.split(line.split("#", 1)[0])[1:] for line in block[1].splitlines() if line.strip().startswith("swindex ")
    ]
    assert any(c[:1] == ["validate"] for c in commands), (
        "the documented commands include `swindex validate` (--fix or not)"
    )
    return commands


@pytest.fixture
def base(tmp_path, make_entry) -> Path:
    """A repository with the project's .gitignore, the schema and a one-entry registry, committed on main."""
    repo = tmp_path / "repo"
    (repo / "swindex" / "data").mkdir(parents=True)
    shutil.copy2(REPO / ".gitignore", repo / ".gitignore")
    shutil.copy2(REPO / "swindex" / "data" / "entry.schema.json", repo / "swindex" / "data" / "entry.schema.json")
    add_entry(repo, make_entry())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def add_entry(repo: Path, entry: dict) -> Path:
    path = repo / "registry" / f"{entry['id']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + dump_yaml(entry), encoding="utf-8")
    return path


def contribute(repo: Path, branch: str, entry: dict, monkeypatch) -> None:
    """One pull request, the documented way: the entry file, the documented commands, then commit whatever git sees."""
    git(repo, "checkout", "-q", "-b", branch, "main")
    add_entry(repo, entry)
    monkeypatch.chdir(repo)
    for command in documented_commands():
        assert main(command) == 0, command
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"add {entry['id']}")


def test_two_contributors_adding_two_models_merge_without_conflict_and_validate(base, make_entry, monkeypatch, capsys):
    one = make_entry(id="acme/first-model", aliases=[], modified="2026-12-01")
    two = make_entry(id="acme/second-model", aliases=[], modified="2026-12-02")
    contribute(base, "first", one, monkeypatch)
    contribute(base, "second", two, monkeypatch)
    for branch, entry in (("first", one), ("second", two)):
        changed = git(base, "diff", "--name-only", "main", branch).stdout.split()
        assert changed == [f"registry/{entry['id']}.yaml"], "a pull request holds its entry file alone"
    git(base, "checkout", "-q", "main")
    for branch in ("first", "second"):
        merged = git(base, "merge", "--no-ff", "-q", "-m", f"merge {branch}", branch, check=False)
        assert merged.returncode == 0, merged.stdout + merged.stderr
    assert git(base, "status", "--porcelain").stdout == ""
    monkeypatch.chdir(base)
    capsys.readouterr()
    assert main(["validate"]) == 0, capsys.readouterr().err
    assert {
        lookup(i, registry=base / "registry").id for i in ("acme/tiny-llama", "acme/first-model", "acme/second-model")
    } == {
        "acme/tiny-llama",
        "acme/first-model",
        "acme/second-model",
    }


def test_a_committed_generated_index_made_the_same_two_contributions_conflict(base, make_entry, monkeypatch):
    """The control: the setup above detects conflicts, and a tracked index is what caused them."""
    monkeypatch.chdir(base)
    assert main(["index"]) == 0
    git(base, "add", "-f", "swindex/data/registry.json")
    git(base, "commit", "-q", "-m", "track the index")
    for branch, model in (("first", "acme/first-model"), ("second", "acme/second-model")):
        git(base, "checkout", "-q", "-b", branch, "main")
        add_entry(base, make_entry(id=model, aliases=[]))
        assert main(["index"]) == 0
        git(base, "commit", "-q", "-am", f"add {model}")
        git(base, "add", "registry")
        git(base, "commit", "-q", "-m", f"add {model} file")
    git(base, "checkout", "-q", "main")
    git(base, "merge", "--no-ff", "-q", "-m", "merge first", "first")
    second = git(base, "merge", "--no-ff", "-q", "-m", "merge second", "second", check=False)
    assert second.returncode != 0 and "swindex/data/registry.json" in second.stdout + second.stderr
