"""The detector on a tiny random model of every supported family: planted super weights found, twins clean."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from planted import FAMILIES, build_planted  # noqa: E402  (tests/planted.py needs torch)

from swindex.detection import detect  # noqa: E402
from swindex.validate import validate_entry_dict  # noqa: E402


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_finds_the_planted_weight(family):
    model, planted = build_planted(family, seed=1)
    result = detect(model)
    assert [(w.tensor, w.index, w.value, w.expert) for w in result.candidates] == [
        (p.tensor, p.index, p.value, p.expert) for p in planted
    ]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_unplanted_twin_has_no_super_weight(family):
    twin, _ = build_planted(family, plants=(), seed=1)
    result = detect(twin)
    assert result.candidates == ()
    assert result.stop_reason == "no spike left"


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "mixtral", "deepseek_v3"])
def test_entry_passes_validation_with_detection_evidence(family):
    model, planted = build_planted(family, seed=2)
    entry = detect(model).to_entry(model_id="acme/planted")
    assert validate_entry_dict(entry) == []
    (weight,) = entry["claims"]
    assert weight["status"] == "detected"
    assert weight["sources"][0]["kind"] == "swindex" and weight["sources"][0]["evidence"] == "detected"
    evidence = weight["evidence"]["detection"]
    assert evidence["token"] == 0
    assert evidence["input_activation"] == pytest.approx(planted[0].input_activation, rel=1e-3)
    run = entry["evidence"]["detection"]
    assert len({m["layer"] for m in run["layers"]}) == entry["dimensions"]["num_layers"]
    assert (run["iterations"], run["layer_evaluations"]) == (1, entry["dimensions"]["num_layers"])


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "qwen3_moe"])
def test_plain_random_models_have_no_super_weight(family):
    """Straight from the config, without the planting scaffold."""
    import torch
    import transformers

    from planted import FAMILIES, tiny_config

    torch.manual_seed(3)
    model = getattr(transformers, FAMILIES[family].model)(tiny_config(family)).eval()
    assert detect(model).candidates == ()


def test_bfloat16_models_are_scanned_in_bfloat16():
    import torch

    model, planted = build_planted("qwen2", dtype=torch.bfloat16)
    result = detect(model)
    assert result.dtype == "bfloat16"
    assert [(w.index, w.value_dtype) for w in result.candidates] == [(planted[0].index, "bfloat16")]


def test_a_loaded_model_keeps_the_hub_id_its_config_names():
    model, _ = build_planted("llama")
    model.config._name_or_path = "acme/tiny-planted"
    result = detect(model, revision="0123456789abcdef0123456789abcdef01234567")
    entry = result.to_entry()
    assert (entry["id"], entry["revision"]) == ("acme/tiny-planted", "0123456789abcdef0123456789abcdef01234567")


def test_detect_dates_its_result_with_the_day_it_is_given():
    model, _ = build_planted("llama", seed=1)
    assert detect(model, today="2024-02-29").date == "2024-02-29"


def test_detect_refuses_a_malformed_day():
    from swindex.dates import DateError

    model, _ = build_planted("llama", seed=1)
    with pytest.raises(DateError, match="today"):
        detect(model, today="2024-02-30")


def test_detect_reports_its_steps_to_progress():
    model, planted = build_planted("llama", seed=1)
    heard: list[str] = []
    detect(model, progress=heard.append)
    assert heard[0].startswith("scanning") and heard[-1].startswith(f"found {len(planted)} candidate(s)")
