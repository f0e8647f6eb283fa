"""Surgery: zero, scale and restore single weights bit for bit, for every layout and for offloaded models."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from planted import build_planted, probe_ids  # noqa: E402

from swindex.errors import SurgeryError  # noqa: E402
from swindex.records import Entry  # noqa: E402
from swindex.surgery import (  # noqa: E402
    Target,
    apply,
    assign,
    channels,
    read_value,
    restore,
    scaled,
    targets,
    zeroed,
)

# One family per layout: Linear, GPT-2 Conv1D, fused 3-D experts, encoder Linear.
LAYOUTS = ["llama", "gpt2", "mixtral", "bert"]


def raw(model) -> dict[str, bytes]:
    """Every parameter and buffer as raw bytes: equality means bit-identical weights."""
    return {k: v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module", params=LAYOUTS)
def planted(request):
    model, weights = build_planted(request.param)
    return model, weights


def test_zeroed_sets_the_weight_to_zero_and_touches_nothing_else(planted):
    model, weights = planted
    before = raw(model)
    (w,) = weights
    with zeroed(model, weights):
        assert read_value(model, w) == 0.0
        inside = raw(model)
    changed = [k for k in before if before[k] != inside[k]]
    assert changed == [w.tensor]


def test_zeroed_restores_every_bit(planted):
    model, weights = planted
    before = raw(model)
    with zeroed(model, weights):
        pass
    assert raw(model) == before


def test_zeroing_removes_the_super_activation(planted):
    model, weights = planted
    (w,) = weights
    (ch,) = channels(model, weights)
    seen = []
    module = model.get_submodule(ch.module)
    handle = module.register_forward_hook(
        lambda m, a, out: seen.append(out.detach().reshape(-1, out.shape[-1])[0, ch.row].item())
    )
    try:
        with torch.no_grad():
            model(input_ids=probe_ids(model.config))
            with zeroed(model, weights):
                model(input_ids=probe_ids(model.config))
    finally:
        handle.remove()
    assert abs(seen[1]) < 0.1 * abs(seen[0])


@pytest.mark.parametrize("factor", [0.5, 2.0, 3.0])
def test_scaled_multiplies_by_the_factor_and_restores(planted, factor):
    model, weights = planted
    (w,) = weights
    before = raw(model)
    original = read_value(model, w)
    with scaled(model, weights, factor):
        assert read_value(model, w) == pytest.approx(original * factor, rel=1e-6)
    assert raw(model) == before


def test_bfloat16_round_trip_is_exact():
    model, weights = build_planted("llama", dtype=torch.bfloat16)
    before = raw(model)
    with scaled(model, weights, 1.37):
        pass
    with zeroed(model, weights):
        pass
    assert raw(model) == before


def test_restored_after_an_exception_inside_the_block(planted):
    model, weights = planted
    before = raw(model)
    with pytest.raises(RuntimeError):
        with zeroed(model, weights):
            raise RuntimeError("boom")
    assert raw(model) == before


def test_apply_and_restore_are_the_plain_function_form(planted):
    model, weights = planted
    before = raw(model)
    saved = apply(model, weights, 0.0)
    assert len(saved) == 1 and raw(model) != before
    restore(model, saved)
    assert raw(model) == before


def test_assign_sets_given_values():
    model, (w,) = build_planted("llama")
    before = raw(model)
    saved = assign(model, {(w.tensor, w.index): 1.25})
    assert read_value(model, w) == 1.25
    restore(model, saved)
    assert raw(model) == before


def test_weights_given_as_entry_dicts_objects_or_pairs_name_the_same_targets(make_entry):
    data = make_entry()
    entry = Entry.from_dict(data)
    expected = (Target("model.layers.1.mlp.down_proj.weight", (3, 7)),)
    assert targets(entry) == expected
    assert targets(entry.super_weights) == expected
    assert targets(data["claims"]) == expected
    assert targets([("model.layers.1.mlp.down_proj.weight", [3, 7])]) == expected
    assert targets(data) == expected


def test_an_entry_applies_only_its_active_claims(make_entry):
    data = make_entry()
    disputed = dict(data["claims"][0], index=[4, 7], row=4, status="disputed")
    data["claims"].append(disputed)
    assert [t.index for t in targets(Entry.from_dict(data))] == [(3, 7)]


def test_duplicate_coordinates_are_changed_once():
    model, (w,) = build_planted("llama")
    original = read_value(model, w)
    with scaled(model, [w, w], 2.0):
        assert read_value(model, w) == pytest.approx(original * 2.0)


def test_names_resolve_on_the_bare_base_model():
    model, weights = build_planted("llama")
    base = model.model
    before = raw(model)
    with zeroed(base, weights):
        assert base.layers[1].mlp.down_proj.weight[weights[0].index].item() == 0.0
    assert raw(model) == before


def test_index_outside_the_tensor_is_an_error_and_changes_nothing():
    model, (w,) = build_planted("llama")
    before = raw(model)
    bad = (w.tensor, (10_000, 0))
    with pytest.raises(SurgeryError, match="outside the tensor"):
        apply(model, [w, bad], 0.0)
    assert raw(model) == before


@pytest.mark.parametrize("index", [(1.0, 2), ("1", 2), (True, 2), "12"], ids=["float", "str", "bool", "string-index"])
def test_an_index_that_is_not_integers_is_an_error(index):
    model, (w,) = build_planted("llama")
    with pytest.raises(SurgeryError, match="not a sequence of integers"):
        apply(model, [(w.tensor, index)])


@pytest.mark.parametrize(
    "weights", [None, 42, "model.layers.1.mlp.down_proj.weight"], ids=["none", "int", "bare-string"]
)
def test_something_that_is_not_weights_is_a_surgery_error(weights):
    model, _ = build_planted("llama")
    with pytest.raises(SurgeryError, match="cannot read"):
        apply(model, weights)


def test_unknown_tensor_is_an_error():
    model, _ = build_planted("llama")
    with pytest.raises(SurgeryError, match="no such parameter"):
        apply(model, [("model.layers.1.mlp.nothing.weight", (0, 0))])


@pytest.mark.parametrize("factor", [math.inf, math.nan])
def test_non_finite_factor_is_an_error(factor):
    model, weights = build_planted("llama")
    with pytest.raises(SurgeryError, match="finite"):
        apply(model, weights, factor)


def test_gpt2_conv1d_channels_follow_the_stored_layout():
    model, (w,) = build_planted("gpt2")
    (ch,) = channels(model, [(w.tensor, w.index)])  # bare pair: row/column derived from the layout
    assert (ch.row, ch.column) == (w.row, w.column)


def test_fused_expert_channels_follow_the_stored_layout():
    model, (w,) = build_planted("mixtral")
    (ch,) = channels(model, [(w.tensor, w.index)])
    assert (ch.row, ch.column, ch.expert) == (w.row, w.column, w.expert)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("shard", [None, "60KB"], ids=["one-file", "sharded"])
def test_disk_offloaded_weights_are_edited_in_the_offload_store_and_restored(tmp_path, shard):
    from transformers import AutoModelForCausalLM

    model, (w,) = build_planted("llama")
    directory = tmp_path / "model"
    model.save_pretrained(directory, **({"max_shard_size": shard} if shard else {}))
    checkpoints = sorted(directory.glob("*.safetensors"))
    assert len(checkpoints) > 1 if shard else len(checkpoints) == 1
    digests = [_sha(c) for c in checkpoints]
    device_map = {
        "model.embed_tokens": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "model.layers.2": "cpu",
        "model.layers.3": "cpu",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
    }
    offloaded = AutoModelForCausalLM.from_pretrained(
        directory, device_map=device_map, offload_folder=str(tmp_path / "offload")
    )
    assert offloaded.get_parameter(w.tensor).device.type == "meta"
    _check_offloaded(model, offloaded, w)
    assert [_sha(c) for c in checkpoints] == digests


def test_cpu_offloaded_weights_are_edited_in_the_offload_state_dict_and_restored():
    from accelerate import cpu_offload

    model, (w,) = build_planted("llama")
    twin, _ = build_planted("llama")
    cpu_offload(twin, execution_device=torch.device("cpu"))
    assert twin.get_parameter(w.tensor).device.type == "meta"
    _check_offloaded(model, twin, w)


def _check_offloaded(model, offloaded, w) -> None:
    """Zeroing in the offloaded model matches zeroing in memory, and everything comes back exactly."""
    ids = probe_ids(model.config)
    with torch.no_grad():
        with zeroed(model, [w]):
            expected = model(ids).logits
        before = offloaded(ids).logits
        with zeroed(offloaded, [w]):
            assert read_value(offloaded, w) == 0.0
            during = offloaded(ids).logits
        after = offloaded(ids).logits
    assert torch.allclose(during, expected, atol=1e-4)
    assert not torch.allclose(during, before, atol=1e-3)
    assert torch.equal(after, before)
    assert read_value(offloaded, w) == read_value(model, w)


def test_transposed_fused_expert_channels_follow_the_detector_even_when_square():
    """gpt-oss stores experts [expert, in, out]; with in == out only the module's layout can tell row from column."""
    from transformers import GptOssConfig, GptOssForCausalLM

    config = GptOssConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=4,
        num_experts_per_tok=2,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    model = GptOssForCausalLM(config).eval()
    tensor = "model.layers.1.mlp.experts.down_proj"
    assert model.get_parameter(tensor).shape[1:] == (64, 64)
    (ch,) = channels(model, [(tensor, (2, 7, 5))])
    assert (ch.row, ch.column, ch.expert) == (5, 7, 2)


@pytest.fixture(scope="module")
def renamed_gpt2(tmp_path_factory):
    """A planted GPT-2 saved under a class name no table knows: its index order can only come from the module."""
    import json

    from planted import save_planted

    model, (w,) = build_planted("gpt2")
    path = save_planted(model, tmp_path_factory.mktemp("custom-gpt") / "model")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    (path / "config.json").write_text(
        json.dumps({**config, "architectures": ["CustomGPTForCausalLM"]}), encoding="utf-8"
    )
    return path, w


def test_an_unknown_architecture_is_indexed_in_the_order_its_modules_store(renamed_gpt2):
    from transformers import AutoModelForCausalLM

    from swindex.detection.arch import locate

    path, w = renamed_gpt2
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    site = next(s for s in locate(model).sites if s.tensor == w.tensor)
    assert site.index(w.row, w.column) == (w.column, w.row)


def test_an_unknown_architecture_detected_in_conv1d_order_makes_a_valid_entry(renamed_gpt2):
    from swindex.detection import detect

    path, w = renamed_gpt2
    entry = detect(str(path), dtype="float32", device="cpu").to_entry()
    assert entry["architecture"] == "CustomGPTForCausalLM"
    assert [w.column, w.row] in [claim["index"] for claim in entry["claims"]]


def test_surgery_reads_a_detected_index_back_to_the_planted_row_and_column(renamed_gpt2):
    from transformers import AutoModelForCausalLM

    path, w = renamed_gpt2
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    (ch,) = channels(model, [(w.tensor, (w.column, w.row))])
    assert (ch.row, ch.column) == (w.row, w.column)


def test_params_reads_an_offloaded_modules_own_tensor_with_its_real_values():
    from accelerate import cpu_offload

    from swindex.params import materialised, read_tensor

    model, (w,) = build_planted("llama")
    twin, _ = build_planted("llama")
    cpu_offload(twin, execution_device=torch.device("cpu"))
    module = twin.get_submodule(w.tensor.rsplit(".", 1)[0])
    assert module.weight.device.type == "meta"
    assert torch.equal(materialised(module, "weight"), model.get_parameter(w.tensor))
    assert torch.equal(read_tensor(twin, w.tensor), model.get_parameter(w.tensor))
    assert materialised(module, "bias") is None
