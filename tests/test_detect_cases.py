"""The hard cases of the issue, on planted models: shared rows, shared columns, many layers, modest inputs, experts."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from planted import Plant, build_planted  # noqa: E402

from swindex.detection import Thresholds, detect  # noqa: E402
from swindex.detection import hooks  # noqa: E402

PAPER_INPUT_THRESHOLD = 50.0  # the paper's fixed |input| threshold


def coordinates(weights):
    return sorted((w.tensor, tuple(w.index)) for w in weights)


def test_several_weights_sharing_one_row():
    """Like Llama-13B layer 2: [2231, 2278] and [2231, 6939] feed the same output channel."""
    model, planted = build_planted("llama", plants=(Plant(2, row=9, column=11, input=40, weight=-6), Plant(2, row=9, column=50, input=30, weight=-5)))
    result = detect(model)
    assert coordinates(result.super_weights) == coordinates(planted)
    assert {w.row for w in result.super_weights} == {9}


def test_several_rows_sharing_one_column():
    """Like Phi-3: one intermediate channel feeds super weights in several output rows."""
    model, planted = build_planted("phi3", plants=(Plant(1, row=5, column=7, weight=-8), Plant(1, row=20, column=7, weight=6)))
    result = detect(model)
    assert coordinates(result.super_weights) == coordinates(planted)
    assert {w.column for w in result.super_weights} == {7}


def test_weights_in_several_layers():
    """Like OLMo-7B (layers 1, 2, 7 and 24): every layer's weight is found, each in its own pass."""
    plants = (Plant(0, 5, 7), Plant(1, 9, 20), Plant(3, 30, 40), Plant(5, 44, 100))
    model, planted = build_planted("olmo", plants=plants, num_layers=6)
    result = detect(model)
    assert coordinates(result.super_weights) == coordinates(planted)
    assert [w.layer for w in result.super_weights] == [0, 1, 3, 5]
    assert result.iterations == 5


def test_modest_input_with_a_dominant_product():
    """Like SmolLM2-1.7B layer 1 (input 26.5, output 342): the paper's fixed input threshold of 50 misses it."""
    model, planted = build_planted("llama", plants=(Plant(1, row=5, column=7, input=4.0, weight=60.0),))
    result = detect(model)
    (found,) = result.super_weights
    assert (found.tensor, found.index) == (planted[0].tensor, planted[0].index)
    assert abs(found.input_activation) < PAPER_INPUT_THRESHOLD
    assert all(abs(layer.input_max) < PAPER_INPUT_THRESHOLD for layer in result.layers)


def test_experts_are_reported_with_their_expert_index():
    model, planted = build_planted("mixtral", plants=(Plant(1, 5, 7, expert=2), Plant(2, 9, 11, expert=3)))
    result = detect(model)
    assert [(w.expert, w.index) for w in result.super_weights] == [(2, (2, 5, 7)), (3, (3, 9, 11))]
    assert all(w.tensor.endswith("mlp.experts.down_proj") for w in result.super_weights)


def test_dense_and_expert_layers_in_one_model():
    """DeepSeek-V3 style: dense first layer, then routed experts beside a shared expert."""
    model, planted = build_planted("deepseek_v3", plants=(Plant(0, 5, 7), Plant(2, 9, 11, expert=1)))
    result = detect(model)
    assert coordinates(result.super_weights) == coordinates(planted)
    assert [w.expert for w in result.super_weights] == [None, 1]


@pytest.mark.parametrize("family, plants", [("llama", (Plant(1, 5, 7), Plant(2, 9, 11))), ("gpt2", None), ("qwen2_moe", None)])
def test_parameters_are_bit_for_bit_unchanged(family, plants):
    model, _ = build_planted(family, plants=plants)
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    assert detect(model).super_weights
    after = model.state_dict()
    changed = [n for n, t in before.items() if not torch.equal(t.view(torch.uint8), after[n].detach().view(torch.uint8))]
    assert changed == []


def test_iteration_cap_stops_and_says_so():
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7), Plant(3, 9, 11)))
    result = detect(model, max_iterations=1)
    assert [w.layer for w in result.super_weights] == [1]
    assert result.stop_reason.startswith("iteration cap")
    assert "iteration cap" in result.to_entry(model_id="acme/capped")["evidence"]["detection"]["notes"]


def test_later_passes_start_at_the_changed_layer(monkeypatch):
    calls = []
    original = hooks.LayerReplay.run_from
    monkeypatch.setattr(hooks.LayerReplay, "run_from", lambda self, start: (calls.append(start), original(self, start))[1])
    model, _ = build_planted("llama", plants=(Plant(1, 5, 7), Plant(3, 9, 11)))
    result = detect(model)
    assert calls == [1, 3]
    assert result.iterations == 3


def test_full_reruns_give_the_same_result_as_replay(monkeypatch):
    model, _ = build_planted("gemma2", plants=(Plant(0, 5, 7), Plant(2, 9, 11)))
    replayed = detect(model)

    def no_capture(self):
        from contextlib import nullcontext

        return nullcontext(self)

    monkeypatch.setattr(hooks.LayerReplay, "capturing", no_capture)
    rerun = detect(model)
    assert [(w.coordinate, w.iteration) for w in rerun.super_weights] == [(w.coordinate, w.iteration) for w in replayed.super_weights]
    assert [w.output_activation for w in rerun.super_weights] == pytest.approx([w.output_activation for w in replayed.super_weights], rel=1e-5)
    assert any("reran the whole model" in note for note in rerun.notes)


def test_an_ordinary_weight_passing_on_a_huge_input_is_not_reported():
    """Once the super weight is gone, its huge input times ordinary weights in the same column is no spike of its own."""
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7, input=400.0, weight=-8.0),))
    result = detect(model)
    assert [w.index for w in result.super_weights] == [planted[0].index]
    lenient = detect(model, thresholds=Thresholds(min_weight_ratio=0.0))
    assert len(lenient.super_weights) > 1
