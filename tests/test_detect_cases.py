"""The hard cases of the issue, on planted models: shared rows, shared columns, many layers, modest inputs, experts."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from planted import Plant, build_planted, layers_of  # noqa: E402

from swindex.detection import Thresholds, detect  # noqa: E402
from swindex.detection import hooks  # noqa: E402

PAPER_INPUT_THRESHOLD = 50.0  # the paper's fixed |input| threshold


def coordinates(weights):
    return sorted((w.tensor, tuple(w.index)) for w in weights)


def test_several_weights_sharing_one_row():
    """Like Llama-13B layer 2: [2231, 2278] and [2231, 6939] feed the same output channel."""
    model, planted = build_planted(
        "llama",
        plants=(Plant(2, row=9, column=11, input=40, weight=-6), Plant(2, row=9, column=50, input=30, weight=-5)),
    )
    result = detect(model)
    assert coordinates(result.candidates) == coordinates(planted)
    assert {w.row for w in result.candidates} == {9}


def test_several_rows_sharing_one_column():
    """Like Phi-3: one intermediate channel feeds super weights in several output rows."""
    model, planted = build_planted(
        "phi3", plants=(Plant(1, row=5, column=7, weight=-8), Plant(1, row=20, column=7, weight=6))
    )
    result = detect(model)
    assert coordinates(result.candidates) == coordinates(planted)
    assert {w.column for w in result.candidates} == {7}


def test_weights_in_several_layers():
    """Like OLMo-7B (layers 1, 2, 7 and 24): every layer's weight is found in one pass, each removed as it is found."""
    plants = (Plant(0, 5, 7), Plant(1, 9, 20), Plant(3, 30, 40), Plant(5, 44, 100))
    model, planted = build_planted("olmo", plants=plants, num_layers=6)
    result = detect(model)
    assert coordinates(result.candidates) == coordinates(planted)
    assert [w.layer for w in result.candidates] == [0, 1, 3, 5]
    assert (result.passes, result.layer_evaluations) == (1, 6)


def test_modest_input_with_a_dominant_product():
    """Like SmolLM2-1.7B layer 1 (input 26.5, output 342): the paper's fixed input threshold of 50 misses it."""
    model, planted = build_planted("llama", plants=(Plant(1, row=5, column=7, input=4.0, weight=60.0),))
    result = detect(model)
    (found,) = result.candidates
    assert (found.tensor, found.index) == (planted[0].tensor, planted[0].index)
    assert abs(found.input_activation) < PAPER_INPUT_THRESHOLD
    assert all(abs(layer.input_max) < PAPER_INPUT_THRESHOLD for layer in result.layers)


def test_experts_are_reported_with_their_expert_index():
    model, planted = build_planted("mixtral", plants=(Plant(1, 5, 7, expert=2), Plant(2, 9, 11, expert=3)))
    result = detect(model)
    assert [(w.expert, w.index) for w in result.candidates] == [(2, (2, 5, 7)), (3, (3, 9, 11))]
    assert all(w.tensor.endswith("mlp.experts.down_proj") for w in result.candidates)


def test_dense_and_expert_layers_in_one_model():
    """DeepSeek-V3 style: dense first layer, then routed experts beside a shared expert."""
    model, planted = build_planted("deepseek_v3", plants=(Plant(0, 5, 7), Plant(2, 9, 11, expert=1)))
    result = detect(model)
    assert coordinates(result.candidates) == coordinates(planted)
    assert [w.expert for w in result.candidates] == [None, 1]


@pytest.mark.parametrize(
    "family, plants", [("llama", (Plant(1, 5, 7), Plant(2, 9, 11))), ("gpt2", None), ("qwen2_moe", None)]
)
def test_parameters_are_bit_for_bit_unchanged(family, plants):
    model, _ = build_planted(family, plants=plants)
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    assert detect(model).candidates
    after = model.state_dict()
    changed = [
        n for n, t in before.items() if not torch.equal(t.view(torch.uint8), after[n].detach().view(torch.uint8))
    ]
    assert changed == []


def test_the_candidate_cap_stops_and_says_so():
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7), Plant(3, 9, 11)))
    result = detect(model, max_candidates=1)
    assert [w.layer for w in result.candidates] == [1]
    assert result.stop_reason.startswith("candidate cap")
    assert "candidate cap" in result.to_entry(model_id="acme/capped")["evidence"]["detection"]["notes"]


def test_a_candidate_too_small_for_the_model_found_before_its_massive_spike_is_dropped():
    """The scale grows during a pass: a layer-1 spike of ~80 counts until layer 3 makes one of ~3,000."""
    model, planted = build_planted(
        "llama", plants=(Plant(1, 5, 7, input=10, weight=8), Plant(3, 9, 11, input=100, weight=30)), num_layers=6
    )
    result = detect(model)
    assert [w.coordinate for w in result.candidates] == [planted[1].coordinate]
    assert result.peak.layer == 3 and result.peak.value == pytest.approx(abs(planted[1].output_activation), rel=0.02)
    assert result.passes == 2


def test_the_pass_that_meets_a_larger_spike_ends_there_and_the_next_skips_unchanged_layers():
    """Pass 1 runs layers 0-3 and stops at the larger spike;
    pass 2 restarts at layer 1, layer 0 answering from its cache."""
    model, _ = build_planted(
        "llama", plants=(Plant(1, 5, 7, input=10, weight=8), Plant(3, 9, 11, input=100, weight=30)), num_layers=6
    )
    result = detect(model)
    assert result.layer_evaluations == 4 + 5
    assert result.full_passes == pytest.approx(9 / 6)


def test_skipping_cached_layers_gives_the_same_result_as_full_passes(monkeypatch):
    """Gemma 2 alternates sliding and global attention:
    what the model passes each layer is kept when layers are skipped."""
    plants = (Plant(1, 5, 7, input=10, weight=8), Plant(2, 9, 11, input=100, weight=30), Plant(3, 20, 30))
    model, planted = build_planted("gemma2", plants=plants)
    skipping = detect(model)
    assert [w.coordinate for w in skipping.candidates] == [p.coordinate for p in planted[1:]]
    assert (skipping.passes, skipping.layer_evaluations) == (2, 3 + 3)

    original = hooks.LayerCache.active
    monkeypatch.setattr(hooks.LayerCache, "active", lambda self, skip_before=0: original(self, 0))
    full = detect(model)
    assert full.layer_evaluations == skipping.layer_evaluations + 1
    assert [w.coordinate for w in full.candidates] == [w.coordinate for w in skipping.candidates]
    assert [w.output_activation for w in full.candidates] == pytest.approx(
        [w.output_activation for w in skipping.candidates], rel=1e-5
    )


def test_an_ordinary_weight_passing_on_a_huge_input_is_not_reported():
    """Once the candidate is gone, its huge input times ordinary weights in the same column is no spike of its own."""
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7, input=400.0, weight=-8.0),))
    result = detect(model)
    assert [w.index for w in result.candidates] == [planted[0].index]
    lenient = detect(model, thresholds=Thresholds(min_output=1.0, min_scale=0.0, min_column_ratio=0.0))
    assert len(lenient.candidates) > 1


def _row_median(family, layer, row, **options):
    twin, _ = build_planted(family, plants=(), **options)
    return float(layers_of(twin)[layer].mlp.down_proj.weight[row].detach().abs().median())


def test_a_weight_only_7x_its_row_median_that_makes_a_massive_spike_is_found():
    """Like real super weights 7-9x their row's median whose product makes a spike 2,000x the layer's median."""
    weight = 7 * _row_median("llama", 1, 5)
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7, input=700 / weight, weight=weight),))
    result = detect(model)
    (found,) = result.candidates
    assert found.coordinate == planted[0].coordinate
    assert found.weight_ratio == pytest.approx(7, rel=0.05)
    assert found.output_ratio > 2000


def test_the_rest_of_a_removed_weights_column_stays_out():
    """A 7x weight needs a huge input; the other rows of its column pass it on, ~half the spike each,
    and are no candidates."""
    weight = 7 * _row_median("llama", 1, 5)
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7, input=700 / weight, weight=weight),))
    assert len(detect(model).candidates) == 1
    lenient = detect(model, thresholds=Thresholds(min_column_ratio=0.0))
    assert len(lenient.candidates) > 10
    assert {w.column for w in lenient.candidates} == {7}


MODEST = (
    Plant(2, 5, 7, input=10, weight=12),
    Plant(3, 30, 40, input=10, weight=12),
    Plant(4, 44, 100, input=10, weight=12),
    Plant(5, 12, 3, input=10, weight=12),
)
DIFFUSE_MASSIVE = tuple(
    Plant(1, 9, 20 + k, input=30, weight=10) for k in range(8)
)  # ~2,400, no weight more than 1/8 of it
WIDE = {
    "initializer_range": 0.15,
    "num_layers": 6,
}  # layer medians ~1, like a trained model's, so ~120 is ~100x the median


def test_many_modest_outliers_far_below_the_models_massive_activation_yield_no_candidate():
    """Like the real 1.5B decoder: outputs ~100x their layer's median,
    far below a massive activation no single weight makes."""
    model, _ = build_planted("llama", plants=DIFFUSE_MASSIVE + MODEST, **WIDE)
    result = detect(model)
    assert result.candidates == ()
    modest = [m for m in result.layers if m.layer >= 2]
    assert all(50 < abs(m.output_max) and abs(m.output_max) / m.output_median > 100 for m in modest)
    assert result.peak.layer == 1 and result.peak.value > 10 * max(abs(m.output_max) for m in modest)


def test_the_same_outliers_are_candidates_when_nothing_larger_sets_the_scale():
    model, planted = build_planted("llama", plants=MODEST, **WIDE)
    assert coordinates(detect(model).candidates) == coordinates(planted)
