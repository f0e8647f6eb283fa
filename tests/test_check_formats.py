"""`swindex check` on the formats people publish: GPTQ, AWQ, bitsandbytes, compressed-tensors, MLX, GGUF K-quants
and LoRA adapters. Each reads one weight from the bytes that hold it (counted), and agrees with the library's own
dequantization where the library runs here (bitsandbytes, MLX, peft, gguf), else with the integer grid a writer
that follows the library's layout packed (quant_writers names the versions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from check_support import HIDDEN, INTERMEDIATE, entry_with, linear_weight, llama_config
from quant_writers import (
    awq_tensors,
    element_reader,
    fp8_tensors,
    gptq_tensors,
    pack_quantized_tensors,
    quantize_grid,
    save,
)
from swindex.checkpoint import CheckpointError, UnsupportedCheckpointError, check
from test_check_remote import hub  # noqa: F401 - the local stand-in for the Hub, a fixture

MODULE = "model.layers.1.mlp.down_proj"
ROW, COLUMN, PLANTED_VALUE = 5, 7, -8.0
PLANTED = {"num_layers": 4, "hidden_size": 64, "intermediate_size": 128}  # tests/planted.py's tiny models
positions = st.tuples(st.integers(0, HIDDEN - 1), st.integers(0, INTERMEDIATE - 1))
few = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def planted_weight(seed: int = 0) -> np.ndarray:
    """A [hidden, intermediate] down projection: small values and one planted super weight."""
    weight = np.random.default_rng(seed).normal(0, 0.02, size=(HIDDEN, INTERMEDIATE)).astype(np.float32)
    weight[ROW, COLUMN] = PLANTED_VALUE
    return weight


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --- GPTQ and AWQ --------------------------------------------------------------------------------------------

GPTQ_CASES = [
    (4, 32, False, True),
    (4, 64, True, True),
    (8, 128, False, True),
    (2, 32, True, False),
    (4, 256, False, False),
]


@pytest.mark.parametrize(("bits", "group_size", "act_order", "v1"), GPTQ_CASES)
def test_gptq_reads_each_element_as_its_integer_grid_dequantizes(
    tmp_path: Path, bits: int, group_size: int, act_order: bool, v1: bool
) -> None:
    grid = quantize_grid(planted_weight(), bits, group_size, symmetric=bits == 4, act_order=act_order)
    config = llama_config(
        quantization_config={
            "quant_method": "gptq",
            "bits": bits,
            "group_size": group_size,
            "desc_act": act_order,
            "checkpoint_format": "gptq" if v1 else "gptq_v2",
        }
    )
    at = element_reader(save(tmp_path, gptq_tensors(MODULE, grid, bits, v1=v1), config))

    @few
    @given(positions)
    def reads(position: tuple[int, int]) -> None:
        element, read = at(MODULE, *position)
        assert element.value == pytest.approx(grid.value(*position), rel=1e-6, abs=1e-9)
        assert read == 4 + 4 + 2 + 4  # a qweight word, a qzeros word, a scale, a g_idx entry

    reads()


def test_awq_reads_each_element_through_its_interleaved_packing(tmp_path: Path) -> None:
    grid = quantize_grid(planted_weight(), 4, 64, symmetric=False)
    config = llama_config(
        quantization_config={"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemm", "zero_point": True}
    )
    at = element_reader(save(tmp_path, awq_tensors(MODULE, grid), config))

    @few
    @given(positions)
    def reads(position: tuple[int, int]) -> None:
        element, read = at(MODULE, *position)
        assert element.value == pytest.approx(grid.value(*position), rel=1e-6, abs=1e-9)
        assert read == 4 + 4 + 2  # a qweight word, a qzeros word, a scale

    reads()


def test_awq_tensors_declared_as_gptq_are_refused_by_their_shapes(tmp_path: Path) -> None:
    """GPTQ packs input rows and AWQ output columns: tensors of one read as the other do not fit, and are refused."""
    grid = quantize_grid(planted_weight(), 4, 64, symmetric=False)
    tensors = gptq_tensors(MODULE, grid, 4)
    right = element_reader(
        save(
            tmp_path / "gptq",
            tensors,
            llama_config(quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 64}),
        )
    )
    wrong_layout = element_reader(
        save(
            tmp_path / "marked-awq",
            awq_tensors(MODULE, grid),
            llama_config(quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 64}),
        )
    )
    cells = [(r, c) for r in range(0, HIDDEN, 9) for c in range(0, INTERMEDIATE, 37)]
    assert all(right(MODULE, r, c)[0].value == pytest.approx(grid.value(r, c)) for r, c in cells)
    with pytest.raises(CheckpointError, match="do not fit 4-bit GPTQ"):
        wrong_layout(MODULE, ROW, COLUMN)


def test_gptq_settings_are_read_from_quantize_config_json(tmp_path: Path, make_entry: Any) -> None:
    grid = quantize_grid(planted_weight(), 4, 32, symmetric=True)
    folder = save(
        tmp_path,
        gptq_tensors(MODULE, grid, 4),
        llama_config(),
        extra={"quantize_config.json": {"bits": 4, "group_size": 32, "desc_act": False, "sym": True}},
    )
    report = check(folder, entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)]))
    (weight,) = report.weights
    assert (weight.verdict, weight.value, weight.tensor) == (
        "kept",
        pytest.approx(grid.value(ROW, COLUMN)),
        f"{MODULE}.qweight",
    )
    assert weight.stored_as.startswith("GPTQ int4")


def test_awq_settings_are_read_from_autoawqs_quant_config_json(tmp_path: Path, make_entry: Any) -> None:
    grid = quantize_grid(planted_weight(), 4, 64, symmetric=False)
    folder = save(
        tmp_path,
        awq_tensors(MODULE, grid),
        llama_config(),
        extra={"quant_config.json": {"zero_point": True, "q_group_size": 64, "w_bit": 4, "version": "GEMM"}},
    )
    (weight,) = check(folder, entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)])).weights
    assert (weight.value, weight.stored_as) == (pytest.approx(grid.value(ROW, COLUMN)), "AWQ int4 (group 64, gemm)")


def test_a_remote_gptq_repository_reads_its_quantize_config_and_a_few_bytes(
    tmp_path: Path,
    hub: Any,  # noqa: F811 - the fixture imported above
    make_entry: Any,
) -> None:
    grid = quantize_grid(planted_weight(), 4, 32, symmetric=True)
    folder = save(
        tmp_path,
        gptq_tensors(MODULE, grid, 4),
        llama_config(),
        extra={"quantize_config.json": {"bits": 4, "group_size": 32}},
    )
    hub.repos["acme/tiny-gptq"] = folder
    report = check(
        "acme/tiny-gptq", entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)]), endpoint=hub.url
    )
    (weight,) = report.weights
    assert (weight.verdict, weight.value) == ("kept", pytest.approx(grid.value(ROW, COLUMN)))
    opened = {r.split("/resolve/", 1)[1].split("/", 1)[1].split()[0] for r in hub.requests if "/resolve/" in r}
    assert opened == {"config.json", "model.safetensors", "quantize_config.json"}
    header = 8 + int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
    small = sum((folder / name).stat().st_size for name in ("config.json", "quantize_config.json"))
    assert (
        report.bytes_read == 3 + small + header + 14
    )  # each file's size probe (1 byte), the configs, the header, 14 bytes of weight


def test_packed_integers_without_a_config_are_refused_in_one_line(tmp_path: Path, make_entry: Any) -> None:
    grid = quantize_grid(planted_weight(), 4, 32, symmetric=True)
    folder = save(tmp_path, gptq_tensors(MODULE, grid, 4), llama_config())
    with pytest.raises(UnsupportedCheckpointError) as error:
        check(folder, entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)]))
    assert "quantize_config.json" in one_line(error)


# --- bitsandbytes (the real library, through transformers) ------------------------------------------------------

BNB = {
    "nf4 double quant": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
    "nf4": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    "fp4": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"},
    "int8": {"load_in_8bit": True},
}


@pytest.fixture(scope="module")
def bnb_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray, Any]]:
    """A planted model quantized by bitsandbytes on the CPU and saved with save_pretrained, and bitsandbytes' own
    dequantization of its planted down projection."""
    pytest.importorskip("bitsandbytes")
    from planted import build_planted, save_planted
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.integrations.bitsandbytes import dequantize_bnb_weight

    model, (plant,) = build_planted("llama")
    source = save_planted(model, tmp_path_factory.mktemp("planted"))
    made = {}
    for kind, options in BNB.items():
        folder = tmp_path_factory.mktemp(kind.replace(" ", "-"))
        quantized = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=BitsAndBytesConfig(**options), device_map="cpu"
        )
        quantized.save_pretrained(folder)
        weight = quantized.model.layers[plant.layer].mlp.down_proj.weight
        state = weight.quant_state if kind != "int8" else weight  # an Int8Params carries its SCB
        made[kind] = (folder, dequantize_bnb_weight(weight, state).float().numpy(), plant)
    return made


@pytest.mark.parametrize("kind", list(BNB))
def test_bitsandbytes_reads_each_element_as_bitsandbytes_dequantizes_it(bnb_checkpoints: Any, kind: str) -> None:
    folder, library, plant = bnb_checkpoints[kind]
    at = element_reader(folder)
    module = plant.tensor.removesuffix(".weight")

    @few
    @given(st.tuples(st.integers(0, 63), st.integers(0, 127)))
    def reads(position: tuple[int, int]) -> None:
        element, read = at(module, *position)
        assert element.value == pytest.approx(float(library[position]), rel=1e-6, abs=1e-7)
        if kind == "int8":
            assert read == 4 + 128  # the row's scale and its int8 row
        else:
            blob = next(t for n, t in _header(folder).items() if n.startswith(f"{plant.tensor}.quant_state."))
            nested = (
                1 + 4 + 4 if "double" in kind else 4
            )  # a uint8 absmax code, its nested map value and nested absmax; or a float absmax
            assert read == blob + 32 + 64 + nested  # the quant_state JSON, the block's 64 codes, the 16-value map

    reads()


@pytest.mark.parametrize("kind", list(BNB))
def test_bitsandbytes_checkpoints_keep_the_planted_super_weight(
    bnb_checkpoints: Any, make_entry: Any, kind: str
) -> None:
    folder, library, plant = bnb_checkpoints[kind]
    report = check(
        folder,
        entry=entry_with(
            make_entry, [linear_weight(plant.layer, plant.row, plant.column, plant.value)], dimensions=PLANTED
        ),
    )
    (weight,) = report.weights
    assert weight.verdict == "kept"
    assert weight.value == pytest.approx(float(library[plant.row, plant.column]), rel=1e-6)
    assert weight.stored_as.startswith("bitsandbytes")
    assert weight.largest_in_block if kind != "int8" else weight.largest_in_row


def _header(folder: Path) -> dict[str, int]:
    """Bytes of each tensor in a folder's model.safetensors."""
    raw = (folder / "model.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    return {n: i["data_offsets"][1] - i["data_offsets"][0] for n, i in header.items() if n != "__metadata__"}


# --- compressed-tensors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "group_size", "symmetric"), [(4, 32, True), (4, 128, False), (8, 256, True), (2, 64, False)]
)
def test_pack_quantized_reads_each_element_as_its_integer_grid_dequantizes(
    tmp_path: Path, bits: int, group_size: int, symmetric: bool
) -> None:
    grid = quantize_grid(planted_weight(), bits, group_size, symmetric=symmetric)
    config = llama_config(
        quantization_config={
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "config_groups": {
                "group_0": {
                    "targets": ["Linear"],
                    "weights": {
                        "num_bits": bits,
                        "type": "int",
                        "symmetric": symmetric,
                        "strategy": "group",
                        "group_size": group_size,
                    },
                }
            },
        }
    )
    at = element_reader(save(tmp_path, pack_quantized_tensors(MODULE, grid, bits, symmetric=symmetric), config))

    @few
    @given(positions)
    def reads(position: tuple[int, int]) -> None:
        element, read = at(MODULE, *position)
        assert element.value == pytest.approx(grid.value(*position), rel=1e-6, abs=1e-9)
        assert read == 16 + 4 + 2 + (
            0 if symmetric else 4
        )  # weight_shape, a packed word, a scale (and a packed zero point)

    reads()


@pytest.mark.parametrize("with_config", [True, False])
def test_fp8_weights_are_multiplied_by_their_weight_scale(tmp_path: Path, make_entry: Any, with_config: bool) -> None:
    """float-quantized fp8 stores weight / scale: reading the fp8 value alone would report a weight hundreds of
    times too small."""
    tensors, value = fp8_tensors(MODULE, planted_weight())
    config = (
        llama_config(quantization_config={"quant_method": "compressed-tensors", "format": "float-quantized"})
        if with_config
        else llama_config()
    )
    folder = save(tmp_path, tensors, config)
    (weight,) = check(folder, entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)])).weights
    assert (weight.verdict, weight.value) == ("kept", pytest.approx(value[ROW, COLUMN]))
    at = element_reader(folder)
    for position in [(0, 0), (63, 255), (17, 100)]:
        element, read = at(MODULE, *position)
        assert (element.value, read) == (
            pytest.approx(value[position]),
            1 + 4,
        )  # one fp8 byte and its row's float32 scale


# --- MLX (the real library) --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "group_size"), [(4, 64), (8, 32), (2, 128)])
def test_mlx_reads_each_element_as_mlx_dequantizes_it(tmp_path: Path, bits: int, group_size: int) -> None:
    mx = pytest.importorskip("mlx.core")
    weight = mx.array(planted_weight())
    packed, scales, biases = mx.quantize(weight, group_size=group_size, bits=bits)
    library = np.array(mx.dequantize(packed, scales, biases, group_size=group_size, bits=bits))
    tensors = {
        f"{MODULE}.weight": np.array(packed),
        f"{MODULE}.scales": np.array(scales),
        f"{MODULE}.biases": np.array(biases),
    }
    at = element_reader(save(tmp_path, tensors, llama_config(quantization={"group_size": group_size, "bits": bits})))

    @few
    @given(positions)
    def reads(position: tuple[int, int]) -> None:
        element, read = at(MODULE, *position)
        assert element.value == pytest.approx(float(library[position]), rel=1e-5, abs=1e-6)
        assert read == group_size * bits // 8 + 4 + 4  # the group's words, its float32 scale and bias

    reads()


def test_mlx_per_module_settings_override_the_default(tmp_path: Path) -> None:
    mx = pytest.importorskip("mlx.core")
    packed, scales, biases = mx.quantize(mx.array(planted_weight()), group_size=32, bits=8)
    library = np.array(mx.dequantize(packed, scales, biases, group_size=32, bits=8))
    tensors = {
        f"{MODULE}.weight": np.array(packed),
        f"{MODULE}.scales": np.array(scales),
        f"{MODULE}.biases": np.array(biases),
    }
    config = llama_config(quantization={"group_size": 64, "bits": 4, MODULE: {"group_size": 32, "bits": 8}})
    element, _ = element_reader(save(tmp_path, tensors, config))(MODULE, ROW, COLUMN)
    assert element.value == pytest.approx(float(library[ROW, COLUMN]), rel=1e-5)


# --- LoRA adapters (the real peft) --------------------------------------------------------------------------------

LORA = {
    "lora": {"r": 4, "lora_alpha": 8},
    "rslora": {"r": 4, "lora_alpha": 8, "use_rslora": True},
    "alpha pattern": {"r": 8, "lora_alpha": 16, "alpha_pattern": {"down_proj": 4}},
}


@pytest.mark.parametrize("kind", list(LORA))
def test_a_lora_adapter_changes_the_base_value_as_merging_it_does(tmp_path: Path, make_entry: Any, kind: str) -> None:
    pytest.importorskip("peft")
    import torch
    from peft import LoraConfig, get_peft_model
    from planted import build_planted

    model, (plant,) = build_planted("llama")
    torch.manual_seed(0)
    adapted = get_peft_model(
        model, LoraConfig(target_modules=["down_proj", "up_proj"], init_lora_weights=False, **LORA[kind])
    )
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.mul_(20)  # a change worth seeing at the planted weight
    adapted.save_pretrained(tmp_path / "adapter")
    merged = adapted.merge_and_unload().model.layers[plant.layer].mlp.down_proj.weight.detach().double().numpy()
    report = check(
        tmp_path / "adapter",
        entry=entry_with(
            make_entry, [linear_weight(plant.layer, plant.row, plant.column, plant.value)], dimensions=PLANTED
        ),
    )
    (weight,) = report.weights
    assert weight.value == pytest.approx(float(merged[plant.row, plant.column]), rel=1e-5)
    assert weight.value != plant.value
    at = element_reader(tmp_path / "adapter")
    for row, column in [(0, 0), (63, 127), (plant.row, plant.column)]:
        _, read = at(plant.tensor.removesuffix(".weight"), row, column, 0.0)
        assert read == 2 * LORA[kind]["r"] * 4  # one row of B and one column of A, float32


def test_an_adapter_that_leaves_the_module_alone_keeps_the_base_value(tmp_path: Path, make_entry: Any) -> None:
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from planted import build_planted

    model, (plant,) = build_planted("llama")
    get_peft_model(model, LoraConfig(target_modules=["q_proj"], init_lora_weights=False, r=4)).save_pretrained(
        tmp_path / "adapter"
    )
    (weight,) = check(
        tmp_path / "adapter",
        entry=entry_with(
            make_entry, [linear_weight(plant.layer, plant.row, plant.column, plant.value)], dimensions=PLANTED
        ),
    ).weights
    assert (weight.verdict, weight.value) == ("kept", plant.value)
    assert "unchanged" in weight.stored_as


def test_an_adapter_that_saves_the_whole_module_is_read_from_that_weight(tmp_path: Path, make_entry: Any) -> None:
    """peft's modules_to_save stores the module's full weight in the adapter: it replaces the base's, so it is
    what check reads."""
    pytest.importorskip("peft")
    import torch
    from peft import LoraConfig, get_peft_model
    from planted import build_planted

    model, (plant,) = build_planted("llama")
    adapted = get_peft_model(model, LoraConfig(target_modules=["q_proj"], modules_to_save=["down_proj"], r=4))
    with torch.no_grad():
        adapted.base_model.model.model.layers[plant.layer].mlp.down_proj.modules_to_save["default"].weight[
            plant.row, plant.column
        ] = 0.0
    adapted.save_pretrained(tmp_path / "adapter")
    (weight,) = check(
        tmp_path / "adapter",
        entry=entry_with(
            make_entry, [linear_weight(plant.layer, plant.row, plant.column, plant.value)], dimensions=PLANTED
        ),
    ).weights
    assert (weight.verdict, weight.value) == ("lost", 0.0)


@pytest.mark.parametrize(("change", "phrase"), [({"use_dora": True}, "DoRA"), ({"peft_type": "IA3"}, "IA3")])
def test_adapters_whose_change_is_not_b_times_a_are_refused(
    tmp_path: Path, make_entry: Any, change: dict[str, Any], phrase: str
) -> None:
    tensors = {
        f"base_model.model.{MODULE}.lora_A.weight": np.zeros((4, INTERMEDIATE), np.float32),
        f"base_model.model.{MODULE}.lora_B.weight": np.zeros((HIDDEN, 4), np.float32),
    }
    folder = save(
        tmp_path, {}, None, extra={"adapter_config.json": {"peft_type": "LORA", "r": 4, "lora_alpha": 8, **change}}
    )
    from safetensors.numpy import save_file

    (folder / "model.safetensors").unlink()
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    with pytest.raises(UnsupportedCheckpointError) as error:
        check(folder, entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)]))
    assert phrase in one_line(error) and "is not supported" in str(error.value)


# --- formats check does not read -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantization", "named"),
    [
        ({"quant_method": "hqq", "nbits": 4}, "'hqq'"),
        ({"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemv"}, "AWQ gemv"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 32, "checkpoint_format": "marlin"}, "GPTQ marlin"),
        ({"quant_method": "gptq", "bits": 3, "group_size": 32}, "3-bit"),
    ],
)
def test_an_unsupported_format_is_named_with_the_formats_that_are(
    tmp_path: Path, make_entry: Any, quantization: dict[str, Any], named: str
) -> None:
    grid = quantize_grid(planted_weight(), 4, 32, symmetric=True)
    folder = save(tmp_path, gptq_tensors(MODULE, grid, 4), llama_config(quantization_config=quantization))
    with pytest.raises(UnsupportedCheckpointError) as error:
        check(folder, entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)]))
    message = one_line(error)
    assert named in message and "is not supported" in message
    assert all(name in message for name in ("GPTQ", "AWQ", "bitsandbytes", "compressed-tensors", "MLX", "LoRA", "GGUF"))


# --- GGUF K-quants (gguf-py's own dequantizer as the reference) ---------------------------------------------------

K_QUANTS = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def k_quant_gguf(path: Path, type_name: str, seed: int = 0) -> np.ndarray | None:
    """A GGUF of llama down projections whose blocks are random bytes (any bytes are a valid K-quant block; bytes
    under 0x40 keep each float16 scale finite), and gguf's dequantization of layer 1's whole tensor."""
    import gguf

    from check_support import LAYERS

    qtype = gguf.GGMLQuantizationType[type_name]
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(LAYERS)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INTERMEDIATE)
    tensors = {}
    for layer in range(LAYERS):
        tensors[layer] = rng.integers(0, 0x40, size=(HIDDEN, INTERMEDIATE // block * size), dtype=np.uint8)
        writer.add_tensor(f"blk.{layer}.ffn_down.weight", tensors[layer], raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    try:
        return np.asarray(gguf.quants.dequantize(tensors[1], qtype), dtype=np.float64)
    except NotImplementedError:
        return None


def gguf_block(type_name: str) -> tuple[int, int]:
    """Values per block and bytes per block of a ggml type."""
    import gguf

    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]


@pytest.mark.parametrize("type_name", K_QUANTS)
def test_gguf_k_quants_read_each_element_as_gguf_dequantizes_the_whole_tensor(
    tmp_path: Path, make_entry: Any, type_name: str
) -> None:
    path = tmp_path / f"{type_name}.gguf"
    library = k_quant_gguf(path, type_name)
    assert library is not None
    cells = [(0, 0), (ROW, COLUMN), (HIDDEN - 1, INTERMEDIATE - 1), (31, 128), (40, 77)]
    entry = entry_with(
        make_entry, [linear_weight(1, row, column, float(library[row, column])) for row, column in cells]
    )
    report = check(path, entry=entry)
    assert [w.value for w in report.weights] == [
        pytest.approx(float(library[cell]), rel=1e-6, abs=1e-9) for cell in cells
    ]
    assert {w.stored_as for w in report.weights} == {type_name} and report.verdict == "kept"
    row_bytes = INTERMEDIATE // gguf_block(type_name)[0] * gguf_block(type_name)[1]
    assert report.reads == 1 + len(cells)  # the header, then one row per weight
    assert report.bytes_read <= 16_384 + len(cells) * row_bytes  # a header chunk and the rows, not the file


def test_a_gguf_type_gguf_cannot_dequantize_is_named_as_not_supported(tmp_path: Path, make_entry: Any) -> None:
    """Q8_K is llama.cpp's intermediate type: gguf-py has no dequantizer for it."""
    path = tmp_path / "q8_k.gguf"
    assert k_quant_gguf(path, "Q8_K") is None
    with pytest.raises(UnsupportedCheckpointError) as error:
        check(path, entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)]))
    assert "format GGUF Q8_K" in one_line(error) and "is not supported" in str(error.value)


@pytest.mark.slow
def test_a_real_q4_k_m_file_reads_its_q4_k_down_projections_as_gguf_dequantizes_them(make_entry: Any) -> None:
    """Qwen2.5-Coder-0.5B-Instruct Q4_K_M stores half its down projections as Q4_K and half as Q6_K."""
    import gguf

    from swindex.checkpoint.gguf_format import read_gguf, read_row
    from swindex.checkpoint.source import LocalFile, Transfer

    path = Path(__file__).parent.parent / ".cache" / "models" / "qwen" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    transfer = Transfer()
    header = read_gguf(LocalFile.open(path, transfer))
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    checked = 0
    for name, tensor in header.tensors.items():
        if "ffn_down" not in name or tensor.type_name != "Q4_K" or checked >= 2:
            continue
        library = np.asarray(gguf.quants.dequantize(tensors[name].data, tensors[name].tensor_type), dtype=np.float64)
        for row in (0, 123, tensor.ne[1] - 1):
            before = transfer.bytes
            values, _ = read_row(tensor, row)
            assert transfer.bytes - before == tensor.row_bytes  # one row's blocks
            np.testing.assert_allclose(values, library[row], rtol=1e-6, atol=1e-9)
        checked += 1
    assert checked == 2


# --- damaged quantized files fail closed ---------------------------------------------------------------------------


def _gptq_with_bad_g_idx() -> tuple[dict[str, Any], dict[str, Any]]:
    tensors = gptq_tensors(MODULE, quantize_grid(planted_weight(), 4, 32, symmetric=True), 4)
    tensors[f"{MODULE}.g_idx"] = np.full(INTERMEDIATE, 99, dtype=np.int32)
    return tensors, llama_config(quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 32})


def _gptq_with_short_scales() -> tuple[dict[str, Any], dict[str, Any]]:
    tensors = gptq_tensors(MODULE, quantize_grid(planted_weight(), 4, 32, symmetric=True), 4)
    tensors[f"{MODULE}.scales"] = tensors[f"{MODULE}.scales"][:, :32].copy()
    return tensors, llama_config(quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 32})


def _mlx_without_its_config() -> tuple[dict[str, Any], dict[str, Any]]:
    return {
        f"{MODULE}.weight": np.zeros((HIDDEN, INTERMEDIATE // 8), np.uint32),
        f"{MODULE}.scales": np.ones((HIDDEN, 4), np.float16),
        f"{MODULE}.biases": np.zeros((HIDDEN, 4), np.float16),
    }, llama_config()


def _bnb_with_a_garbled_quant_state() -> tuple[dict[str, Any], dict[str, Any]]:
    return {
        f"{MODULE}.weight": np.zeros((HIDDEN * INTERMEDIATE // 2, 1), np.uint8),
        f"{MODULE}.weight.absmax": np.ones(HIDDEN * INTERMEDIATE // 64, np.float32),
        f"{MODULE}.weight.quant_map": np.linspace(-1, 1, 16, dtype=np.float32),
        f"{MODULE}.weight.quant_state.bitsandbytes__nf4": np.frombuffer(b"{not json", np.uint8).copy(),
    }, llama_config(quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})


def _pack_quantized_with_a_lying_shape() -> tuple[dict[str, Any], dict[str, Any]]:
    tensors = pack_quantized_tensors(MODULE, quantize_grid(planted_weight(), 4, 32, symmetric=True), 4, symmetric=True)
    tensors[f"{MODULE}.weight_shape"] = np.array([HIDDEN, 3 * INTERMEDIATE], dtype=np.int64)
    return tensors, llama_config(quantization_config={"quant_method": "compressed-tensors", "format": "pack-quantized"})


@pytest.mark.parametrize(
    ("damaged", "phrase"),
    [
        (_gptq_with_bad_g_idx, "group 99"),
        (_gptq_with_short_scales, "do not fit 4-bit GPTQ"),
        (_mlx_without_its_config, "no config.json gives its quantization"),
        (_bnb_with_a_garbled_quant_state, "is not valid JSON"),
        (_pack_quantized_with_a_lying_shape, "pack-quantized"),
    ],
)
def test_a_damaged_quantized_checkpoint_is_refused_in_one_line(
    tmp_path: Path, make_entry: Any, damaged: Any, phrase: str
) -> None:
    tensors, config = damaged()
    with pytest.raises(CheckpointError) as error:
        check(
            save(tmp_path, tensors, config),
            entry=entry_with(make_entry, [linear_weight(1, ROW, COLUMN, PLANTED_VALUE)]),
        )
    assert phrase in one_line(error)


@pytest.mark.slow
def test_real_smollm2_quantized_to_nf4_by_bitsandbytes_reads_as_bitsandbytes_dequantizes_it(
    smollm2_gguf: Path, tmp_path: Path
) -> None:
    """SmolLM2-135M-Instruct (its Q4_1 GGUF, dequantized by transformers), quantized to NF4 with double quant by
    bitsandbytes on the CPU as a user would: check finds its recorded weights, each equal to bitsandbytes' own value."""
    pytest.importorskip("bitsandbytes")
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.integrations.bitsandbytes import dequantize_bnb_weight

    from swindex import lookup

    dequantized = AutoModelForCausalLM.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.bfloat16
    )
    del dequantized.config.quantization_config  # the GGUF loader's mark: a plain bfloat16 model from here on
    plain = AutoModelForCausalLM.from_config(dequantized.config, dtype=torch.bfloat16)
    plain.load_state_dict(dequantized.state_dict())
    plain.save_pretrained(tmp_path / "bfloat16")
    options = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "bfloat16", quantization_config=options, device_map="cpu")
    model.save_pretrained(tmp_path / "nf4")
    report = check(tmp_path / "nf4", base="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert report.weights and report.verdict == "kept"
    assert {w.coordinate for w in report.weights} == {
        str(c.coordinate) for c in lookup("HuggingFaceTB/SmolLM2-135M-Instruct").weights_to_keep
    }
    for weight in report.weights:
        stored = model.model.layers[weight.layer].mlp.down_proj.weight
        assert weight.value == pytest.approx(
            float(dequantize_bnb_weight(stored, stored.quant_state)[weight.row, weight.column]), rel=1e-6
        )
    assert (
        report.bytes_read < 512 * 1024
    )  # the header (~150 KiB: six tensors per module) and a few hundred bytes per weight


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e4, 1e4, allow_nan=False), st.sampled_from(["F16", "BF16", "F32"]))
def test_values_are_rounded_to_the_dtype_as_torch_rounds_them(value: float, dtype: str) -> None:
    import torch

    from swindex.checkpoint.quantized import rounded

    torch_dtype = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}[dtype]
    assert rounded(value, dtype) == float(torch.tensor(np.float32(value)).to(torch_dtype))
