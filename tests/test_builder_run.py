"""The builder's run loop with a scripted backend: failures, resume, reruns, interrupts and exit status.

The real loader, detector and verifier are exercised in test_builder_planted.py; here a fake backend
reads a plan.json from each "model directory", so every behaviour of the loop is checked in seconds.
"""

from __future__ import annotations

import dataclasses

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder import cli
from builder.pipeline import Backend
from report_support import scripted_report
from swindex.claims import coordinate_of as coordinate
from swindex.errors import UnsupportedModelError
from swindex.verification import VerificationReport
from swindex.validate import validate_registry
from swindex.yamlio import dump_yaml, load_yaml

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
TOOL = "swindex-fake 1"


def _claim(layer: int, row: int, column: int) -> dict:
    return {
        "layer": layer,
        "tensor": f"model.layers.{layer}.mlp.down_proj.weight",
        "row": row,
        "column": column,
        "expert": None,
        "index": [row, column],
        "value": float(row - column) / 8,
        "value_dtype": "float32",
        "status": "detected",
        "sources": [{"citation": f"{TOOL} detector", "kind": "swindex", "evidence": "detected", "date": "1999-09-09"}],
        "evidence": {"detection": {"iteration": 1, "input_activation": -90.0, "output_activation": 400.0, "token": 0}},
    }


def fake_load(spec, revision):
    plan = json.loads((Path(spec.location()) / "plan.json").read_text())
    if plan.get("fail") == "unsupported":
        raise UnsupportedModelError(f"{spec.id}: no FFN down projection found")
    if plan.get("fail") == "oom":
        raise MemoryError("out of memory while loading")
    return plan


def fake_detect(plan, spec):
    marker = plan.get("hang_once")
    if marker and not os.path.exists(marker):
        Path(marker).write_text("started")
        time.sleep(120)
    if plan.get("interrupt_once") and not os.path.exists(plan["interrupt_once"]):
        Path(plan["interrupt_once"]).write_text("interrupted")
        raise KeyboardInterrupt
    return {
        "schema_version": 2,
        "id": "placeholder/id",
        "architecture": "LlamaForCausalLM",
        "family": "llama",
        "revision": None,
        "modified": "1999-09-09",
        "dimensions": {"num_layers": 4, "hidden_size": 64, "intermediate_size": 172},
        "claims": [_claim(*c) for c in plan["claims"]],
        "evidence": {"detection": {"tool": TOOL, "date": "1999-09-09", "dtype": "float32", "layers": []}},
    }


def fake_verify(plan, entry, spec, today, say=lambda message: None, *, ratio=5.0, matches=True):
    """A verification's report: each claim measured (``ratio``), and progress said weight by weight."""
    for k, claim in enumerate(entry["claims"]):
        say(f"weight {k + 1} of {len(entry['claims'])}: zeroing {coordinate(claim)}")
    return scripted_report(entry, today=today, ratio=ratio, tool=TOOL, matches=matches)


def fake_backend() -> Backend:
    return Backend(
        tool=lambda: TOOL,
        resolve_revision=lambda spec: spec.revision,
        load=fake_load,
        detect=fake_detect,
        verify=fake_verify,
    )


def make_models(tmp_path: Path, plans: dict[str, dict]) -> Path:
    """One directory per model holding its plan, and a models.yaml listing them."""
    items = []
    for model_id, plan in plans.items():
        directory = tmp_path / "models" / model_id.replace("/", "__")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "plan.json").write_text(json.dumps(plan))
        items.append({"id": model_id, "path": str(directory)})
    path = tmp_path / "models.yaml"
    path.write_text(dump_yaml({"models": items}))
    return path


def snapshot(registry: Path) -> dict[str, bytes]:
    return {p.relative_to(registry).as_posix(): p.read_bytes() for p in sorted(registry.rglob("*")) if p.is_file()}


PLANS = {
    "acme/one": {"claims": [[1, 3, 7]]},
    "acme/two": {"claims": [[2, 5, 11], [2, 5, 12]]},
    "acme/three": {"claims": []},
}


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    monkeypatch.setenv("SWINDEX_TODAY", "2030-01-02")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # what --no-progress sets; restored after the test


def run(models: Path, registry: Path, *extra: str) -> int:
    return cli.main(
        ["--models", str(models), "--registry", str(registry), "--no-progress", *extra], backend=fake_backend()
    )


def test_run_writes_valid_entries_with_the_detected_coordinates(tmp_path):
    models = make_models(tmp_path, PLANS)
    registry = tmp_path / "registry"
    assert run(models, registry) == 0
    assert validate_registry(registry) == []
    two = load_yaml(registry / "acme" / "two.yaml")
    assert [(c["layer"], c["row"], c["column"]) for c in two["claims"]] == [(2, 5, 11), (2, 5, 12)]
    assert two["modified"] == two["evidence"]["detection"]["date"] == "2030-01-02"
    assert two["evidence"]["verification"]["original"] == 10.0
    assert load_yaml(registry / "acme" / "three.yaml")["claims"] == []


def test_progress_names_each_phase_and_the_weight_being_verified(tmp_path):
    from builder.modellist import load_model_list
    from builder.pipeline import RunOptions, run_model

    models = make_models(tmp_path, {"acme/two": PLANS["acme/two"]})
    (spec,) = load_model_list(models)
    seen: list[str] = []
    run_model(spec, fake_backend(), RunOptions(registry=tmp_path / "registry", today="2030-01-02"), status=seen.append)
    weights = [s for s in seen if s.startswith("verifying weight")]
    assert seen[:2] == ["loading", "detecting"]
    assert [w.split(":")[0] for w in weights] == ["verifying weight 1 of 2", "verifying weight 2 of 2"]
    assert seen[-1] == "writing"


def test_failing_models_are_reported_and_the_others_go_on(tmp_path, capsys):
    plans = {
        "acme/a": {"claims": [[1, 3, 7]]},
        "acme/b": {"claims": [], "fail": "unsupported"},
        "acme/c": {"claims": [], "fail": "oom"},
        "acme/d": {"claims": [[0, 1, 2]]},
    }
    models = make_models(tmp_path, plans)
    with open(models, "a") as handle:
        handle.write(f"- id: acme/e\n  path: {tmp_path / 'models' / 'acme__missing'}\n")
    registry = tmp_path / "registry"
    assert run(models, registry, "--report", str(tmp_path / "report.json")) == 1
    assert sorted(p.name for p in (registry / "acme").iterdir()) == ["a.yaml", "d.yaml"]
    out = capsys.readouterr().out
    report = {m["id"]: m for m in json.loads((tmp_path / "report.json").read_text())["models"]}
    assert {k: (m["status"], m["reason"]) for k, m in report.items()} == {
        "acme/a": ("written", ""),
        "acme/b": ("failed", "unsupported"),
        "acme/c": ("failed", "out of memory"),
        "acme/d": ("written", ""),
        "acme/e": ("failed", "missing"),
    }
    for kind in ("unsupported", "out of memory", "missing"):
        assert kind in out


def test_rerun_skips_done_models_and_changes_no_byte(tmp_path):
    models = make_models(tmp_path, PLANS)
    registry = tmp_path / "registry"
    run(models, registry)
    before = snapshot(registry)
    os.environ["SWINDEX_TODAY"] = "2030-05-05"
    assert run(models, registry, "--report", str(tmp_path / "r.json")) == 0
    assert snapshot(registry) == before
    assert {m["status"] for m in json.loads((tmp_path / "r.json").read_text())["models"]} == {"skipped"}


def test_force_redoes_done_models(tmp_path):
    models = make_models(tmp_path, PLANS)
    registry = tmp_path / "registry"
    run(models, registry)
    assert run(models, registry, "--force", "--report", str(tmp_path / "r.json")) == 0
    assert {m["status"] for m in json.loads((tmp_path / "r.json").read_text())["models"]} == {"unchanged"}


def test_force_keeps_hand_written_notes_and_aliases(tmp_path):
    models = make_models(tmp_path, PLANS)
    registry = tmp_path / "registry"
    run(models, registry)
    path = registry / "acme" / "one.yaml"
    entry = load_yaml(path)
    entry.update(aliases=["One"], notes="Written by hand.")
    path.write_text(dump_yaml(entry), encoding="utf-8")
    assert run(models, registry, "--force") == 0
    again = load_yaml(path)
    assert again["aliases"] == ["One"] and again["notes"] == "Written by hand."


def _backend_with_thresholds(values: dict[str, float]) -> Backend:
    def detect(plan, spec):
        entry = fake_detect(plan, spec)
        entry["evidence"]["detection"]["thresholds"] = dict(values)
        return entry

    return dataclasses.replace(fake_backend(), detect=detect, thresholds=lambda: dict(values))


def _statuses(models: Path, registry: Path, report: Path, backend: Backend) -> set[str]:
    cli.main(
        ["--models", str(models), "--registry", str(registry), "--no-progress", "--report", str(report)],
        backend=backend,
    )
    return {m["status"] for m in json.loads(report.read_text())["models"]}


def test_an_entry_detected_with_other_thresholds_is_redone(tmp_path):
    models, registry = make_models(tmp_path, PLANS), tmp_path / "registry"
    first = _backend_with_thresholds({"min_output": 20.0, "min_weight_ratio": 20.0})
    _statuses(models, registry, tmp_path / "1.json", first)
    assert _statuses(models, registry, tmp_path / "2.json", first) == {"skipped"}
    changed = _backend_with_thresholds({"min_output": 20.0, "min_weight_ratio": 10.0})
    assert "skipped" not in _statuses(models, registry, tmp_path / "3.json", changed)


def test_a_verified_run_redoes_models_done_without_verification(tmp_path):
    models = make_models(tmp_path, PLANS)
    registry = tmp_path / "registry"
    run(models, registry, "--no-verify")
    assert "verification" not in load_yaml(registry / "acme" / "one.yaml")["evidence"]
    run(models, registry, "--report", str(tmp_path / "r.json"))
    statuses = {m["id"]: m["status"] for m in json.loads((tmp_path / "r.json").read_text())["models"]}
    assert statuses == {"acme/one": "written", "acme/two": "written", "acme/three": "skipped"}


def test_existing_published_entry_is_merged_not_clobbered(tmp_path, make_entry, write_registry):
    published = make_entry(id="acme/one")
    published["claims"][0].update(layer=3, tensor="model.layers.3.mlp.down_proj.weight", row=9, column=9, index=[9, 9])
    registry = write_registry(published, root=tmp_path / "registry")
    models = make_models(tmp_path, {"acme/one": {"claims": [[1, 3, 7]]}})
    assert run(models, registry, "--no-verify") == 0
    entry = load_yaml(registry / "acme" / "one.yaml")
    assert entry["aliases"] == published["aliases"]
    assert entry["claims"][0] == published["claims"][0]
    assert entry["claims"][1]["status"] == "detected"
    assert entry["disagreements"][0]["claims"] == ["model.layers.3.mlp.down_proj.weight[9, 9]"]
    assert validate_registry(registry) == []


def test_interrupted_run_resumes_to_the_same_registry_as_an_uninterrupted_one(tmp_path, capsys):
    straight = tmp_path / "straight"
    models = make_models(tmp_path / "a", PLANS)
    assert run(models, straight) == 0

    plans = json.loads(json.dumps(PLANS))
    plans["acme/two"]["interrupt_once"] = str(tmp_path / "interrupted.flag")
    models = make_models(tmp_path / "b", plans)
    resumed = tmp_path / "resumed"
    assert run(models, resumed) == 130
    out = capsys.readouterr().out
    assert "interrupted" in out and "not run" in out
    assert sorted(snapshot(resumed)) == ["acme/one.yaml"]
    assert validate_registry(resumed) == []
    assert run(models, resumed) == 0
    assert snapshot(resumed) == snapshot(straight)


SUBPROCESS = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    from builder import cli
    import test_builder_run as t
    sys.exit(cli.main(sys.argv[1:], backend=t.fake_backend()))
    """
)


def start(models: Path, registry: Path) -> subprocess.Popen:
    script = SUBPROCESS.format(repo=str(REPO), tests=str(TESTS))
    env = {**os.environ, "SWINDEX_TODAY": "2030-01-02"}
    return subprocess.Popen(
        [sys.executable, "-c", script, "--models", str(models), "--registry", str(registry), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the builder never reached the second model"
        time.sleep(0.05)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_leaves_a_valid_registry_and_prints_the_summary(tmp_path, sig, code):
    flag = tmp_path / "second-model-started"
    plans = json.loads(json.dumps(PLANS))
    plans["acme/two"]["hang_once"] = str(flag)
    models = make_models(tmp_path, plans)
    registry = tmp_path / "registry"
    proc = start(models, registry)
    wait_for(flag, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted" in out and "acme/three" in out
    assert "Rerun the same command to resume" in err
    assert sorted(snapshot(registry)) == ["acme/one.yaml"]
    assert validate_registry(registry) == []


def test_sigkill_mid_run_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    assert run(make_models(tmp_path / "a", PLANS), straight) == 0

    flag = tmp_path / "second-model-started"
    plans = json.loads(json.dumps(PLANS))
    plans["acme/two"]["hang_once"] = str(flag)
    models = make_models(tmp_path / "b", plans)
    registry = tmp_path / "killed"
    proc = start(models, registry)
    wait_for(flag, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert validate_registry(registry) == []
    assert run(models, registry) == 0
    assert snapshot(registry) == snapshot(straight)


def test_dry_run_lists_the_shard_and_loads_nothing(tmp_path, capsys):
    models = make_models(tmp_path, PLANS)
    assert (
        cli.main(
            ["--models", str(models), "--registry", str(tmp_path / "r"), "--shard", "1/2", "--dry-run"], backend=None
        )
        == 0
    )
    listed = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["acme/one", "acme/two"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args", [["--shard", "3/2"], ["--only", "acme/nope"]])
def test_bad_selection_exits_2(tmp_path, args):
    assert run(make_models(tmp_path, PLANS), tmp_path / "r", *args) == 2


@pytest.mark.parametrize("where", ["registry", "report"])
def test_a_destination_that_cannot_be_written_exits_2_before_any_model_runs(tmp_path, capsys, where):
    blocker = tmp_path / "file"
    blocker.write_text("keep me", encoding="utf-8")
    registry, extra = (blocker, []) if where == "registry" else (tmp_path / "r", ["--report", str(tmp_path)])
    assert run(make_models(tmp_path, PLANS), registry, *extra) == 2
    assert f"--{where}" in capsys.readouterr().err
    assert blocker.read_text(encoding="utf-8") == "keep me" and not (tmp_path / "r").exists()


def test_bad_swindex_today_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("SWINDEX_TODAY", "2030-13-45")
    assert run(make_models(tmp_path, PLANS), tmp_path / "r") == 2


def test_the_builder_writes_registry_files_only_never_a_generated_index(tmp_path, monkeypatch):
    import swindex.registry

    calls = []
    monkeypatch.setattr(swindex.registry, "build_index", lambda root, *a, **k: calls.append(Path(root)))
    monkeypatch.setattr(cli, "DEFAULT_REGISTRY", tmp_path / "default")
    run(make_models(tmp_path, PLANS), tmp_path / "default")
    assert calls == [], "the wheel builds its index (hatch_build.py); a committed one made every pull request conflict"


def test_existing_header_comments_are_kept_on_rewrite(tmp_path, make_entry):
    registry = tmp_path / "registry"
    path = registry / "acme" / "one.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("# yaml-language-server: $schema=../../x.json\n# kept\n" + dump_yaml(make_entry(id="acme/one")))
    assert run(make_models(tmp_path, {"acme/one": {"claims": [[1, 3, 7]]}}), registry) == 0
    assert path.read_text().startswith("# yaml-language-server: $schema=../../x.json\n# kept\nschema_version: 2\n")


def test_new_files_in_the_default_registry_point_editors_at_the_schema(tmp_path, monkeypatch):
    import swindex.registry

    monkeypatch.setattr(swindex.registry, "build_index", lambda *a, **k: None)
    monkeypatch.setattr(cli, "DEFAULT_REGISTRY", tmp_path / "default")
    run(make_models(tmp_path, {"acme/one": {"claims": []}}), tmp_path / "default")
    first = (tmp_path / "default" / "acme" / "one.yaml").read_text().splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    assert (tmp_path / "default" / "acme" / first[len(prefix) :]).resolve() == cli.SCHEMA_FILE.resolve()


class StatusRewritingReport(VerificationReport):
    """A report whose recording also rewrites a claim's status and sources: what a bug in reconciling would do."""

    def applied(self, entry):
        updated, changes = super().applied(entry)
        updated["claims"][0]["status"] = "disputed"
        updated["claims"][0]["sources"] = updated["claims"][0]["sources"][:1]
        return updated, changes


def _failed_run(tmp_path, registry, verify):
    """Run the builder over acme/one with ``verify`` as its verifier; return exit code and the model's outcome."""
    backend = dataclasses.replace(fake_backend(), verify=verify)
    models = make_models(tmp_path, {"acme/one": {"claims": [[1, 3, 7]]}})
    code = cli.main(
        ["--models", str(models), "--registry", str(registry), "--no-progress", "--report", str(tmp_path / "r.json")],
        backend=backend,
    )
    (outcome,) = json.loads((tmp_path / "r.json").read_text())["models"]
    return code, outcome


def test_a_verification_that_touches_a_claims_status_or_sources_is_refused_and_nothing_is_written(
    tmp_path, make_entry, write_registry
):
    registry = write_registry(make_entry(id="acme/one"), root=tmp_path / "registry")
    before = snapshot(registry)

    def rewriting_verify(plan, entry, spec, today, say):
        report = fake_verify(plan, entry, spec, today)
        return StatusRewritingReport(**{f.name: getattr(report, f.name) for f in dataclasses.fields(report)})

    code, outcome = _failed_run(tmp_path, registry, rewriting_verify)
    assert code == 1
    assert (outcome["status"], outcome["reason"]) == ("failed", "verification")
    assert "acme/one" in outcome["message"] and "beyond its evidence" in outcome["message"]
    assert snapshot(registry) == before


def test_a_verification_of_other_weights_is_refused_and_nothing_is_written(tmp_path, make_entry, write_registry):
    """The fingerprint rule is swindex.verification.record's, so the builder refuses what `swindex verify` does."""
    registry = write_registry(make_entry(id="acme/one"), root=tmp_path / "registry")
    before = snapshot(registry)

    def other_weights(plan, entry, spec, today, say):
        return fake_verify(plan, entry, spec, today, matches=False)

    code, outcome = _failed_run(tmp_path, registry, other_weights)
    assert code == 1
    assert (outcome["status"], outcome["reason"]) == ("failed", "verification")
    assert outcome["message"].startswith("FingerprintMismatchError: acme/one: the verification is not recorded in ")
    assert "loaded weights differ" in outcome["message"]
    assert snapshot(registry) == before


def test_a_detected_weight_verified_harmless_is_written_inert_and_counted(tmp_path, capsys):
    def verify_harmless(plan, entry, spec, today, say):
        return fake_verify(plan, entry, spec, today, ratio=1.0)

    models, registry, report = (
        make_models(tmp_path, {"acme/one": PLANS["acme/one"]}),
        tmp_path / "registry",
        tmp_path / "r.json",
    )
    backend = dataclasses.replace(fake_backend(), verify=verify_harmless)
    assert (
        cli.main(
            ["--models", str(models), "--registry", str(registry), "--no-progress", "--report", str(report)],
            backend=backend,
        )
        == 0
    )
    written = load_yaml(registry / "acme" / "one.yaml")
    assert [(c["status"], c["impact"]["classification"]) for c in written["claims"]] == [("detected", "inert")]
    assert written["verdict"]["outcome"] == "no_critical_weight"
    assert json.loads(report.read_text())["models"][0]["inert"] == ["model.layers.1.mlp.down_proj.weight[3, 7]"]
    assert "1 inert" in capsys.readouterr().out
