"""Sequential verification: each weight alone is measured sequence by sequence and stops once its class is settled.

The classes must be the plain way's (every weight on the whole text), each settled weight's bound must hold the
plain way's ratio, the evidence must say how many tokens settled each claim and with which bound, and the model
must be left exactly as it was found.
"""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swindex.claims import IMPACT_THRESHOLDS, classify
from swindex.verification.settle import CONFIDENCE, MIN_SEQUENCES, bound, t_quantile

torch = pytest.importorskip("torch")

from fixtures_dependent import dependent_llama, entry_for, largest_weight  # noqa: E402

from swindex.verification import record, verify  # noqa: E402
from swindex.verification.measure import lm_pass  # noqa: E402
from swindex.verification.inputs import sampled  # noqa: E402

RUN = {"sequences": 16, "length": 32, "batch_size": 4}
WAYS = {  # name: (method, sequential)
    "whole text, plain": ("plain", False),
    "sequential, auto": ("auto", True),
    "sequential, stacked": ("fast", True),
    "sequential, plain": ("plain", True),
}


@pytest.mark.parametrize("p", [0.9, 0.99, 0.999])
def test_the_t_quantile_of_one_degree_of_freedom_is_the_cauchy_one(p):
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * p / 2), rel=1e-9)


@pytest.mark.parametrize("p", [0.9, 0.99, 0.999])
def test_the_t_quantile_of_two_degrees_of_freedom_has_its_closed_form(p):
    assert t_quantile(p, 2) == pytest.approx(p * math.sqrt(2 / (1 - p * p)), rel=1e-9)


@pytest.mark.parametrize("p", [0.9, 0.99, 0.999])
def test_the_t_quantile_approaches_the_normal_one(p):
    normal = statistics.NormalDist().inv_cdf((1 + p) / 2)
    assert t_quantile(p, 20001) == pytest.approx(normal, rel=1e-3)
    assert t_quantile(p, 3) > t_quantile(p, 30) > normal


changes = st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=1, max_size=24)


@settings(max_examples=200, deadline=None)
@given(changes, st.integers(1, 200))
def test_with_every_sequence_measured_the_bound_is_the_whole_texts_figure(per_sequence, tokens):
    counts = [tokens] * len(per_sequence)
    whole = math.exp(sum(per_sequence) / len(per_sequence))  # each sequence changes its tokens by d on average
    result = bound([d * tokens for d in per_sequence], counts, len(per_sequence))
    assert result.complete and result.low == result.high == pytest.approx(whole, rel=1e-9)
    assert result.classification == classify("perplexity", result.ratio)


@settings(max_examples=200, deadline=None)
@given(changes, st.integers(0, 24))
def test_a_class_is_settled_only_when_the_whole_bound_lies_in_it(per_sequence, more):
    total = len(per_sequence) + more
    result = bound(per_sequence, [10] * len(per_sequence), total)
    assert result.low <= result.ratio <= result.high
    if result.classification is not None:
        assert classify("perplexity", result.low) == classify("perplexity", result.high) == result.classification
        assert result.sequences >= min(MIN_SEQUENCES, total)


def test_a_bound_straddling_a_threshold_settles_nothing():
    significant = math.log(IMPACT_THRESHOLDS["perplexity"]["significant"])
    result = bound([significant * 10 * f for f in (0.5, 1.5, 1.0, 0.8)], [10] * 4, 16)
    assert result.low < IMPACT_THRESHOLDS["perplexity"]["significant"] < result.high
    assert result.classification is None and result.confidence == CONFIDENCE


def test_an_overflowing_sequence_settles_critical_as_the_whole_text_would():
    result = bound([0.1, math.inf], [10, 10], 16)
    assert result.classification == classify("perplexity", math.inf) == "critical"


@settings(max_examples=200, deadline=None)
@given(changes, st.integers(0, 6), st.integers(0, 24))
def test_with_a_census_every_sequence_measured_still_gives_the_whole_texts_figure(per_sequence, census, more):
    total = len(per_sequence) + more
    result = bound(per_sequence, [10] * len(per_sequence), total, census=census, total_tokens=10 * total)
    assert result.low <= result.ratio <= result.high
    if result.classification is not None:
        assert classify("perplexity", result.low) == classify("perplexity", result.high) == result.classification
        assert result.sequences - min(census, total) >= min(MIN_SEQUENCES, total - min(census, total))
    if more == 0:
        assert result.low == result.high == pytest.approx(math.exp(sum(per_sequence) / (10 * total)), rel=1e-9)


def test_a_figure_on_a_threshold_needs_every_sequence_left() -> None:
    on_threshold = [math.log(2.0) * 10 + d for d in (0.3, -0.3, 0.2, -0.2)]
    assert bound(on_threshold, [10] * 4, 16).more == 12


def test_a_figure_far_from_a_threshold_needs_few_more() -> None:
    spread = [math.log(4.0) * 127 + d for d in (10.0, -12.0, 4.0)]  # x4 with SmolLM2's spread
    result = bound(spread, [127] * 3, 16)
    assert result.classification is None and 1 <= result.more <= 3


@settings(max_examples=60)
@given(
    per_sequence=st.lists(st.floats(-5, 5), min_size=2, max_size=12),
    extra=st.integers(0, 8),
)
def test_a_bound_asks_for_more_sequences_only_while_unsettled_and_never_more_than_are_left(per_sequence, extra):
    result = bound(per_sequence, [10] * len(per_sequence), len(per_sequence) + extra)
    if result.classification is not None:
        assert result.more == 0
    else:
        assert 1 <= result.more <= extra


def test_a_census_of_nothing_bounds_as_plain_sampling_does():
    per_sequence = [0.3, 0.5, 0.1, 0.4, 0.2]
    plain = bound(per_sequence, [10] * 5, 16)
    stratified = bound(per_sequence, [10] * 5, 16, census=0, total_tokens=160)
    assert (stratified.low, stratified.ratio, stratified.high) == pytest.approx((plain.low, plain.ratio, plain.high))


def test_one_sequence_unlike_the_rest_is_counted_whole_when_it_is_in_the_census():
    """SmolLM2's restored pass: 15 sequences unchanged, one whose second spike was restored out of context (x140)."""
    tokens, total = 127, 16
    outlier, rest = 4.94 * tokens, [0.001 * tokens] * 15
    truth = math.exp((outlier + sum(rest)) / (tokens * total))  # x1.36: significant
    counted = bound([outlier, *rest[:4]], [tokens] * 5, total, census=1, total_tokens=tokens * total)
    assert counted.classification == classify("perplexity", truth) == "significant"
    assert counted.low <= truth <= counted.high
    unseen = bound(rest[:4], [tokens] * 4, total)  # sampled alone, the odd sequence was not drawn: a wrong class
    assert unseen.classification == "inert"


def test_a_sequence_with_a_second_spike_joins_the_census():
    from swindex.verification.ablations import _unusual_sequences

    captures = [torch.zeros(4, 8), torch.zeros(4, 8)]
    for block in captures:
        block[:, 0] = 1000.0  # every sequence's first token
    captures[1][3, 5] = 900.0  # sequence 7 has a second super activation
    captures[0][2, 0] = 10.0  # sequence 2 has none
    for block in captures:
        block += 1.0  # ordinary values around the spikes
    assert _unusual_sequences(captures, 8) == [2, 7]


def test_a_second_spike_too_small_to_be_restored_still_joins_the_census():
    """SmolLM2 on 26 sequences: sequence 21's second spike (7,074 where the peak is 14,253) is not restored, so the
    restored pass changes it x5; counting only restored positions left it to a sample that missed it."""
    from swindex.verification.ablations import RESTORE_FRACTION, _unusual_sequences

    captures = [torch.ones(4, 8), torch.ones(4, 8)]
    for block in captures:
        block[:, 0] = 14253.0
    captures[1][1, 1] = 0.496 * 14253.0  # massive for the channel, yet under the share that is restored
    assert captures[1][1, 1] < RESTORE_FRACTION * 14253.0
    assert _unusual_sequences(captures, 8) == [5]


def test_a_peak_every_sequence_holds_stays_out_of_the_census():
    """Every sequence's first token has the same context, so each holds the peak: counting one whole costs a sequence
    and guards against nothing; the first one sampled holds it too."""
    from swindex.verification.ablations import _peak_everywhere, _unusual_sequences

    captures = [torch.ones(4, 8), torch.ones(4, 8)]
    for block in captures:
        block[:, 0] = 24881.6
    captures[1][0, 0] = 24881.6 * (1 - 1e-5)  # another batch shape: float rounding
    assert _peak_everywhere(captures, 8) and _unusual_sequences(captures, 8) == []
    captures[0][3, 0] = 20000.0  # one sequence's first token differs: the peak's own sequence is special again
    assert not _peak_everywhere(captures, 8)


def test_the_zeroed_super_activation_is_read_where_a_settled_pass_measured_the_same_peak():
    from swindex.verification.verify import _at_peak

    original = [torch.ones(4, 8), torch.ones(4, 8)]
    for block in original:
        block[:, 0] = 24881.6
    zeroed = [torch.full((4, 8), math.nan), torch.full((4, 8), math.nan)]
    zeroed[1][2] = 3.0  # only sequence 6 was measured
    zeroed[1][2, 0] = -12.5
    assert _at_peak(original, zeroed, (0, 0)) == -12.5  # sequence 0 holds the peak first, but was not measured
    assert _at_peak(original, [torch.full((4, 8), math.nan)] * 2, (0, 0)) is None


def test_a_channel_without_a_super_activation_makes_no_census():
    from swindex.verification.ablations import _unusual_sequences

    ordinary = [torch.randn(4, 8, generator=torch.Generator().manual_seed(k)) for k in range(2)]
    assert _unusual_sequences(ordinary, 8) == []


def test_unusual_counts_in_much_of_the_text_make_no_census():
    """A rare odd sequence can hide from a sample; when half the text is odd, sampling finds it as readily."""
    from swindex.verification.ablations import _unusual_sequences

    captures = [torch.ones(4, 8), torch.ones(4, 8)]
    for block in captures:
        block[:, 0] = 1000.0
        block[:2, 5] = 900.0  # half the sequences have a second super activation
    assert _unusual_sequences(captures, 8) == []


def test_a_routed_experts_capture_makes_no_census():
    from swindex.verification.ablations import _unusual_sequences

    assert _unusual_sequences([torch.ones(37)], 8) == []


@pytest.fixture(scope="module")
def measured():
    """A Llama whose planted weight (layer 1) is critical,
    with the largest weight of every other layer as candidates."""
    model, planted = dependent_llama(seed=0)
    others = [largest_weight(model, f"model.layers.{layer}.mlp.down_proj.weight") for layer in (0, 2, 3, 4, 5)]
    entry = entry_for(model, planted, *others)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    reports = {
        name: verify(model, entry, method=method, sequential=sequential, **RUN)
        for name, (method, sequential) in WAYS.items()
    }
    return model, entry, reports, before, hooks


@pytest.mark.parametrize("way", [w for w in WAYS if w.startswith("sequential")])
def test_sequential_verification_classifies_as_the_whole_text_does(measured, way):
    _, _, reports, _, _ = measured
    whole = reports["whole text, plain"]
    assert [w.classification for w in reports[way].weights] == [w.classification for w in whole.weights]
    assert "critical" in [w.classification for w in whole.weights]


@pytest.mark.parametrize("way", [w for w in WAYS if w.startswith("sequential")])
def test_each_settled_bound_holds_the_whole_texts_ratio(measured, way):
    _, _, reports, _, _ = measured
    for settled, whole in zip(reports[way].weights, reports["whole text, plain"].weights):
        assert settled.bound.low * (1 - 1e-4) <= whole.ratio <= settled.bound.high * (1 + 1e-4), settled.coordinate
        assert settled.bound.confidence == CONFIDENCE


def test_weights_far_from_a_threshold_settle_on_part_of_the_text(measured):
    _, _, reports, _, _ = measured
    whole, sequential = reports["whole text, plain"], reports["sequential, auto"]
    everything = whole.weights[0].tokens
    assert all(w.tokens == everything for w in whole.weights)
    assert sum(w.tokens for w in sequential.weights) < len(sequential.weights) * everything / 2
    assert "sequence by sequence" in sequential.method and "settled after" in str(sequential)


def test_the_original_and_each_super_activation_are_still_the_whole_texts(measured):
    """The original pass uses every sequence: it is what every settled ratio is paired against."""
    _, _, reports, _, _ = measured
    whole, sequential = reports["whole text, plain"], reports["sequential, auto"]
    assert sequential.original == pytest.approx(whole.original, rel=1e-4)
    for a, b in zip(whole.weights, sequential.weights):
        assert b.super_activation == pytest.approx(a.super_activation, rel=1e-4)
        assert b.super_activation_zeroed == pytest.approx(
            a.super_activation_zeroed, rel=1e-3, abs=1e-3 * abs(a.super_activation)
        )


@pytest.mark.parametrize("figure", ["all_zeroed", "restored_activation", "control"])
def test_each_joint_figure_settles_with_a_bound_holding_the_whole_texts_ratio(measured, figure):
    """All zeroed, restored and the control are settled like a weight alone: their bound holds the plain figure."""
    _, _, reports, _, _ = measured
    whole, sequential = reports["whole text, plain"], reports["sequential, auto"]
    settled = sequential.settled[figure]
    plain_ratio = getattr(whole, figure) / whole.original
    assert settled.bound.low * (1 - 1e-4) <= plain_ratio <= settled.bound.high * (1 + 1e-4)
    assert classify("perplexity", getattr(sequential, figure) / sequential.original) == classify(
        "perplexity", plain_ratio
    )
    assert settled.tokens <= sequential.tokens_predicted and figure not in whole.settled


def test_a_joint_figure_settled_early_is_recorded_as_an_estimate_with_its_bound(measured):
    _, entry, reports, _, _ = measured
    report = reports["sequential, auto"]
    run = record(entry, report, today="2030-01-02").entry["evidence"]["verification"]
    assert run["settled"] == {name: figure.to_dict() for name, figure in report.settled.items()}
    assert any(figure.tokens < report.tokens_predicted for figure in report.settled.values())
    assert "an estimate, settled after" in str(report)


def test_the_evidence_records_the_tokens_and_bound_that_settled_each_claim(measured):
    _, entry, reports, _, _ = measured
    recorded = record(entry, reports["sequential, auto"], today="2030-01-02").entry
    for claim, weight in zip(recorded["claims"], reports["sequential, auto"].weights):
        impact = claim["impact"]
        assert impact["tokens"] == weight.tokens
        assert impact["bound"] == {"low": weight.bound.low, "high": weight.bound.high, "confidence": CONFIDENCE}
        assert impact["bound"]["low"] <= impact["ratio"] <= impact["bound"]["high"]


def test_sequential_verification_leaves_the_model_as_it_found_it(measured):
    model, _, _, before, hooks = measured
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all("forward" not in layer.__dict__ for layer in model.model.layers)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert lm_pass(model, sampled(model, sequences=2, length=8)).perplexity > 0


def test_a_single_claim_is_measured_on_the_whole_text():
    """With one claim, zeroing it alone is zeroing all of them: that figure needs every sequence."""
    model, planted = dependent_llama(seed=1)
    report = verify(model, entry_for(model, planted), sequences=6, length=16)
    assert report.weights[0].tokens == report.tokens_predicted
    weight = report.weights[0]
    assert weight.bound.low == pytest.approx(weight.ratio, rel=1e-9) and weight.bound.high == pytest.approx(
        weight.ratio, rel=1e-9
    )


@pytest.mark.parametrize(
    ("bound", "says"),
    [
        ({"low": 0.5, "high": 0.9}, "does not hold the ratio"),
        ({"low": 0.9, "high": 1.2}, "not wholly inside the class inert"),
    ],
)
def test_the_validator_refuses_a_bound_that_did_not_settle_the_recorded_class(measured, bound, says):
    from swindex.validate import validate_entry_dict

    _, entry, reports, _, _ = measured
    recorded = record(entry, reports["sequential, auto"], today="2030-01-02").entry
    inert = next(i for i, c in enumerate(recorded["claims"]) if c["impact"]["classification"] == "inert")
    recorded["claims"][inert]["impact"]["bound"] = dict(bound, confidence=CONFIDENCE)
    problems = validate_entry_dict(recorded)
    assert [p.field for p in problems] == [f"claims[{inert}].impact.bound"] and says in problems[0].message
