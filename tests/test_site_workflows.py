"""Lint for .github/workflows: valid GitHub workflow syntax, actions pinned to commits, least privilege."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from site_support import REPO

from swindex.yamlio import load_yaml

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)\s*(?P<comment>#.*)?$")
EXPRESSION = re.compile(r"\$\{\{")
READ_ONLY = {"read", "none"}


def _load(path: Path) -> dict[str, Any]:
    return load_yaml(path)  # YAML 1.2: the `on:` key stays the string "on"


def _steps(workflow: dict[str, Any]):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def _uses(workflow: dict[str, Any]) -> list[str]:
    refs = [step["uses"] for _, step in _steps(workflow) if "uses" in step]
    refs += [job["uses"] for job in workflow["jobs"].values() if "uses" in job]  # reusable workflows
    return refs


def _permissions(block: Any) -> dict[str, str]:
    if block in (None, {}):
        return {}
    if isinstance(block, str):  # read-all / write-all
        return {"*": block.split("-")[0]}
    return dict(block)


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {name: None for name in on}
    return on


def test_there_are_workflows_to_lint():
    assert {p.name for p in WORKFLOWS} >= {"pr.yml", "pages.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_follows_the_github_workflow_schema(path):
    pytest.importorskip("check_jsonschema", reason="pip install check-jsonschema (dev extra) for the workflow schema")
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_script_is_valid_bash(path):
    """What actionlint's shellcheck pass starts with, offline: each `run:` parses as bash (actionlint itself cannot be
    installed here: no platform wheel, and its wasm build on npm predates `vars` and `type: number`)."""
    bash = shutil.which("bash")
    assert bash is not None
    scripts = [(job, step["run"]) for job, step in _steps(_load(path)) if "run" in step]
    assert scripts, f"{path.name}: no run step found (this test would check nothing)"
    for job, script in scripts:
        result = subprocess.run([bash, "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, f"{path.name} job {job}: {result.stderr.strip()}"


def test_the_bash_check_catches_a_broken_script():
    result = subprocess.run([shutil.which("bash") or "bash", "-n", "-c", 'if true; then echo "x"'], capture_output=True)
    assert result.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_full_commit_sha(path):
    refs = _uses(_load(path))
    assert refs
    for ref in refs:
        assert ref.startswith("./") or PINNED.match(ref), f"{path.name}: {ref} is not pinned to a 40-hex commit"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_pinned_action_names_its_version_in_a_comment(path):
    lines = [m for m in map(USES_LINE.match, path.read_text(encoding="utf-8").splitlines()) if m]
    assert lines
    for match in lines:
        if not match["ref"].startswith("./"):
            assert match["comment"] and re.match(r"#\s*v\d+(\.\d+)*", match["comment"]), (
                f"{path.name}: {match['ref']} has no '# vX.Y.Z' comment"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_workflow_runs_on_pull_request_target(path):
    assert "pull_request_target" not in _triggers(_load(path))
    assert "pull_request_target" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_declared_at_the_top(path):
    assert "permissions" in _load(path), (
        f"{path.name}: declare top-level permissions so jobs do not inherit the default token scope"
    )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkout_does_not_keep_the_token(path):
    checkouts = [step for _, step in _steps(_load(path)) if step.get("uses", "").startswith("actions/checkout@")]
    assert checkouts, f"{path.name}: no actions/checkout step found (renamed or moved? this test would check nothing)"
    for step in checkouts:
        assert (step.get("with") or {}).get("persist-credentials") is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_run_scripts_interpolate_no_expressions(path):
    """Inputs, event data, outputs and variables all reach scripts through env,
    never as text spliced into the script."""
    for job, step in _steps(_load(path)):
        assert not EXPRESSION.search(step.get("run", "")), (
            f"{path.name} job {job}: pass values through env, not ${{{{ }}}} in run"
        )


def test_pull_request_workflow_is_read_only():
    workflow = _load(REPO / ".github" / "workflows" / "pr.yml")
    assert set(_triggers(workflow)) == {"pull_request"}
    blocks = [workflow["permissions"], *(job.get("permissions") for job in workflow["jobs"].values())]
    for block in blocks:
        assert set(_permissions(block).values()) <= READ_ONLY


def test_pull_request_workflow_validates_tests_and_builds_the_site():
    runs = " ".join(step.get("run", "") for _, step in _steps(_load(REPO / ".github" / "workflows" / "pr.yml")))
    assert "swindex validate registry" in runs and "pytest" in runs and "swindex site build" in runs


BASE_SHA = "${{ github.event.pull_request.base.sha }}"
HEAD_SHA = "${{ github.event.pull_request.head.sha }}"


def _base_rules_job() -> tuple[str, dict[str, Any]]:
    """The pull-request job whose checkout is the base branch: it judges the head's registry by the base's rules."""
    jobs = _load(REPO / ".github" / "workflows" / "pr.yml")["jobs"]
    found = [
        (name, job)
        for name, job in jobs.items()
        if any(
            s.get("uses", "").startswith("actions/checkout@") and (s.get("with") or {}).get("ref") == BASE_SHA
            for s in job.get("steps", [])
        )
    ]
    assert len(found) == 1, (
        "pr.yml needs one job that checks out the base branch (ref: the base sha) to judge the registry"
    )
    return found[0]


def _takes_head_registry(step: dict[str, Any]) -> bool:
    return 'git checkout "$HEAD_SHA" -- registry' in step.get("run", "")


def test_pull_request_registry_is_also_judged_by_the_base_branchs_code():
    _, job = _base_rules_job()
    runs = [s.get("run", "") for s in job["steps"]]
    assert any('/bin/swindex" validate --registry registry --against' in run for run in runs)
    assert set(_permissions(job.get("permissions", {})).values()) <= READ_ONLY


def test_the_base_rules_run_in_a_job_apart_from_the_pull_requests_code():
    name, job = _base_rules_job()
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert "pytest" not in runs and "site build" not in runs, (
        f"{name} must not run the pull request's tests or site build"
    )
    others = [j for n, j in _load(REPO / ".github" / "workflows" / "pr.yml")["jobs"].items() if n != name]
    assert others and all("--against" not in " ".join(s.get("run", "") for s in j.get("steps", [])) for j in others)


def test_the_base_rules_job_takes_only_registry_from_the_head():
    _, job = _base_rules_job()
    steps = job["steps"]
    for step in steps:
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["ref"] == BASE_SHA and step["with"]["persist-credentials"] is False
        assert not step.get("uses", "").startswith("./"), "no action from the checkout runs here"
    head_steps = [s for s in steps if "pull_request.head" in str(s)]
    assert len(head_steps) == 1 and _takes_head_registry(head_steps[0]), (
        "only the step that takes registry/ may name the head"
    )
    assert head_steps[0]["env"]["HEAD_SHA"] == HEAD_SHA
    assert not re.search(r"\b(pip|python3?|swindex|bash|sh|source|make)\b", head_steps[0]["run"]), (
        "taking registry/ runs git, nothing else"
    )


def test_the_base_rules_job_never_installs_or_runs_the_heads_code():
    _, job = _base_rules_job()
    steps = job["steps"]
    taken = next(i for i, s in enumerate(steps) if _takes_head_registry(s))
    installs = [i for i, s in enumerate(steps) if "pip install" in s.get("run", "")]
    assert installs and max(installs) < taken, "install the base's swindex before any head file is on disk"
    assert all(" -e " not in s.get("run", "") and ".[" not in s.get("run", "") for s in steps)
    for step in steps[taken + 1 :]:
        assert "uses" not in step, "no action runs after the head's files arrive"
        for line in step.get("run", "").splitlines():
            if line.strip():
                assert line.strip().startswith('"$RUNNER_TEMP/base-venv/bin/swindex" '), (
                    f"after registry/ is taken, only the base's installed swindex runs: {line}"
                )


def _owners(path: str) -> list[str]:
    """The owners CODEOWNERS gives a path: the last matching line wins (gitignore-style patterns)."""
    owners: list[str] = []
    for line in (REPO / ".github" / "CODEOWNERS").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, *names = line.split()
        if _codeowners_match(pattern, path):
            owners = names
    return owners


def _codeowners_match(pattern: str, path: str) -> bool:
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    regex, i = "", 0
    while i < len(body):
        if body.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif body.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif body[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        else:
            regex, i = regex + re.escape(body[i]), i + 1
    return re.fullmatch(("" if anchored else "(?:.*/)?") + regex + "(?:/.*)?", path) is not None


@pytest.mark.parametrize(
    "path",
    [
        "conftest.py",
        "sitecustomize.py",
        "hatch_build.py",
        "setup.py",
        "evil.pth",
        "some/new/dir/file.py",
        "registry/conftest.py",
        "registry/acme/x.py",
        ".gitattributes",
    ],
)
def test_files_nobody_named_still_need_a_maintainer(path):
    assert _owners(path) == ["@swindex/maintainers"]


def test_registry_entries_have_their_own_data_reviewers():
    assert _owners("registry/acme/tiny-llama.yaml") == ["@swindex/data-reviewers"]
    assert _owners("swindex/validate.py") == _owners(".github/workflows/pr.yml") == ["@swindex/maintainers"]


def test_pages_deploys_from_main_with_the_pages_actions():
    workflow = _load(REPO / ".github" / "workflows" / "pages.yml")
    assert _triggers(workflow)["push"]["branches"] == ["main"]
    refs = [ref.split("@")[0] for ref in _uses(workflow)]
    assert "actions/upload-pages-artifact" in refs and "actions/deploy-pages" in refs
    deploy = next(
        job
        for job in workflow["jobs"].values()
        if any(s.get("uses", "").startswith("actions/deploy-pages@") for s in job.get("steps", []))
    )
    assert _permissions(deploy["permissions"]) == {"pages": "write", "id-token": "write"}
    assert (
        deploy["if"] == "github.ref == 'refs/heads/main'"
    )  # a manual run from another branch builds but never deploys
    assert _permissions(workflow["permissions"]) == {}


def test_pages_builds_the_site_strictly_before_uploading():
    steps = [step for _, step in _steps(_load(REPO / ".github" / "workflows" / "pages.yml"))]
    build = next(i for i, s in enumerate(steps) if "swindex site build" in s.get("run", ""))
    upload = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert build < upload and steps[upload]["with"]["path"].rstrip("/") == "_site"
