"""Helpers for the `swindex check` tests: entries with chosen weights, and checkpoints written without torch.

Safetensors files are written with the safetensors package's numpy API, GGUF files with the gguf package's
writer and quantizers. gguf cannot quantize K-quants, so `pack_q6_k` packs Q6_K blocks here, checked
against gguf's own dequantizer before use.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN = 64
INTERMEDIATE = 256
LAYERS = 4


def claims_key(entry: dict[str, Any]) -> str:
    """The name of an entry's list of scalar claims (``claims`` from schema 2, ``super_weights`` before)."""
    return "claims" if "claims" in entry else "super_weights"


def entry_with(make_entry: Any, weights: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A valid entry (from the shared test entry) whose claims are ``weights`` (layer, row, column, ... , value)."""
    base = make_entry()
    key = claims_key(base)
    template = base[key][0]
    claims = []
    for weight in weights:
        claim = copy.deepcopy(template)
        claim.update(expert=None)
        claim.update(weight)
        if "value" in weight and weight["value"] is None:
            claim.pop("value")
        claims.append(claim)
    fields.setdefault("dimensions", {"num_layers": LAYERS, "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE})
    return make_entry(**{key: claims, **fields})


def linear_weight(layer: int, row: int, column: int, value: float | None, **extra: Any) -> dict[str, Any]:
    tensor = f"model.layers.{layer}.mlp.down_proj.weight"
    return {
        "layer": layer,
        "tensor": tensor,
        "row": row,
        "column": column,
        "index": [row, column],
        "value": value,
        **extra,
    }


def down_projections(
    seed: int = 0, plants: dict[tuple[int, int, int], float] | None = None, dtype: Any = np.float32
) -> dict[str, np.ndarray]:
    """A Llama-style model's down projections ([hidden, intermediate] per layer),
    small random values plus ``plants``."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(LAYERS):
        weight = rng.normal(0, 0.02, size=(HIDDEN, INTERMEDIATE)).astype(np.float32)
        for (plant_layer, row, column), value in (plants or {}).items():
            if plant_layer == layer:
                weight[row, column] = value
        tensors[f"model.layers.{layer}.mlp.down_proj.weight"] = weight.astype(dtype)
        tensors[f"model.layers.{layer}.input_layernorm.weight"] = np.ones(HIDDEN, dtype=dtype)
    return tensors


def llama_config(**extra: Any) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        **extra,
    }


def write_folder(
    folder: Path,
    tensors: dict[str, np.ndarray],
    config: dict[str, Any] | None = None,
    card: str | None = None,
    shards: int = 1,
) -> Path:
    """A model folder: config.json, an optional README.md,
    and the tensors in ``shards`` files (with an index when more than one)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if card is not None:
        (folder / "README.md").write_text(card, encoding="utf-8")
    names = sorted(tensors)
    if shards == 1:
        save_file({n: tensors[n] for n in names}, str(folder / "model.safetensors"))
        return folder
    weight_map = {}
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = names[i::shards]
        save_file({n: tensors[n] for n in part}, str(folder / file))
        weight_map.update({n: file for n in part})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}), encoding="utf-8"
    )
    return folder


def write_gguf(
    path: Path, tensors: dict[str, np.ndarray], qtype: Any, metadata: dict[str, Any] | None = None, arch: str = "llama"
) -> Path:
    """A GGUF file of float arrays (numpy [rows, columns]) quantized to ``qtype``,
    with general.* and arch.* metadata."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(LAYERS)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INTERMEDIATE)
    for key, value in (metadata or {}).items():
        if isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_string(key, value)
    for name, array in tensors.items():
        array = np.asarray(array, dtype=np.float32)
        if qtype == gguf.GGMLQuantizationType.Q6_K:
            writer.add_tensor(name, pack_q6_k(array), raw_dtype=qtype)
        elif qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            writer.add_tensor(name, gguf.quants.quantize(array, qtype))
        else:
            writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def pack_q6_k(array: np.ndarray) -> np.ndarray:
    """Q6_K blocks (256 values: 16 int8 sub-scales, one f16 scale, 6-bit values) of a float array, row by row.

    The inverse of gguf's Q6_K dequantizer; the result is checked against it, so a packing mistake fails here.
    """
    import gguf

    rows = array.reshape(-1, 256).astype(np.float32)
    blocks = np.zeros((rows.shape[0], 210), dtype=np.uint8)
    for b, values in enumerate(rows):
        sub = values.reshape(16, 16)
        sub_scale = np.abs(sub).max(axis=1) / 31
        d = np.float16(sub_scale.max() / 127 if sub_scale.max() > 0 else 1.0)
        scales = np.clip(np.round(sub_scale / np.float32(d)), 1, 127).astype(np.int8)
        step = np.float32(d) * scales.astype(np.float32)
        q = (np.clip(np.round(sub / step[:, None]), -32, 31).astype(np.int16) + 32).reshape(256).astype(np.uint8)
        ql, qh = np.zeros(128, np.uint8), np.zeros(64, np.uint8)
        for e in range(256):
            group, k = divmod(e, 32)
            half, part = divmod(group, 4)
            ql[half * 64 + (part % 2) * 32 + k] |= (q[e] & 0x0F) << (4 * (part // 2))
            qh[half * 32 + k] |= (q[e] >> 4) << (2 * part)
        blocks[b] = np.concatenate([ql, qh, scales.view(np.uint8), np.frombuffer(d.tobytes(), np.uint8)])
    packed = blocks.reshape(*array.shape[:-1], array.shape[-1] // 256 * 210)
    back = gguf.quants.dequantize(packed, gguf.GGMLQuantizationType.Q6_K)
    assert np.allclose(back, array, atol=float(np.abs(array).max()) / 40), "Q6_K packing does not round-trip"
    return packed
