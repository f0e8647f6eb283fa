"""Writers of quantized checkpoints for formats whose library does not install here, each following the
layout of the library version named, and returning the integer grid it packed so a test can dequantize it
independently of the packing.

* GPTQ: AutoGPTQ 0.7.1 ``QuantLinear.pack`` (qweight packs input rows, qzeros output columns, v1 zero points
  stored less one; GPTQModel's ``gptq_v2`` stores them as they are).
* AWQ: AutoAWQ 0.2.9 ``WQLinear_GEMM.from_linear`` (output columns packed in the order 0 2 4 6 1 3 5 7).
* compressed-tensors 0.19 ``pack_to_int32`` (input columns packed low bits first, offset by 2^(bits-1); an
  asymmetric zero point packed along output rows) and ``float-quantized`` fp8 with a channel scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


@dataclass(frozen=True)
class Grid:
    """A weight quantized to integers: value[r, c] = scale[group[c], r] * (q[r, c] - zero[group[c], r])."""

    q: np.ndarray  # [out, in] integers
    zero: np.ndarray  # [groups, out]
    scale: np.ndarray  # [groups, out] float16
    group: np.ndarray  # [in] group of each input column

    def value(self, row: int, column: int) -> float:
        """As the libraries dequantize: (q - zero) * scale computed in the scales' float16."""
        g = self.group[column]
        return float(self.scale[g, row] * np.float16(int(self.q[row, column]) - int(self.zero[g, row])))


def quantize_grid(
    weight: np.ndarray, bits: int, group_size: int, *, symmetric: bool, act_order: bool = False, seed: int = 0
) -> Grid:
    """Min-max quantization per (group, output row); act-order assigns groups along a random permutation of the
    inputs, as GPTQ's desc_act does."""
    out, columns = weight.shape
    order = np.random.default_rng(seed).permutation(columns) if act_order else np.arange(columns)
    group = np.empty(columns, dtype=np.int32)
    group[order] = np.arange(columns) // group_size
    groups = -(-columns // group_size)
    top = (1 << bits) - 1
    q = np.zeros((out, columns), dtype=np.int64)
    zero = np.zeros((groups, out), dtype=np.int64)
    scale = np.zeros((groups, out), dtype=np.float16)
    for g in range(groups):
        members = np.flatnonzero(group == g)
        block = weight[:, members].astype(np.float64)
        if symmetric:
            s = np.maximum(np.abs(block).max(axis=1), 1e-8) / ((top + 1) // 2 - 1 if bits > 1 else 1)
            z = np.full(out, (top + 1) // 2)
        else:
            low, high = np.minimum(block.min(axis=1), 0), np.maximum(block.max(axis=1), 0)
            s = np.maximum(high - low, 1e-8) / top
            z = np.clip(np.round(-low / s), 1, top)  # 1 and up: AutoGPTQ's v1 convention cannot store a zero point of 0
        scale[g] = s.astype(np.float16)
        zero[g] = z
        q[:, members] = np.clip(np.round(block / scale[g].astype(np.float64)[:, None]) + z[:, None], 0, top)
    return Grid(q, zero, scale, group)


def _pack_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack 32/bits consecutive rows into one int32 row, the first in the low bits (AutoGPTQ's qweight)."""
    pack = 32 // bits
    packed = np.zeros((values.shape[0] // pack, values.shape[1]), dtype=np.uint32)
    for k in range(pack):
        packed |= (values[k::pack].astype(np.uint32) & ((1 << bits) - 1)) << np.uint32(bits * k)
    return packed.view(np.int32)


def gptq_tensors(module: str, grid: Grid, bits: int, *, v1: bool = True) -> dict[str, np.ndarray]:
    """qweight, qzeros, scales and g_idx of one module as AutoGPTQ 0.7.1 (v1) or GPTQModel (gptq_v2) saves them."""
    qzeros = grid.zero - (1 if v1 else 0)
    return {
        f"{module}.qweight": _pack_rows(grid.q.T, bits),
        f"{module}.qzeros": _pack_rows(qzeros.T, bits).T.copy(),
        f"{module}.scales": grid.scale,
        f"{module}.g_idx": grid.group.astype(np.int32),
    }


def _pack_awq(values: np.ndarray) -> np.ndarray:
    """[rows, out] 4-bit values packed 8 output columns a word in AWQ's order."""
    packed = np.zeros((values.shape[0], values.shape[1] // 8), dtype=np.uint32)
    for i, column in enumerate(AWQ_ORDER):
        packed |= values[:, column::8].astype(np.uint32) << np.uint32(4 * i)
    return packed.view(np.int32)


def awq_tensors(module: str, grid: Grid) -> dict[str, np.ndarray]:
    """qweight [in, out/8], qzeros [groups, out/8] and scales [groups, out], as AutoAWQ 0.2.9's GEMM layout
    saves them."""
    return {
        f"{module}.qweight": _pack_awq(grid.q.T),
        f"{module}.qzeros": _pack_awq(grid.zero),
        f"{module}.scales": grid.scale,
    }


def _pack_columns(values: np.ndarray, bits: int) -> np.ndarray:
    """compressed-tensors' pack_to_int32 along the last axis, for widths dividing 32: offset to unsigned, low
    bits first."""
    offset = 1 << (bits - 1)
    unsigned = (values + offset).astype(np.uint32)
    return _pack_rows(unsigned.T, bits).T.copy()


def pack_quantized_tensors(module: str, grid: Grid, bits: int, *, symmetric: bool) -> dict[str, np.ndarray]:
    """weight_packed, weight_scale, weight_shape (and a packed weight_zero_point) as compressed-tensors 0.19 saves them.

    compressed-tensors stores signed values: q - 2^(bits-1), and the zero point likewise.
    """
    offset = 1 << (bits - 1)
    tensors = {
        f"{module}.weight_packed": _pack_columns(grid.q - offset, bits),
        f"{module}.weight_scale": grid.scale.T.copy(),
        f"{module}.weight_shape": np.array(grid.q.shape, dtype=np.int64),
    }
    if not symmetric:
        tensors[f"{module}.weight_zero_point"] = _pack_rows(grid.zero.T, bits)  # (zero - offset) stored + offset
    return tensors


def fp8_tensors(module: str, weight: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """An fp8 (E4M3) weight with one float32 scale per output row, and the values it dequantizes to (through
    torch's float8)."""
    import torch

    scale = (np.abs(weight).max(axis=1, keepdims=True) / 448.0).astype(np.float32)
    stored = torch.from_numpy(weight / scale).to(torch.float8_e4m3fn)
    value = stored.to(torch.float64).numpy() * scale.astype(np.float64)
    return {f"{module}.weight": stored, f"{module}.weight_scale": torch.from_numpy(scale)}, value


def element_reader(folder: Any) -> Any:
    """``at(module, row, column, base_value=None) -> (Element or None, bytes read for it)``: check's reader of
    one weight over a checkpoint's headers and config files, read once beforehand, so each call counts only
    its own bytes."""
    from types import SimpleNamespace

    from swindex.checkpoint.formats import read_stored, stored_form
    from swindex.checkpoint.locate import open_local
    from swindex.checkpoint.safetensors_format import read_header
    from swindex.checkpoint.source import Transfer

    transfer = Transfer()
    opened = open_local(folder, transfer)
    headers = [read_header(opened.open_file(file)) for file in opened.files]

    def find(name: str) -> Any:
        return next((header[name] for header in headers if name in header), None)

    form = stored_form(opened, [name for header in headers for name in header])

    def at(module: str, row: int, column: int, base_value: float | None = None) -> tuple[Any, int]:
        before = transfer.bytes
        claim = SimpleNamespace(
            tensor=f"{module}.weight",
            row=row,
            column=column,
            expert=None,
            value=base_value,
            coordinate=f"{module}.weight[{row}, {column}]",
        )
        element = read_stored(form, claim, find, lambda name: name if find(name) is not None else None)
        return element, transfer.bytes - before

    return at


def save(
    folder: Any, tensors: dict[str, Any], config: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> Any:
    """A checkpoint folder: model.safetensors (numpy arrays and torch tensors alike), config.json and other
    JSON files by name."""
    import json
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            name: (torch.from_numpy(np.ascontiguousarray(t)) if isinstance(t, np.ndarray) else t)
            for name, t in tensors.items()
        },
        str(folder / "model.safetensors"),
    )
    for name, content in {"config.json": config, **(extra or {})}.items():
        if content is not None:
            (folder / name).write_text(json.dumps(content), encoding="utf-8")
    return folder
