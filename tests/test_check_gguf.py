"""`swindex check` on GGUF files: the block holding a super weight, dequantized with the gguf package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from check_support import HIDDEN, INTERMEDIATE, down_projections, entry_with, linear_weight, write_gguf
from swindex import layout
from swindex.checkpoint import CheckpointError, DimensionMismatchError, check

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType
PLANT = (1, 5, 7)  # layer, row, column
VALUE = -1.5


def gguf_names(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The down projections under llama.cpp's names (``blk.N.ffn_down.weight``), from swindex.layout."""
    return {
        layout.gguf_tensor_name(int(name.split(".")[2])): array
        for name, array in tensors.items()
        if "down_proj" in name
    }


def planted_gguf(path: Path, qtype: Q, value: float = VALUE, metadata: dict | None = None) -> Path:
    return write_gguf(path, gguf_names(down_projections(plants={PLANT: value})), qtype, metadata)


def full_dequantization(path: Path, name: str) -> np.ndarray:
    """The whole tensor, dequantized by gguf's own reader: the reference check must agree with."""
    tensor = next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == name)
    return gguf.quants.dequantize(tensor.data, tensor.tensor_type)


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q6_K], ids=lambda q: q.name)
def test_a_quantized_super_weight_is_read_from_its_block_and_kept(tmp_path: Path, make_entry, qtype: Q) -> None:  # noqa: ANN001
    path = planted_gguf(tmp_path / f"model.{qtype.name}.gguf", qtype)
    report = check(path, entry=entry_with(make_entry, [linear_weight(*PLANT, VALUE)]))
    (weight,) = report.weights
    reference = full_dequantization(path, "blk.1.ffn_down.weight")
    assert weight.value == float(reference[layout.gguf_array_index(5, 7)])
    assert (weight.tensor, weight.stored_as, weight.quantized, weight.verdict) == (
        "blk.1.ffn_down.weight",
        qtype.name,
        True,
        "kept",
    )
    assert weight.largest_in_block and weight.largest_in_row
    assert weight.block_scale > 0
    assert weight.block_error == pytest.approx((weight.value - VALUE) / weight.block_scale)
    assert abs(weight.block_error) <= 0.5  # the largest value of a block sits on its grid to within half a step
    assert report.bytes_read < path.stat().st_size / 2  # a header chunk and one row, not the file


def test_a_quantization_of_a_model_whose_weight_was_zeroed_loses_it(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    path = planted_gguf(tmp_path / "zeroed.gguf", Q.Q4_0, value=0.0)
    report = check(path, entry=entry_with(make_entry, [linear_weight(*PLANT, VALUE)]))
    (weight,) = report.weights
    assert weight.verdict == "lost" and not weight.largest_in_block
    assert report.exit_status == 1


def test_a_float_gguf_reports_no_block(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    path = planted_gguf(tmp_path / "f32.gguf", Q.F32)
    (weight,) = check(path, entry=entry_with(make_entry, [linear_weight(*PLANT, VALUE)])).weights
    assert (weight.value, weight.quantized, weight.block_scale, weight.largest_in_block) == (VALUE, False, None, None)


def test_fused_experts_are_read_at_expert_row_column(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    experts = np.random.default_rng(1).normal(0, 0.02, size=(4, HIDDEN, INTERMEDIATE)).astype(np.float32)
    experts[2, 5, 7] = VALUE
    path = write_gguf(tmp_path / "moe.gguf", {layout.gguf_tensor_name(1, expert=2): experts}, Q.Q8_0)
    claim = {
        "layer": 1,
        "tensor": "model.layers.1.mlp.experts.down_proj",
        "row": 5,
        "column": 7,
        "expert": 2,
        "index": [2, 5, 7],
        "value": VALUE,
    }
    entry = entry_with(
        make_entry,
        [claim],
        architecture="Qwen3MoeForCausalLM",
        family="qwen3_moe",
        dimensions={"num_layers": 4, "hidden_size": HIDDEN, "num_experts": 4},
    )
    (weight,) = check(path, entry=entry).weights
    assert (weight.tensor, weight.index) == ("blk.1.ffn_down_exps.weight", (2, 5, 7))
    assert weight.value == float(full_dequantization(path, "blk.1.ffn_down_exps.weight")[2, 5, 7])
    assert weight.verdict == "kept"


@pytest.mark.parametrize(
    ("metadata", "told_by"),
    [
        (
            {"general.base_model.count": 1, "general.base_model.0.repo_url": "https://example.org/acme/tiny-llama"},
            "GGUF general.base_model",
        ),
        (
            {
                "general.base_model.count": 1,
                "general.base_model.0.organization": "acme",
                "general.base_model.0.name": "tiny-llama",
            },
            "GGUF general.base_model",
        ),
        (
            {
                "general.name": "Tiny Llama Chat",
                "general.organization": "Acme",
                "general.basename": "tiny",
                "general.size_label": "llama",
            },
            "GGUF general.basename",
        ),
        ({"general.name": "acme/tiny-llama"}, "GGUF general.name"),
    ],
)
def test_the_base_model_is_read_from_gguf_metadata(
    tmp_path: Path, make_entry, write_registry, metadata: dict, told_by: str
) -> None:  # noqa: ANN001
    registry = write_registry(entry_with(make_entry, [linear_weight(*PLANT, VALUE)]))
    path = planted_gguf(tmp_path / "m.gguf", Q.Q8_0, metadata=metadata)
    report = check(path, registry=registry)
    assert report.entry == "acme/tiny-llama"
    assert report.entry_from.startswith(told_by)


def test_a_gguf_whose_shape_contradicts_the_entry_is_refused_naming_the_mismatch(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    path = planted_gguf(tmp_path / "m.gguf", Q.Q8_0)
    entry = entry_with(
        make_entry,
        [linear_weight(*PLANT, VALUE)],
        dimensions={"num_layers": 4, "hidden_size": 96, "intermediate_size": INTERMEDIATE},
    )
    with pytest.raises(DimensionMismatchError, match="hidden_size: entry 96, checkpoint 64"):
        check(path, entry=entry)


def test_a_layer_the_gguf_lacks_is_named(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    path = write_gguf(
        tmp_path / "m.gguf", {layout.gguf_tensor_name(0): np.zeros((HIDDEN, INTERMEDIATE), np.float32)}, Q.Q8_0
    )
    with pytest.raises(CheckpointError, match=r"has no blk\.1\.ffn_down\.weight"):
        check(path, entry=entry_with(make_entry, [linear_weight(*PLANT, VALUE)]))


@pytest.mark.slow
def test_smollm2_q4_1_keeps_its_critical_weight(smollm2_gguf: Path, make_entry) -> None:
    """The real thing: SmolLM2-135M-Instruct quantized to Q4_1 by its packager keeps layer 11 [507, 1229].

    The recorded 5.875 is the bfloat16 value the block's Q4_1 maximum rounds from (min -1.086 + 15 x step 0.4641).
    """
    claim = linear_weight(11, 507, 1229, 5.875)
    entry = entry_with(
        make_entry,
        [claim],
        id="HuggingFaceTB/SmolLM2-135M-Instruct",
        dimensions={"num_layers": 30, "hidden_size": 576, "intermediate_size": 1536},
    )
    report = check(smollm2_gguf, entry=entry)
    (weight,) = report.weights
    assert (weight.verdict, weight.tensor, weight.stored_as) == ("kept", "blk.11.ffn_down.weight", "Q4_1")
    assert weight.value == pytest.approx(5.8757, abs=1e-4)
    assert weight.largest_in_block
    assert report.exit_status == 0
    assert report.bytes_read < smollm2_gguf.stat().st_size / 20  # the header and one row, of a 98 MB file
