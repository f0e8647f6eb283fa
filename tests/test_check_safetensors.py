"""`swindex check` on safetensors checkpoints: planted models, fine-tunes that keep, scale or lose a super weight."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from check_support import HIDDEN, INTERMEDIATE, down_projections, entry_with, linear_weight, llama_config, write_folder
from swindex.checkpoint import CheckpointError, UnsupportedCheckpointError, check
from swindex.records import Entry

PLANTED = {"num_layers": 4, "hidden_size": 64, "intermediate_size": 128}  # tests/planted.py's tiny models


def test_a_planted_model_saved_as_one_file_keeps_its_super_weight(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    from planted import build_planted, save_planted

    model, (plant,) = build_planted("llama")
    folder = save_planted(model, tmp_path / "planted")
    entry = entry_with(
        make_entry, [linear_weight(plant.layer, plant.row, plant.column, plant.value)], dimensions=PLANTED
    )
    report = check(folder / "model.safetensors", entry=entry)
    (weight,) = report.weights
    assert (weight.verdict, weight.value, weight.tensor, weight.largest_in_row) == (
        "kept",
        plant.value,
        plant.tensor,
        True,
    )
    assert report.exit_status == 0


def test_a_sharded_planted_model_is_read_from_the_shard_its_index_names(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    from planted import build_planted

    model, (plant,) = build_planted("llama")
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, max_shard_size="100KB")
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(weight_map.values())) > 2
    report = check(
        folder,
        entry=entry_with(
            make_entry, [linear_weight(plant.layer, plant.row, plant.column, plant.value)], dimensions=PLANTED
        ),
    )
    (weight,) = report.weights
    assert weight.verdict == "kept"
    assert Path(weight.file).name == weight_map[plant.tensor]
    shard_bytes = (folder / weight_map[plant.tensor]).stat().st_size
    assert report.bytes_read < shard_bytes  # the header and one row, not the shard


def test_a_gpt2_conv1d_weight_is_read_at_its_transposed_index(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    from planted import build_planted, save_planted

    model, (plant,) = build_planted("gpt2")
    folder = save_planted(model, tmp_path / "gpt2")
    weight = {
        "layer": plant.layer,
        "tensor": plant.tensor,
        "row": plant.row,
        "column": plant.column,
        "index": list(plant.index),
        "value": plant.value,
    }
    entry = entry_with(make_entry, [weight], architecture="GPT2LMHeadModel", family="gpt2", dimensions=PLANTED)
    (found,) = check(folder, entry=entry).weights
    assert found.index == (plant.column, plant.row)
    assert (found.verdict, found.value) == ("kept", plant.value)
    assert found.largest_in_row is None and found.largest_in_column is True  # Conv1D stores a column contiguously


def test_a_fused_expert_claim_finds_the_expert_saved_as_its_own_tensor(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    from planted import build_planted, save_planted

    model, (plant,) = build_planted("qwen3_moe")
    folder = save_planted(model, tmp_path / "moe")
    weight = {
        "layer": plant.layer,
        "tensor": plant.tensor,
        "row": plant.row,
        "column": plant.column,
        "expert": plant.expert,
        "index": list(plant.index),
        "value": plant.value,
    }
    entry = entry_with(
        make_entry,
        [weight],
        architecture="Qwen3MoeForCausalLM",
        family="qwen3_moe",
        dimensions={"num_layers": 4, "hidden_size": 64, "num_experts": 4, "moe_intermediate_size": 32},
    )
    (found,) = check(folder, entry=entry).weights
    assert found.tensor == f"model.layers.{plant.layer}.mlp.experts.{plant.expert}.down_proj.weight"
    assert (found.index, found.verdict, found.value) == ((plant.row, plant.column), "kept", plant.value)


@pytest.mark.parametrize(
    ("stored", "verdict", "reason"),
    [
        (-1.5, "kept", ""),
        (-1.52, "kept", ""),  # a fine-tune's drift of 1.3%
        (0.0, "lost", "zeroed"),
        (1.5, "lost", "sign flipped"),
        (-1.4, "kept", ""),  # x0.93: inside the default bands
        (-0.1, "lost", "under x0.25"),
        (-0.75, "degraded", "scaled x0.5, outside x0.9..x1.1"),
        (-3.0, "degraded", "scaled x2, outside x0.9..x1.1"),
    ],
)
def test_without_a_curve_the_default_bands_judge_the_observed_scale(
    tmp_path: Path, make_entry, stored: float, verdict: str, reason: str
) -> None:  # noqa: ANN001
    folder = write_folder(tmp_path / "tuned", down_projections(plants={(1, 5, 7): stored}), llama_config())
    report = check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]))
    (weight,) = report.weights
    assert weight.value == pytest.approx(stored)
    assert weight.verdict == verdict and reason in weight.reason
    assert report.exit_status == (0 if verdict == "kept" else 1)


def test_bfloat16_rounding_keeps_a_weight(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    import torch
    from safetensors.torch import save_file

    tensors = {
        name: torch.from_numpy(array).to(torch.bfloat16)
        for name, array in down_projections(plants={(2, 9, 100): 2.3456}).items()
    }
    tmp_path.joinpath("bf16").mkdir()
    save_file(tensors, str(tmp_path / "bf16" / "model.safetensors"))
    (weight,) = check(tmp_path / "bf16", entry=entry_with(make_entry, [linear_weight(2, 9, 100, 2.3456)])).weights
    assert weight.stored_as == "BF16"
    assert weight.value == float(torch.tensor(2.3456).to(torch.bfloat16)) != 2.3456
    assert weight.verdict == "kept"


def test_the_worst_weight_decides_the_checkpoint(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5, (2, 3, 4): 0.0}), llama_config())
    report = check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5), linear_weight(2, 3, 4, 0.9)]))
    assert [w.verdict for w in report.weights] == ["kept", "lost"]
    assert (report.verdict, report.exit_status) == ("lost", 1)


def test_a_weight_without_a_recorded_value_that_still_stands_out_is_present_and_exits_2(
    tmp_path: Path, make_entry
) -> None:  # noqa: ANN001
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5}), llama_config())
    report = check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, None)]))
    (weight,) = report.weights
    assert (weight.verdict, weight.value, weight.judgement.judged_by) == ("present", -1.5, "row outlier")
    assert weight.judgement.line_ratio > 50  # the row's other weights are ~N(0, 0.02): median magnitude ~0.0135
    assert (report.verdict, report.exit_status) == ("present", 2)


@pytest.mark.parametrize(("stored", "reason"), [(0.0, "zeroed"), (-0.02, "no longer an outlier")])
def test_a_weight_without_a_recorded_value_that_is_zero_or_in_the_bulk_is_lost(
    tmp_path: Path, make_entry, stored: float, reason: str
) -> None:  # noqa: ANN001
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): stored}), llama_config())
    report = check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, None)]))
    assert (report.weights[0].verdict, report.exit_status) == ("lost", 1)
    assert reason in report.weights[0].reason


def test_tensor_names_under_another_prefix_are_found(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    """A base model saved without its LM head has no ``model.`` prefix; a multimodal one adds ``language_model.``."""
    bare = {name.removeprefix("model."): array for name, array in down_projections(plants={(1, 5, 7): -1.5}).items()}
    folder = write_folder(tmp_path / "bare", bare, llama_config())
    (weight,) = check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)])).weights
    assert weight.tensor == "layers.1.mlp.down_proj.weight" and weight.verdict == "kept"


def test_fp8_weights_are_scaled_by_their_tile_scales(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    """DeepSeek-style fp8: the value is the E4M3 byte times the ``weight_scale_inv`` of its 128x128 tile."""
    weight = np.full((HIDDEN, INTERMEDIATE), 0x30, dtype=np.uint8)  # E4M3 0x30 = 0.5
    weight[5, 200] = 0xBC  # E4M3 0xBC = -1.5
    scales = np.array([[1.0, 4.0]], dtype=np.float32)  # one row of tiles (64 < 128), two columns of tiles
    write_raw_safetensors(
        tmp_path / "fp8" / "model.safetensors",
        {
            "model.layers.1.mlp.down_proj.weight": ("F8_E4M3", weight.shape, weight.tobytes()),
            "model.layers.1.mlp.down_proj.weight_scale_inv": ("F32", scales.shape, scales.tobytes()),
        },
    )
    (found,) = check(tmp_path / "fp8", entry=entry_with(make_entry, [linear_weight(1, 5, 200, -6.0)])).weights
    assert found.value == -6.0 and found.quantized and found.verdict == "kept"
    assert found.largest_in_row  # -6 beats the 0.5 x 4 = 2 of its tile neighbours


def test_packed_integer_weights_are_refused_by_name(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    packed = np.zeros((INTERMEDIATE // 8, HIDDEN), dtype=np.int32)
    write_raw_safetensors(
        tmp_path / "gptq" / "model.safetensors",
        {"model.layers.1.mlp.down_proj.qweight": ("I32", packed.shape, packed.tobytes())},
    )
    with pytest.raises(UnsupportedCheckpointError, match="GPTQ or AWQ"):
        check(tmp_path / "gptq", entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]))


def test_a_checkpoint_without_the_tensor_names_what_its_layer_has(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    renamed = {name.replace("down_proj", "w2"): array for name, array in down_projections().items()}
    folder = write_folder(tmp_path / "other", renamed, llama_config())
    with pytest.raises(
        CheckpointError, match=r"has no tensor model\.layers\.1\.mlp\.down_proj\.weight.*layers\.1\.mlp\.w2\.weight"
    ):
        check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]))


def test_an_entry_object_and_an_entry_file_give_the_same_report(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    from swindex.yamlio import dump_yaml

    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5}), llama_config())
    data = entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)])
    (tmp_path / "entry.yaml").write_text(dump_yaml(data), encoding="utf-8")
    from_file = check(folder, entry=tmp_path / "entry.yaml")
    from_object = check(folder, entry=Entry.from_dict(data))
    assert from_file.weights == from_object.weights
    assert from_file.entry_from.startswith("entry file")


def write_raw_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> Path:
    """A safetensors file written byte by byte (for dtypes numpy lacks, and for damaged files)."""
    header, offset, data = {}, 0, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_weights_on_one_row_share_its_read(tmp_path: Path, make_entry) -> None:  # noqa: ANN001
    folder = write_folder(tmp_path / "m", down_projections(plants={(1, 5, 7): -1.5, (1, 5, 9): 0.9}), llama_config())
    one = check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5)]))
    two = check(folder, entry=entry_with(make_entry, [linear_weight(1, 5, 7, -1.5), linear_weight(1, 5, 9, 0.9)]))
    assert [w.value for w in two.weights] == [-1.5, pytest.approx(0.9)]
    assert (two.reads, two.bytes_read) == (one.reads, one.bytes_read)
