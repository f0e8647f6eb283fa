"""Round-to-nearest quantization with super weights held out: the arithmetic, and the effect on a dependent model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from fixtures_dependent import dependent_llama  # noqa: E402
from planted import build_planted  # noqa: E402

from swindex.errors import SwindexError  # noqa: E402
from swindex.quantize import (  # noqa: E402
    Variant,
    compare_rtn,
    quantizable_parameters,
    quantize_model,
    quantize_tensor,
    quantized,
    quantized_activations,
)
from swindex.surgery import channels  # noqa: E402
from swindex.verification.inputs import sampled  # noqa: E402
from swindex.verification.measure import lm_pass  # noqa: E402


def raw(model) -> dict[str, bytes]:
    return {k: v.detach().contiguous().view(torch.uint8).numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def weight():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(32, 48, generator=g) * 0.1
    w[5, 7] = 4.0
    return w


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("block", [128, 512, None])
def test_each_block_uses_at_most_two_to_the_bits_levels(weight, bits, block):
    q, _ = quantize_tensor(weight, bits, block)
    size = weight.numel() if block is None else block
    for chunk in q.reshape(-1).split(size):
        assert chunk.unique().numel() <= 2**bits


@pytest.mark.parametrize("bits", [4, 8])
def test_rounding_error_is_at_most_half_a_step(weight, bits):
    q, _ = quantize_tensor(weight, bits, 128)
    blocks = weight.reshape(-1, 128)
    step = (blocks.amax(1) - blocks.amin(1)) / (2**bits - 1)
    error = (q.reshape(-1, 128) - blocks).abs().amax(1)
    assert torch.all(error <= step / 2 + 1e-6)


def test_held_out_weights_keep_their_exact_value(weight):
    q, _ = quantize_tensor(weight, 4, None, holdout=[(5, 7)], clip="zscore")
    assert q[5, 7].item() == weight[5, 7].item()


def test_holding_out_the_outlier_shrinks_the_error_of_the_rest(weight):
    mask = torch.ones_like(weight, dtype=torch.bool)
    mask[5, 7] = False
    plain, _ = quantize_tensor(weight, 4, None)
    kept, _ = quantize_tensor(weight, 4, None, holdout=[(5, 7)])
    assert (kept - weight)[mask].abs().mean() < 0.5 * (plain - weight)[mask].abs().mean()


@pytest.mark.parametrize("clip", ["zscore", "percentile"])
def test_clipping_reports_how_many_weights_it_clipped(weight, clip):
    _, clipped = quantize_tensor(weight, 8, None, clip=clip)
    assert clipped >= 1
    _, none = quantize_tensor(weight, 8, None)
    assert none == 0


def test_symmetric_quantization_keeps_zero_exact():
    w = torch.tensor([[0.0, 0.3, -0.7, 1.0]])
    q, _ = quantize_tensor(w, 4, None, symmetric=True)
    assert q[0, 0].item() == 0.0


def test_block_size_none_means_the_whole_tensor(weight):
    whole, _ = quantize_tensor(weight, 4, None)
    same, _ = quantize_tensor(weight, 4, weight.numel())
    assert torch.equal(whole, same)


@pytest.mark.parametrize(("bits", "block", "clip"), [(1, 128, None), (8, 0, None), (8, 128, "median")])
def test_bad_options_are_errors(weight, bits, block, clip):
    with pytest.raises(SwindexError):
        quantize_tensor(weight, bits, block, clip=clip)


@pytest.mark.parametrize("family", ["llama", "gpt2", "mixtral"])
def test_quantizable_parameters_skip_embeddings_and_cover_every_layout(family):
    model, (w,) = build_planted(family)
    names = quantizable_parameters(model)
    assert w.tensor in names
    embedding = model.get_input_embeddings().weight
    assert all(model.get_parameter(n) is not embedding for n in names)
    assert not any(n.startswith("lm_head") for n in names)


def test_the_quantized_context_restores_every_bit():
    model, (w,) = build_planted("llama")
    before = raw(model)
    with quantized(model, 4, 128, keep=[w], clip="zscore") as summary:
        assert raw(model) != before
        assert summary.held_out == 1 and summary.tensors == len(quantizable_parameters(model))
    assert raw(model) == before


@pytest.fixture(scope="module", params=[0, 1])
def dependent(request):
    model, planted = dependent_llama(seed=request.param)
    inputs = sampled(model, sequences=6, length=48, seed=0)
    return model, planted, inputs


def _ppl(model, inputs) -> float:
    return lm_pass(model, inputs, batch_size=6).perplexity


def test_at_whole_tensor_blocks_holding_the_super_weight_out_beats_plain_rtn(dependent):
    model, planted, inputs = dependent
    with quantized(model, 4, None):
        plain = _ppl(model, inputs)
    with quantized(model, 4, None, keep=[planted.as_dict()], clip="zscore"):
        held = _ppl(model, inputs)
    assert held < plain


def test_clipping_without_the_hold_out_destroys_the_model(dependent):
    model, planted, inputs = dependent
    original = _ppl(model, inputs)
    with quantized(model, 8, 128, clip="zscore"):
        clipped = _ppl(model, inputs)
    with quantized(model, 8, 128, keep=[planted.as_dict()], clip="zscore"):
        held = _ppl(model, inputs)
    assert clipped > 10 * original
    assert held < 2 * original


def test_compare_rtn_measures_plain_and_held_out_rtn_against_the_model_as_loaded(dependent):
    model, planted, inputs = dependent
    result = compare_rtn(model, inputs, [planted.as_dict()], 4, None, batch_size=6)
    assert result.original == _ppl(model, inputs)
    assert (result.variants["rtn"].held_out, result.variants["hold_out"].held_out) == (0, 1)
    assert result.variants["hold_out"].perplexity < result.variants["rtn"].perplexity


def test_compare_rtn_restores_the_model_after_every_variant(dependent):
    model, planted, inputs = dependent
    before = raw(model)
    variants = {"clip": Variant(hold_out=False, clip="zscore"), "hold": Variant(hold_out=True)}
    result = compare_rtn(model, inputs, [planted.as_dict()], 8, 128, variants, original=1.0, batch_size=6)
    assert list(result.variants) == ["clip", "hold"] and result.original == 1.0
    assert raw(model) == before


def _through_quantization(model, module, ids, bits=4, **options):
    """The down projection's output as computed, and as the activation quantizer passes it on."""
    seen = {}
    first = module.register_forward_hook(lambda m, a, out: seen.__setitem__("computed", out.detach().clone()))
    try:
        with quantized_activations(model, bits, **options):
            last = module.register_forward_hook(lambda m, a, out: seen.__setitem__("passed", out.detach().clone()))
            try:
                with torch.no_grad():
                    model(ids)
            finally:
                last.remove()
    finally:
        first.remove()
    return seen["computed"], seen["passed"]


def test_activation_quantization_holds_the_super_activation_exact(dependent):
    model, planted, inputs = dependent
    (ch,) = channels(model, [planted.as_dict()])
    computed, passed = _through_quantization(
        model, model.get_submodule(ch.module), inputs.input_ids[:1], keep=[planted.as_dict()]
    )
    assert passed[0, 0, ch.row] == computed[0, 0, ch.row]


def test_holding_the_super_activation_out_keeps_the_other_activations_fine(dependent):
    model, planted, inputs = dependent
    (ch,) = channels(model, [planted.as_dict()])
    module = model.get_submodule(ch.module)
    ids = inputs.input_ids[:1]
    rest = torch.ones(ids.shape[1], model.config.hidden_size, dtype=torch.bool)
    rest[0, ch.row] = False
    computed, plain = _through_quantization(model, module, ids, bits=8)
    plain_error = (plain - computed)[0][rest].abs().mean()
    computed, held = _through_quantization(model, module, ids, bits=8, keep=[planted.as_dict()])
    held_error = (held - computed)[0][rest].abs().mean()
    assert held_error < 0.5 * plain_error


def test_activation_hooks_are_removed_afterwards(dependent):
    model, planted, inputs = dependent
    with quantized_activations(model, 8, keep=[planted.as_dict()]) as hooked:
        assert hooked > 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.fixture(scope="module")
def saved_dependent(tmp_path_factory):
    from fixtures_dependent import entry_for

    from swindex.yamlio import dump_yaml

    root = tmp_path_factory.mktemp("quantize-cli")
    model, planted = dependent_llama(seed=0)
    model.save_pretrained(root / "model")
    (root / "entry.yaml").write_text(dump_yaml(entry_for(model, planted)), encoding="utf-8")
    return root, planted


QUICK = ("--bits", "8", "--sequences", "2", "--calibration", "2", "--length", "24", "--quiet")
"""INT8 (at INT4 the small dependent model is measured broken, over 2x its perplexity, and nothing is written) on few
short sampled sequences: it has no tokenizer, and the CLI measures before it writes."""


def test_cli_compares_plain_and_held_out_quantization(saved_dependent, capsys):
    import json

    from swindex.cli import main

    root, _ = saved_dependent
    code = main(
        [
            "quantize",
            str(root / "model"),
            "--entry",
            str(root / "entry.yaml"),
            "--bits",
            "4",
            "--block-size",
            "tensor",
            "--json",
            "--sequences",
            "2",
            "--length",
            "24",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["perplexity"]) == {"original", "rtn", "hold_out"}
    assert data["held_out_weights"] == 1 and data["block_size"] == "tensor"
    assert data["perplexity"]["original"] < data["perplexity"]["hold_out"] < data["perplexity"]["rtn"]


def test_cli_says_an_encoder_has_no_perplexity_and_names_it(tmp_path, capsys, write_registry):
    from fixtures_dependent import entry_for

    from swindex.cli import main

    model, (w,) = build_planted("bert")
    model.save_pretrained(tmp_path / "acme" / "enc")
    registry = write_registry(entry_for(model, model_id="acme/enc"))
    assert main(["quantize", str(tmp_path / "acme" / "enc"), "--registry", str(registry), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "BertModel" in err and "swindex keep acme/enc" in err and err.count("\n") == 1


def test_cli_saves_a_quantized_model_that_keeps_the_super_weight(saved_dependent, tmp_path):
    from transformers import LlamaForCausalLM

    from swindex.cli import main

    root, planted = saved_dependent
    assert (
        main(
            [
                "quantize",
                str(root / "model"),
                "--entry",
                str(root / "entry.yaml"),
                *QUICK,
                "--output",
                str(tmp_path / "q"),
            ]
        )
        == 0
    )
    original = LlamaForCausalLM.from_pretrained(root / "model")
    quantized_model = LlamaForCausalLM.from_pretrained(tmp_path / "q")
    weight = quantized_model.get_parameter(planted.tensor)
    assert weight[planted.index].item() == planted.value
    assert not torch.equal(weight, original.get_parameter(planted.tensor))


@pytest.mark.parametrize(
    ("clip", "threshold"), [("percentile", 101.0), ("percentile", 0.0), ("zscore", -1.0), ("zscore", float("nan"))]
)
def test_a_clip_threshold_that_clips_nothing_or_everything_is_an_error(weight, clip, threshold):
    with pytest.raises(SwindexError, match="clip threshold"):
        quantize_tensor(weight, 4, 128, clip=clip, clip_threshold=threshold)


def test_an_entry_index_outside_the_tensor_is_an_error_before_any_weight_changes():
    model, (w,) = build_planted("llama")
    before = raw(model)
    outside = [(w.tensor, (10**6, 0))]
    with pytest.raises(SwindexError, match="outside the tensor's shape"):
        quantize_model(model, 4, 128, keep=outside)
    assert raw(model) == before


@pytest.mark.parametrize("existing", ["file", "non-empty directory"])
def test_cli_refuses_an_output_that_would_overwrite_before_loading(saved_dependent, tmp_path, capsys, existing):
    from swindex.cli import main

    root, _ = saved_dependent
    target = tmp_path / "out"
    if existing == "file":
        target.write_text("keep me", encoding="utf-8")
    else:
        target.mkdir()
        (target / "mine.txt").write_text("keep me", encoding="utf-8")
    code = main(["quantize", str(root / "model"), "--entry", str(root / "entry.yaml"), "--output", str(target)])
    assert code == 1 and "--output" in capsys.readouterr().err
    kept = target if existing == "file" else target / "mine.txt"
    assert kept.read_text(encoding="utf-8") == "keep me"


def test_cli_refuses_an_invalid_entry_file_naming_the_field(saved_dependent, tmp_path, capsys):
    from swindex.cli import main
    from swindex.yamlio import dump_yaml, load_yaml

    root, _ = saved_dependent
    entry = load_yaml(root / "entry.yaml")
    entry["claims"][0]["row"] = -1
    (tmp_path / "bad.yaml").write_text(dump_yaml(entry), encoding="utf-8")
    assert main(["quantize", str(root / "model"), "--entry", str(tmp_path / "bad.yaml")]) == 1
    assert "claims[0].row" in capsys.readouterr().err


def test_cli_saves_a_bfloat16_checkpoint_in_bfloat16(tmp_path):
    from fixtures_dependent import entry_for
    from transformers import AutoModelForCausalLM

    from swindex.cli import main
    from swindex.yamlio import dump_yaml

    model, planted = dependent_llama(seed=0)
    model.to(torch.bfloat16).save_pretrained(tmp_path / "model")
    (tmp_path / "entry.yaml").write_text(dump_yaml(entry_for(model, planted)), encoding="utf-8")
    assert (
        main(
            [
                "quantize",
                str(tmp_path / "model"),
                "--entry",
                str(tmp_path / "entry.yaml"),
                *QUICK,
                "--output",
                str(tmp_path / "q"),
            ]
        )
        == 0
    )
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "q", dtype="auto")
    assert saved.dtype == torch.bfloat16
    assert (
        saved.get_parameter(planted.tensor)[planted.index].item()
        == model.get_parameter(planted.tensor)[planted.index].item()
    )


def test_an_entry_holds_out_every_standing_claim_not_measured_harmless(make_entry):
    from swindex.quantize import quantize_model
    from swindex.records import Entry

    model, _ = build_planted("llama", plants=())
    base = make_entry()["claims"][0]
    critical = dict(base, impact={"classification": "critical", "measured_by": base["sources"][0]["citation"]})
    significant = dict(
        base,
        layer=2,
        tensor="model.layers.2.mlp.down_proj.weight",
        row=4,
        column=9,
        index=[4, 9],
        impact={"classification": "significant", "measured_by": base["sources"][0]["citation"]},
    )
    inert = dict(
        base,
        layer=3,
        tensor="model.layers.3.mlp.down_proj.weight",
        row=6,
        column=2,
        index=[6, 2],
        impact={"classification": "inert", "measured_by": base["sources"][0]["citation"]},
    )
    candidate = dict(base, layer=3, tensor="model.layers.3.mlp.down_proj.weight", row=8, column=3, index=[8, 3])
    withdrawn = dict(
        base, layer=2, tensor="model.layers.2.mlp.down_proj.weight", row=1, column=1, index=[1, 1], status="withdrawn"
    )
    entry = Entry.from_dict(make_entry(claims=[critical, significant, inert, candidate, withdrawn]))
    before = {c.coordinate: model.get_parameter(c.tensor)[c.index].item() for c in entry.claims}
    quantize_model(model, bits=2, block_size=None, keep=entry)
    after = {c.coordinate: model.get_parameter(c.tensor)[c.index].item() for c in entry.claims}
    kept = [c.coordinate for c in entry.claims if after[c.coordinate] == before[c.coordinate]]
    assert kept == [c.coordinate for c in entry.weights_to_keep]
    assert kept == [
        critical["tensor"] + "[3, 7]",
        "model.layers.2.mlp.down_proj.weight[4, 9]",
        "model.layers.3.mlp.down_proj.weight[8, 3]",
    ]


def test_an_entry_dict_holds_out_the_same_weights_as_its_entry(make_entry):
    from swindex.quantize import quantize_model

    base = make_entry()["claims"][0]
    significant = dict(base, impact={"classification": "significant", "measured_by": base["sources"][0]["citation"]})
    data = make_entry(claims=[significant])
    assert quantize_model(build_planted("llama", plants=())[0], bits=4, keep=data).held_out == 1


def test_the_clip_search_keeps_the_trial_with_the_lowest_perplexity(dependent):
    from swindex.quantize import CLIP_CANDIDATES, search_clip

    model, planted, inputs = dependent
    before = raw(model)
    search = search_clip(model, inputs, [planted.as_dict()], 4, 128, batch_size=6)
    assert [t.variant for t in search.trials] == list(CLIP_CANDIDATES)
    assert search.chosen.perplexity == min(t.perplexity for t in search.trials)
    assert search.chosen.name in search.why and f"{search.rtn:.4g}" in search.why
    assert raw(model) == before


@settings(max_examples=200, deadline=None)
@given(original=st.floats(1, 1e4), rtn_factor=st.floats(1, 100), factor=st.floats(0.5, 1000))
def test_an_output_is_broken_exactly_when_it_passes_a_limit(original, rtn_factor, factor):
    from swindex.quantize import ORIGINAL_LIMIT, RTN_TOLERANCE, judge

    rtn = original * rtn_factor
    result = rtn * factor
    problems = judge(original, rtn, result)
    assert bool(problems) == (result > RTN_TOLERANCE * rtn or result > ORIGINAL_LIMIT * original)
    assert len(problems) == (result > RTN_TOLERANCE * rtn) + (result > ORIGINAL_LIMIT * original)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_an_output_that_no_longer_computes_is_broken(value):
    from swindex.quantize import judge

    assert judge(10.0, 12.0, value)


BAD_CLIP = ("--clip", "percentile", "--clip-threshold", "50")
"""Clipping half of every tensor's weights to the median magnitude: a clip no search would keep."""


def test_cli_refuses_to_write_a_broken_output_and_writes_nothing(saved_dependent, tmp_path, capsys):
    from swindex.cli import main

    root, _ = saved_dependent
    code = main(
        [
            "quantize",
            str(root / "model"),
            "--entry",
            str(root / "entry.yaml"),
            *QUICK,
            *BAD_CLIP,
            "--output",
            str(tmp_path / "q"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert not (tmp_path / "q").exists() and list(tmp_path.iterdir()) == []
    assert "broken: perplexity" in out and "against plain RTN" in out and "refused to write" in out


def test_cli_writes_a_broken_output_only_with_force_and_says_so(saved_dependent, tmp_path, capsys):
    from swindex.cli import main

    root, _ = saved_dependent
    code = main(
        [
            "quantize",
            str(root / "model"),
            "--entry",
            str(root / "entry.yaml"),
            *QUICK,
            *BAD_CLIP,
            "--force",
            "--output",
            str(tmp_path / "q"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "q" / "config.json").is_file()
    assert "broken:" in out and "forced despite the problems above" in out


def test_the_output_names_its_base_model_and_what_it_is(saved_dependent, tmp_path):
    import json

    from huggingface_hub import ModelCard

    from swindex.checkpoint.infer import name_questions
    from swindex.cli import main
    from swindex.quantize import RECORD_FILE

    root, _ = saved_dependent
    assert (
        main(
            [
                "quantize",
                str(root / "model"),
                "--entry",
                str(root / "entry.yaml"),
                *QUICK,
                "--output",
                str(tmp_path / "q"),
            ]
        )
        == 0
    )
    config = json.loads((tmp_path / "q" / "config.json").read_text(encoding="utf-8"))
    card = ModelCard.load(tmp_path / "q" / "README.md")
    record = json.loads((tmp_path / "q" / RECORD_FILE).read_text(encoding="utf-8"))
    assert config["_name_or_path"] == card.data.base_model == record["base_model"] == "swindex-tests/dependent-llama"
    assert "fake-quantized" in card.data.tags and "Fake-quantized, for research" in card.text
    assert "quantization_config" not in config
    questions = [(label, names) for _rule, label, names in name_questions(config, card.data.to_dict(), None)]
    assert ("config.json _name_or_path", ["swindex-tests/dependent-llama"]) in questions
    assert ("the model card's base_model", ["swindex-tests/dependent-llama"]) in questions
    assert set(record["perplexity"]) == {"original", "rtn", "hold_out"} and record["problems"] == []


def test_a_failed_save_leaves_nothing_behind(saved_dependent, tmp_path, monkeypatch, capsys):
    from transformers import PreTrainedModel

    from swindex.cli import main

    def fail(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", fail)
    root, _ = saved_dependent
    assert (
        main(
            [
                "quantize",
                str(root / "model"),
                "--entry",
                str(root / "entry.yaml"),
                *QUICK,
                "--output",
                str(tmp_path / "q"),
            ]
        )
        == 1
    )
    assert list(tmp_path.iterdir()) == []
    assert "No space left on device" in capsys.readouterr().err


def test_cli_says_what_it_held_out_in_the_entry_s_words(saved_dependent, capsys):
    from swindex.cli import main

    root, _ = saved_dependent
    assert main(["quantize", str(root / "model"), "--entry", str(root / "entry.yaml"), *QUICK]) == 0
    out = capsys.readouterr().out
    assert "held out: 1 unmeasured candidate" in out and "clip: " in out and "the lowest perplexity" in out


def test_cli_shows_progress_bars_unless_quiet(saved_dependent, capsys):
    from swindex.cli import main

    root, _ = saved_dependent
    quick = [a for a in QUICK if a != "--quiet"]
    assert main(["quantize", str(root / "model"), "--entry", str(root / "entry.yaml"), *quick]) == 0
    err = capsys.readouterr().err
    assert "clip search" in err and "measuring" in err
