"""The fast way of verifying (start at the ablated layer, several ablations per forward pass) against the plain way.

The plain way zeroes each weight in place and runs the whole model; the fast way must give the same
classifications and the same figures to within float rounding, and say which shortcuts it took.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fixtures_dependent import dependent_llama, entry_for, largest_weight  # noqa: E402
from planted import build_planted  # noqa: E402

from swindex.surgery import Target, channels, zeroed  # noqa: E402
from swindex.verification import verify  # noqa: E402
from swindex.verification.ablations import Ablation, Evaluation, _groups, measure  # noqa: E402
from swindex.verification.fast import Recorder, ablating, layers_for_shortcuts, stacked_weight, starting_at  # noqa: E402
from swindex.verification.inputs import sampled, sentences  # noqa: E402
from swindex.verification.measure import lm_pass  # noqa: E402

RUN = {
    "sequences": 4,
    "length": 24,
    "batch_size": 2,
    "sequential": False,
}  # every weight on the whole text: figures match
SHORTCUTS = ("starts at the first layer it changes", "share each forward pass")


def _claim(model, tensor, conv1d=False, second=0):
    """The largest-magnitude scalar of a down projection as a claim (row/column as the registry names them);
    ``second=k``: the (k+1)-th largest instead, another weight of the same tensor."""
    values = model.get_parameter(tensor).detach()
    flat = int(values.abs().flatten().argsort(descending=True)[second])
    i, j = divmod(flat, values.shape[1])
    row, column = (j, i) if conv1d else (i, j)
    layer = int(next(part for part in tensor.split(".") if part.isdigit()))
    return {
        "layer": layer,
        "tensor": tensor,
        "row": row,
        "column": column,
        "expert": None,
        "index": [i, j],
        "value": float(values[i, j]),
        "status": "detected",
        "impact": {"classification": "unmeasured"},
        "sources": [{"citation": "tests (largest weight)", "kind": "swindex", "evidence": "detected"}],
    }


def _both(model, entry, method="fast", **options):
    """The plain way and the fast way (``fast``: every shortcut that applies, whether or not it pays on this device)."""
    plain = verify(model, entry, method="plain", **{**RUN, **options})
    fast = verify(model, entry, method=method, **{**RUN, **options})
    return plain, fast


def _assert_same(plain, fast, rel=1e-4):
    assert [w.classification for w in fast.weights] == [w.classification for w in plain.weights]
    assert [w.coordinate for w in fast.weights] == [w.coordinate for w in plain.weights]
    for a, b in zip(plain.weights, fast.weights):
        assert b.zeroed == pytest.approx(a.zeroed, rel=rel, abs=1e-6)
        assert b.super_activation == pytest.approx(a.super_activation, rel=rel)
        assert b.super_activation_zeroed == pytest.approx(
            a.super_activation_zeroed, rel=rel, abs=1e-4 * abs(a.super_activation)
        )
    for figure in ("original", "all_zeroed", "restored_activation", "control"):
        assert getattr(fast, figure) == pytest.approx(getattr(plain, figure), rel=rel, abs=1e-6), figure


@pytest.fixture(scope="module")
def llama_reports():
    """A Llama whose planted weight (layer 1) is critical, the largest weight of layers 2 to 5,
    and two more in layer 4."""
    model, planted = dependent_llama(seed=0)
    others = [largest_weight(model, f"model.layers.{layer}.mlp.down_proj.weight") for layer in (2, 3, 4, 5)]
    entry = entry_for(model, planted, *others)
    entry["claims"] += [_claim(model, "model.layers.4.mlp.down_proj.weight", second=k) for k in (1, 2)]
    return _both(model, entry)


def test_a_llama_is_classified_the_same_both_ways(llama_reports):
    plain, fast = llama_reports
    _assert_same(plain, fast)
    assert [w.classification for w in fast.weights][0] == "critical"


def test_the_fast_way_says_which_shortcuts_it_took(llama_reports):
    plain, fast = llama_reports
    assert plain.method.startswith("plain:")
    assert fast.method.startswith("fast:") and all(s in fast.method for s in SHORTCUTS)
    assert "method: fast" in str(fast) and fast.to_dict()["method"] == fast.method


def test_on_cpu_the_default_starts_at_the_ablated_layer_without_stacking():
    """Stacked copies cost a CPU as much as separate passes, so auto does not stack there; it agrees all the same."""
    model, planted = dependent_llama(seed=0)
    entry = entry_for(model, planted)
    entry["claims"] += [_claim(model, "model.layers.4.mlp.down_proj.weight", second=k) for k in (0, 1)]
    plain, auto = _both(model, entry, method="auto")
    _assert_same(plain, auto)
    assert SHORTCUTS[0] in auto.method and SHORTCUTS[1] not in auto.method


def test_on_a_crowded_machine_the_shortcuts_stay_within_the_memory_budget_and_agree(monkeypatch):
    """The shortcuts' buffers are bounded by swindex's one memory budget: with almost nothing free, no copies are
    stacked and no residual stream is recorded, and the figures are the plain way's all the same."""
    from swindex import _dtypes

    model, planted = dependent_llama(seed=0)
    entry = entry_for(model, planted)
    entry["claims"] += [_claim(model, "model.layers.4.mlp.down_proj.weight", second=k) for k in (0, 1)]
    monkeypatch.setattr(_dtypes, "available_memory", lambda device="cpu": 64 * 1024)
    plain, fast = _both(model, entry)
    _assert_same(plain, fast)
    assert "two stacked copies would exceed the memory budget" in fast.method
    assert "every pass starts at layer 0: the recorded residual stream would take" in fast.method


def test_an_encoder_is_classified_the_same_both_ways():
    model, (planted,) = build_planted("bert")
    claims = [_claim(model, f"encoder.layer.{layer}.output.dense.weight") for layer in (1, 2, 3)]
    claims.append(_claim(model, "encoder.layer.2.output.dense.weight", second=1))
    assert claims[0]["index"] == list(planted.index)
    entry = {**entry_for(model), "claims": claims}
    plain, fast = _both(model, entry, sequences=6, length=12)
    _assert_same(plain, fast)
    assert fast.metric == "embedding_shift" and all(s in fast.method for s in SHORTCUTS)


def test_a_gpt2_conv1d_model_is_classified_the_same_both_ways():
    model, _ = build_planted("gpt2", tie_word_embeddings=False)
    claims = [_claim(model, f"transformer.h.{layer}.mlp.c_proj.weight", conv1d=True) for layer in (1, 2, 3)]
    second = dict(
        claims[1], index=[0, 1], row=1, column=0, value=float(model.get_parameter(claims[1]["tensor"]).detach()[0, 1])
    )
    claims.insert(2, second)  # two ablations of one Conv1D in one stacked pass
    plain, fast = _both(model, {**entry_for(model), "claims": claims})
    _assert_same(plain, fast)
    assert all(s in fast.method for s in SHORTCUTS)


def test_mixture_of_experts_runs_one_ablation_per_pass_and_agrees():
    model, (w,) = build_planted("mixtral")
    claim = {
        "layer": w.layer,
        "tensor": w.tensor,
        "row": w.row,
        "column": w.column,
        "expert": w.expert,
        "index": list(w.index),
        "value": w.value,
        "status": "detected",
        "impact": {"classification": "unmeasured"},
        "sources": [{"citation": "tests", "kind": "swindex", "evidence": "detected"}],
    }
    plain, fast = _both(model, {**entry_for(model), "claims": [claim]})
    _assert_same(plain, fast)
    assert "one ablation per forward pass" in fast.method


def _evaluation(model, planted_claims, sequences=4, length=16):
    inputs = sampled(model, sequences=sequences, length=length)
    ablations = [Ablation(Target(c["tensor"], tuple(c["index"])), channels(model, [c])[0]) for c in planted_claims]
    return Evaluation(model, inputs, True, 2), ablations


def test_a_stacked_pass_gives_each_copy_exactly_its_own_ablation():
    """Three ablations in one forward pass score as the same three weights zeroed in place, one at a time."""
    model, planted = dependent_llama(seed=1)
    claims = [
        planted.as_dict(),
        largest_weight(model, "model.layers.2.mlp.down_proj.weight").as_dict(),
        largest_weight(model, "model.layers.3.mlp.down_proj.weight").as_dict(),
    ]
    assert len({(c["tensor"], tuple(c["index"])) for c in claims}) == 3
    evaluation, ablations = _evaluation(model, claims)
    weights = [stacked_weight(model, a.target, a.channel) for a in ablations]
    with ablating(model, weights):
        stacked = evaluation.passes(copies=3, channels=[a.channel for a in ablations])
    for ablation, p in zip(ablations, stacked):
        with zeroed(model, [ablation.target]):
            alone = evaluation.passes(channels=[ablation.channel])[0]
        assert p.perplexity == pytest.approx(alone.perplexity, rel=1e-5)
        assert torch.allclose(
            torch.cat(p.channels[ablation.channel]), torch.cat(alone.channels[ablation.channel]), rtol=1e-4, atol=1e-5
        )


def test_a_pass_started_at_a_layer_from_the_recording_matches_the_whole_model():
    model, planted = dependent_llama(seed=0)
    evaluation, _ = _evaluation(model, [planted.as_dict()])
    layers, why = layers_for_shortcuts(model)
    assert why is None
    recorder = Recorder(layers, [3])
    with recorder.recording():
        whole = evaluation.passes(around=recorder.call)[0]
    assert recorder.problem is None
    started = evaluation.passes(around=lambda k: starting_at(layers, 3, recorder.outputs[3][k]))[0]
    assert started.perplexity == pytest.approx(whole.perplexity, rel=1e-6)


class _Stack(torch.nn.Module):
    """Four layers run in ``order``, the residual stream scaled by ``between`` after layer 1."""

    def __init__(self, order=(0, 1, 2, 3), between=1.0):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(4))
        self.order, self.between = order, between

    def forward(self, x):
        for i in self.order:
            x = self.layers[i](x)
            if i == 1:
                x = x * self.between
        return x


def _record(stack):
    from swindex.verification.fast import Layers

    recorder = Recorder(Layers("layers", stack.layers, routed=False), [2])
    with torch.no_grad(), recorder.recording(), recorder.call(0):
        stack(torch.ones(2, 4))
    return recorder


def test_the_recording_stands_in_for_layers_that_feed_each_other():
    recorder = _record(_Stack())
    assert recorder.problem is None and len(recorder.outputs[2]) == 1


def test_the_recording_notices_a_change_to_the_residual_stream_between_layers():
    assert _record(_Stack(between=2.0)).problem == "layer 2 does not read layer 1's output"


def test_the_recording_notices_a_layer_run_twice():
    assert _record(_Stack(order=(0, 1, 2, 3, 3))).problem == "the model does not run each of its layers once, in order"


def test_an_offloaded_model_is_measured_the_plain_way():
    from accelerate import cpu_offload

    model, planted = dependent_llama(seed=0)
    entry = entry_for(model, planted)
    reference = verify(model, entry, method="plain", **RUN)
    cpu_offload(model, execution_device=torch.device("cpu"))
    report = verify(model, entry, **RUN)
    assert report.method.startswith("plain:") and "offloaded" in report.method
    assert report.weights[0].zeroed == pytest.approx(reference.weights[0].zeroed, rel=1e-5)


def test_a_model_without_a_layer_list_has_no_shortcut():
    layers, why = layers_for_shortcuts(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    assert layers is None and "unknown module structure" in why


def test_ablations_are_stacked_with_their_neighbours_in_depth():
    """Work is (layers run) x (copies + one pass's overhead): a late ablation is not dragged back to layer 0."""
    stackable = [object()] * 6
    groups = _groups([0, 1, 1, 20, 21, 21], stackable, 8, depth=24.0, overhead=1.0)
    assert [g.members for g in groups] == [(0, 1, 2), (3, 4, 5)]
    assert [g.start for g in groups] == [0, 20]


def test_where_a_pass_costs_little_beyond_its_copies_ablations_run_from_their_own_layers():
    groups = _groups([0, 4, 4, 4, 8], [object()] * 5, 8, depth=12.3, overhead=0.0)
    assert [(g.start, g.members) for g in groups] == [(0, (0,)), (4, (1,)), (4, (2,)), (4, (3,)), (8, (4,))]


def test_ablations_that_cannot_be_stacked_run_alone():
    stackable = [object(), None, object()]
    groups = _groups([2, 2, 5], stackable, 8, depth=10.0, overhead=1.0)
    assert sorted((g.members, len(g.stacked)) for g in groups) == [((0, 2), 2), ((1,), 0)]


def test_the_fast_way_leaves_the_model_as_it_found_it():
    model, planted = dependent_llama(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    verify(model, entry_for(model, planted, largest_weight(model, "model.layers.4.mlp.down_proj.weight")), **RUN)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all("forward" not in layer.__dict__ for layer in model.model.layers)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert lm_pass(model, sampled(model, sequences=2, length=8)).perplexity > 0


def test_encoder_inputs_with_padding_stack_correctly():
    """Padded sentences (attention mask) keep their mask in every stacked copy."""
    model, _ = build_planted("bert")
    inputs = sentences(model, None, count=4, length=10)
    inputs.attention_mask[:, 7:] = 0
    claims = [_claim(model, "encoder.layer.2.output.dense.weight", second=k) for k in (0, 1)]
    ablations = [Ablation(Target(c["tensor"], tuple(c["index"])), channels(model, [c])[0]) for c in claims]
    evaluation = Evaluation(model, inputs, False, 4)
    plain = measure(evaluation, ablations, [], method="plain")
    fast = measure(evaluation, ablations, [], method="fast")
    assert "share each forward pass" in str(fast.method)
    for a, b in zip(plain.alone, fast.alone):
        assert torch.allclose(a.embeddings, b.embeddings, rtol=1e-4, atol=1e-5)
