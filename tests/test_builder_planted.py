"""The builder end to end with the real loader and detector, on tiny planted models saved to disk."""

from __future__ import annotations

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
from swindex.validate import validate_registry
from swindex.verification import FingerprintWarning
from swindex.yamlio import dump_yaml, load_yaml

pytest.importorskip("torch")
pytest.importorskip("transformers")

from planted import Plant, build_planted, save_planted  # noqa: E402  (tests/planted.py, needs torch)

REPO = Path(__file__).resolve().parent.parent
TODAY = "2030-01-02"

#: family -> plants; () is an unplanted twin, which must come out with no super weight.
MODELS = {
    "acme/llama-two-layers": ("llama", (Plant(layer=1, row=5, column=7), Plant(layer=2, row=9, column=11))),
    "acme/mixtral-expert": ("mixtral", (Plant(layer=1, row=5, column=7, expert=2),)),
    "acme/bert-encoder": ("bert", (Plant(layer=2, row=12, column=30),)),
    "acme/llama-twin": ("llama", ()),
}


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    monkeypatch.setenv("SWINDEX_TODAY", TODAY)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # what --no-progress sets; restored after the test
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, set[str]]]:
    """The models saved to disk, their list file, and each one's planted coordinates."""
    root = tmp_path_factory.mktemp("planted")
    items, expected = [], {}
    for model_id, (family, plants) in MODELS.items():
        model, weights = build_planted(family, plants)
        directory = save_planted(model, root / model_id.replace("/", "__"))
        items.append(
            {
                "id": model_id,
                "path": str(directory),
                "device": "cpu",
                "dtype": "float32",
                "verify": {"sequences": 2, "length": 16},
            }
        )
        expected[model_id] = {w.coordinate for w in weights}
    models = root / "models.yaml"
    models.write_text(dump_yaml({"models": items}))
    return models, expected


def build(models: Path, registry: Path, *extra: str) -> int:
    return cli.main(["--models", str(models), "--registry", str(registry), "--no-progress", *extra])


def snapshot(registry: Path) -> dict[str, bytes]:
    return {p.relative_to(registry).as_posix(): p.read_bytes() for p in sorted(registry.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def straight(planted, tmp_path_factory) -> dict[str, bytes]:
    """One uninterrupted run: what every other way of getting there must reproduce byte for byte."""
    registry = tmp_path_factory.mktemp("straight") / "registry"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWINDEX_TODAY", TODAY)
        mp.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        assert build(planted[0], registry) == 0
    return snapshot(registry)


def restore(files: dict[str, bytes], registry: Path) -> Path:
    for name, data in files.items():
        (registry / name).parent.mkdir(parents=True, exist_ok=True)
        (registry / name).write_bytes(data)
    return registry


def test_entries_validate_and_carry_the_planted_coordinates(planted, straight, tmp_path):
    models, expected = planted
    registry = restore(straight, tmp_path / "registry")
    assert validate_registry(registry) == []
    for model_id, coordinates in expected.items():
        entry = load_yaml(registry / f"{model_id}.yaml")
        found = {f"{c['tensor']}[{', '.join(map(str, c['index']))}]" for c in entry["claims"]}
        assert found == coordinates, model_id
        assert entry["evidence"]["detection"]["date"] == entry["modified"] == TODAY
        if coordinates:
            assert entry["evidence"]["verification"]["date"] == TODAY
            assert all(c["impact"]["measured_by"] == "swindex" for c in entry["claims"])


@pytest.mark.slow
def test_rerun_and_forced_rerun_change_no_byte(planted, straight, tmp_path):
    registry = restore(straight, tmp_path / "registry")
    assert build(planted[0], registry) == 0
    assert snapshot(registry) == straight
    assert build(planted[0], registry, "--force") == 0
    assert snapshot(registry) == straight


KILLABLE = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from builder import backend, cli
    real = backend.detect
    calls = []
    def detect(session, spec):
        calls.append(spec.id)
        if len(calls) == 2:
            open({flag!r}, "w").write(spec.id)
            time.sleep(300)
        return real(session, spec)
    backend.detect = detect
    sys.exit(cli.main(sys.argv[1:], backend=backend.default_backend()))
    """
)


@pytest.mark.slow
def test_run_killed_during_the_second_model_resumes_to_the_same_registry(planted, straight, tmp_path):
    registry = tmp_path / "registry"
    flag = tmp_path / "second-model"
    script = KILLABLE.format(repo=str(REPO), flag=str(flag))
    args = ["--models", str(planted[0]), "--registry", str(registry), "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ}
    )
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert len(snapshot(registry)) == 1
    assert validate_registry(registry) == []
    assert build(planted[0], registry) == 0
    assert snapshot(registry) == straight


def test_published_claims_survive_and_disagreements_are_recorded(planted, tmp_path, make_entry):
    models, expected = planted
    registry = tmp_path / "registry"
    published = make_entry(
        id="acme/llama-two-layers", dimensions={"num_layers": 4, "hidden_size": 64, "intermediate_size": 128}
    )
    claim = published["claims"][0]
    claim.update(layer=1, tensor="model.layers.1.mlp.down_proj.weight", row=5, column=7, index=[5, 7])
    del claim["value"]
    elsewhere = {
        **claim,
        "layer": 3,
        "tensor": "model.layers.3.mlp.down_proj.weight",
        "row": 40,
        "column": 41,
        "index": [40, 41],
        "status": "confirmed",
    }
    published["claims"].append(elsewhere)
    path = registry / "acme" / "llama-two-layers.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(dump_yaml(published))

    assert build(models, registry, "--only", "acme/llama-two-layers") == 0
    entry = load_yaml(path)
    by_coordinate = {f"{c['tensor']}[{', '.join(map(str, c['index']))}]": c for c in entry["claims"]}
    matched = by_coordinate["model.layers.1.mlp.down_proj.weight[5, 7]"]
    assert matched["status"] == "confirmed" and matched["sources"] == claim["sources"]
    assert "detection" in matched["evidence"]
    assert matched["value"] == -8.0
    kept = dict(by_coordinate["model.layers.3.mlp.down_proj.weight[40, 41]"])
    assert kept.pop("impact")["classification"] == "inert" and elsewhere.pop("impact")["classification"] == "unmeasured"
    assert kept == elsewhere
    added = by_coordinate["model.layers.2.mlp.down_proj.weight[9, 11]"]
    assert [s["kind"] for s in added["sources"]] == ["swindex"]
    assert added["status"] == "detected" and added["impact"]["measured_by"] == "swindex"
    assert [d["claims"] for d in entry["disagreements"]] == [["model.layers.3.mlp.down_proj.weight[40, 41]"]]
    assert entry["aliases"] == published["aliases"]
    assert validate_registry(registry) == []


def test_an_entry_recording_other_weights_values_is_not_measured_or_written(planted, tmp_path, make_entry):
    """The published claim's value is not the loaded weight's: verification would measure other weights than the
    entry's, so the builder refuses (swindex.verification's fingerprint refusal) and leaves the file as it was."""
    models, _ = planted
    registry = tmp_path / "registry"
    published = make_entry(
        id="acme/llama-two-layers", dimensions={"num_layers": 4, "hidden_size": 64, "intermediate_size": 128}
    )
    published["claims"][0].update(
        layer=1, tensor="model.layers.1.mlp.down_proj.weight", row=5, column=7, index=[5, 7], value=8.0
    )  # the planted weight is -8.0
    path = registry / "acme" / "llama-two-layers.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(dump_yaml(published))
    before = path.read_bytes()
    report = tmp_path / "report.json"

    with pytest.warns(FingerprintWarning, match=r"down_proj\.weight\[5, 7\]: recorded 8, loaded -8"):
        assert build(models, registry, "--only", "acme/llama-two-layers", "--report", str(report)) == 1
    (outcome,) = json.loads(report.read_text())["models"]
    assert (outcome["status"], outcome["reason"]) == ("failed", "verification")
    assert outcome["message"].startswith("FingerprintMismatchError: acme/llama-two-layers: the verification is not")
    assert path.read_bytes() == before


def test_a_float16_overflow_is_rescanned_wider_and_the_entry_says_so(tmp_path):
    model, weights = build_planted("gemma", plants=(Plant(1, 5, 7, input=400.0, weight=300.0),))
    directory = save_planted(model, tmp_path / "gemma-overflow")
    models = tmp_path / "models.yaml"
    item = {"id": "acme/gemma-overflow", "path": str(directory), "device": "cpu", "dtype": "float16", "verify": False}
    models.write_text(dump_yaml({"models": [item]}))
    registry = tmp_path / "registry"

    assert build(models, registry) == 0
    entry = load_yaml(registry / "acme" / "gemma-overflow.yaml")
    assert [f"{c['tensor']}[{', '.join(map(str, c['index']))}]" for c in entry["claims"]] == [weights[0].coordinate]
    detection = entry["evidence"]["detection"]
    assert detection["dtype"] == "float32"
    assert "float16 activations overflowed" in detection["notes"]
