"""Verdicts from measured damage: the observed scale read off the claim's recorded scale curve.

Issue 18's table: a fine-tune-like -8.6% on SmolLM2's critical weight cost 2.5% perplexity and was called
"changed" (a false alarm); x0.3 cost 44% and got the same words; only x0.05 was lost. With a curve on
record, each now gets what its perplexity says.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from check_support import down_projections, entry_with, linear_weight, llama_config, write_folder
from swindex.checkpoint import KEPT_CHANGE, LOST_RATIO, check, judge
from swindex.checkpoint.report import predicted_ratio

SCALES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.1, 1.5, 2.0, 3.0)
CURVE = (
    (0.0, 3.4),
    (0.25, 1.6),
    (0.5, 1.25),
    (0.75, 1.1),
    (0.9, 1.02),
    (1.1, 1.02),
    (1.5, 1.2),
    (2.0, 1.9),
    (3.0, 4.0),
)
"""A curve of the shape swindex verify measures: steep towards zero and past x2, flat around x1."""


def curved(weight: dict) -> dict:
    return {
        **weight,
        "impact": {
            "classification": "critical",
            "metric": "perplexity",
            "ratio": CURVE[0][1],
            "measured_by": "swindex",
            "scale_curve": [{"scale": s, "ratio": r} for s, r in CURVE],
        },
    }


@pytest.mark.parametrize(
    ("scale", "verdict"),
    [
        (1.0, "kept"),
        (0.914, "kept"),
        (1.05, "kept"),
        (0.8, "degraded"),
        (0.3, "degraded"),
        (1.6, "degraded"),
        (0.05, "lost"),
        (2.5, "lost"),
    ],
)
def test_a_checkpoint_is_judged_by_the_perplexity_the_curve_predicts(
    tmp_path: Path, make_entry, scale: float, verdict: str
) -> None:  # noqa: ANN001
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5 * scale}), llama_config())
    report = check(folder, entry=entry_with(make_entry, [curved(linear_weight(1, 5, 7, -1.5))]))
    (weight,) = report.weights
    assert (weight.verdict, weight.judgement.judged_by) == (verdict, "curve")
    assert weight.judgement.observed_scale == pytest.approx(scale, rel=1e-6)
    assert report.exit_status == (0 if verdict == "kept" else 1)


def test_a_scale_past_the_curve_is_never_kept() -> None:
    judgement = judge(1.0, 3.5, curve=((0.5, 1.0), (3.0, 1.01)))
    assert judgement.verdict == "degraded" and "past the measured curve" in judgement.reason


@pytest.mark.parametrize(
    ("value", "verdict", "judged_by"), [(0.0, "lost", "zero"), (-1.0, "lost", "sign"), (float("nan"), "lost", "value")]
)
def test_zero_a_sign_flip_or_a_non_finite_value_is_lost_whatever_the_curve(
    value: float, verdict: str, judged_by: str
) -> None:
    judgement = judge(1.0, value, curve=((0.0, 1.0), (3.0, 1.0)))
    assert (judgement.verdict, judgement.judged_by) == (verdict, judged_by)


curves = st.lists(
    st.tuples(st.floats(0, 10, allow_nan=False), st.floats(0, 100, allow_nan=False)),
    min_size=1,
    max_size=12,
    unique_by=lambda p: p[0],
)


@given(curve=curves, scale=st.floats(-20, 20, allow_nan=False))
def test_kept_only_where_the_curve_predicts_under_5_percent_inside_its_range(curve: list, scale: float) -> None:
    judgement = judge(2.0, 2.0 * scale, curve=curve) if scale != 0 else judge(2.0, 0.0, curve=curve)
    if judgement.verdict == "kept":
        predicted, beyond = predicted_ratio(curve, scale)
        assert 0 < scale and not beyond and predicted < 1 + KEPT_CHANGE
    if scale > 0 and judgement.predicted_ratio is not None and judgement.predicted_ratio >= LOST_RATIO:
        assert judgement.verdict == "lost"


@given(curve=curves, scale=st.floats(0, 10, allow_nan=False))
def test_the_prediction_lies_between_the_points_around_the_scale(curve: list, scale: float) -> None:
    points = sorted({**dict(curve), 1.0: 1.0}.items())
    predicted, beyond = predicted_ratio(curve, scale)
    if not beyond:
        below = max(p for p in points if p[0] <= scale)
        above = min(p for p in points if p[0] >= scale)
        assert min(below[1], above[1]) - 1e-9 <= predicted <= max(below[1], above[1]) + 1e-9


def test_the_curve_passes_through_the_model_as_measured() -> None:
    assert predicted_ratio(CURVE, 1.0) == (1.0, False)
    for scale, ratio in CURVE:
        assert predicted_ratio(CURVE, scale)[0] == pytest.approx(ratio)


def test_verify_scales_by_the_papers_factors() -> None:
    from swindex.verification.curve import SCALES as measured

    assert measured == SCALES


def test_a_checked_weight_carries_the_claims_coordinate(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5}), llama_config())
    entry = entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)])
    (weight,) = check(folder, entry=entry).weights
    from swindex.records import Entry

    (claim,) = Entry.from_dict(entry).weights_to_keep
    assert weight.location == claim.location
    assert (weight.coordinate, weight.layer, weight.row, weight.column) == (claim.coordinate, 1, 5, 7)
    assert (weight.index_hf, weight.index_gguf) == (claim.index, (7, 5))
