"""The builder's GitHub workflow: pinned actions, least privilege, the promised inputs, scripts that parse."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from swindex.yamlio import load_yaml

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "builder.yml"
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*\s*$")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return load_yaml(WORKFLOW)


def steps(workflow: dict):
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield name, step


def test_every_action_is_pinned_to_a_full_sha_with_its_version():
    lines = [line for line in WORKFLOW.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert lines
    assert [line for line in lines if not PINNED.match(line)] == []


def test_permissions_are_denied_by_default_and_granted_per_job(workflow):
    assert workflow["permissions"] == {}
    grants = {name: job["permissions"] for name, job in workflow["jobs"].items()}
    writers = {name for name, perms in grants.items() if "write" in perms.values()}
    assert writers == {"pull-request"}
    assert grants["pull-request"] == {"contents": "write", "pull-requests": "write"}


def test_dispatch_inputs_drive_runner_and_shard_matrix(workflow):
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert {"runner", "shards", "only"} <= set(inputs)
    detect = workflow["jobs"]["detect"]
    assert detect["runs-on"] == "${{ inputs.runner }}"
    assert "fromJSON(needs.plan.outputs.shards)" in detect["strategy"]["matrix"]["shard"]
    assert detect["strategy"]["fail-fast"] is False
    assert "${{ matrix.shard }}/${{ inputs.shards }}" in detect["env"]["SHARD"]


def test_untrusted_inputs_reach_scripts_only_through_the_environment(workflow):
    for _, step in steps(workflow):
        assert "inputs." not in step.get("run", ""), step.get("name")


def test_secrets_reach_only_the_step_that_runs_the_builder(workflow):
    def secret_names(env: dict | None) -> set[str]:
        return {k for k, v in (env or {}).items() if "secrets." in str(v)}

    assert not secret_names(workflow.get("env"))
    assert not any(secret_names(job.get("env")) for job in workflow["jobs"].values())
    holders = [step for _, step in steps(workflow) if secret_names(step.get("env"))]
    assert holders and all("python -m builder" in step.get("run", "") for step in holders)


def test_each_shard_uploads_its_entries_and_the_last_job_opens_a_pull_request(workflow):
    uploads = [s for name, s in steps(workflow) if name == "detect" and "upload-artifact" in s.get("uses", "")]
    assert uploads and uploads[0]["with"]["name"] == "entries-${{ matrix.shard }}"
    final = workflow["jobs"]["pull-request"]
    assert set(final["needs"]) == {"plan", "detect", "detect-remote-code"}
    assert any("create-pull-request" in s.get("uses", "") for s in final["steps"])


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_run_scripts_are_valid_bash_and_their_python_compiles(workflow):
    for name, step in steps(workflow):
        script = step.get("run")
        if not script:
            continue
        text = re.sub(r"\$\{\{[^}]*\}\}", "X", script)
        result = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert result.returncode == 0, (name, step.get("name"), result.stderr)
        for body in re.findall(r"<<'EOF'[^\n]*\n(.*?)\nEOF", text, flags=re.S):
            compile(body, f"{name}: {step.get('name')}", "exec")


def _builder_runs(job: dict) -> list[str]:
    """The scripts of a job's steps that run the builder for real (a dry run only lists models)."""

    def runs_builder(script: str) -> bool:
        return any(
            line.strip().startswith("python -m builder") and "--dry-run" not in line for line in script.splitlines()
        )

    return [s["run"] for s in job["steps"] if runs_builder(s.get("run", ""))]


def test_models_that_run_their_own_code_run_in_a_job_without_tokens(workflow):
    job = workflow["jobs"]["detect-remote-code"]
    assert job["permissions"] == {}, "the remote-code job's GITHUB_TOKEN gets no permission at all"
    text = str(job)
    for token in ("secrets.", "HF_TOKEN", "github.token", "GITHUB_TOKEN", "BUILDER_PR_TOKEN"):
        assert token not in text, f"the remote-code job must not hold {token}"
    runs = _builder_runs(job)
    assert runs and all("--remote-code only" in run for run in runs)


def test_jobs_holding_a_token_never_run_remote_code(workflow):
    for name, job in workflow["jobs"].items():
        if name == "detect-remote-code":
            continue
        for run in _builder_runs(job):
            assert "--remote-code exclude" in run, (
                f"{name} runs the builder with tokens at hand: pass --remote-code exclude"
            )


def test_only_the_remote_code_models_own_entries_are_taken_from_that_job(workflow):
    final = workflow["jobs"]["pull-request"]
    downloads = [s for s in final["steps"] if "download-artifact" in s.get("uses", "")]
    remote = [s for s in downloads if "remote-code" in s["with"].get("pattern", s["with"].get("name", ""))]
    assert remote and all(s["with"]["path"] != "out" for s in remote), (
        "the remote-code job's output is filtered before use"
    )
    assert not any(s["with"].get("pattern") == "*" for s in downloads)
    assert any(
        "--dry-run --remote-code only" in s.get("run", "") and "out-remote-code/registry/" in s.get("run", "")
        for s in final["steps"]
    )
