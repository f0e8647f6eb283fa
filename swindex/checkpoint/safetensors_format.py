"""Reading a safetensors file's header and single values or lines of a tensor, without loading the tensor.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
and byte range, then the raw data. Every number in the header is checked against the file's real size
before anything is read, so a truncated or hostile file fails with its name and the lie it tells, and never
makes check allocate what the header claims.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from ..limits import MAX_HEADER_BYTES, MAX_LINE_VALUES, MAX_TENSORS, ParseError, load_json
from ..errors import shown
from .errors import CheckpointError, UnsupportedCheckpointError, unsupported_format
from .source import ByteSource, check_line_length

ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


@dataclass(frozen=True)
class StoredTensor:
    """One tensor's entry in a safetensors header: where its bytes are in which file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset of the first element
    end: int
    source: ByteSource

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    def offset_of(self, index: tuple[int, ...]) -> int:
        """Absolute byte offset of the element at ``index`` (row-major, the only order safetensors stores)."""
        check_index(self, index)
        flat = 0
        for i, size in zip(index, self.shape):
            flat = flat * size + i
        return self.start + flat * self.itemsize


def read_header(source: ByteSource) -> dict[str, StoredTensor]:
    """Every tensor of one safetensors file, each checked to lie inside the file."""
    if source.size < 8:
        raise CheckpointError(
            source.name, f"is {source.size} bytes long: too short for a safetensors header (8-byte length first)"
        )
    (length,) = struct.unpack("<Q", source.read(0, 8))
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(
            source.name,
            f"header claims {length:,} bytes, more than the {MAX_HEADER_BYTES:,} check reads: "
            "not a safetensors file, or a hostile one",
        )
    if 8 + length > source.size:
        raise CheckpointError(
            source.name,
            f"header claims {length:,} bytes but the file has only {source.size - 8:,} after the "
            "length: it is truncated",
        )
    raw = source.read(8, length)
    listed = raw.count(b'"data_offsets"')  # counted before parsing: each tensor costs memory once parsed
    if listed > MAX_TENSORS:
        raise CheckpointError(
            source.name, f"header lists {listed:,} tensors, more than the {MAX_TENSORS:,} check reads: a hostile file?"
        )
    try:
        header = load_json(raw, "header", unique_keys=True)
    except ParseError as exc:
        reason = f"header {exc.reason}: not a safetensors file, or a damaged or hostile one"
        raise CheckpointError(source.name, reason) from None
    if not isinstance(header, dict):
        raise CheckpointError(source.name, "header is not a JSON object of tensors")
    data_start = 8 + length
    data_size = source.size - data_start
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise CheckpointError(
                    source.name, "header's __metadata__ is not a map of strings, which the safetensors library refuses"
                )
            continue
        tensors[name] = _stored(source, name, info, data_start, data_size)
    refuse_gaps_and_overlaps(source, tensors, data_start, data_size)
    return tensors


def refuse_gaps_and_overlaps(
    source: ByteSource, tensors: dict[str, StoredTensor], data_start: int, data_size: int
) -> None:
    """The safetensors library's own rule: sorted by offset, each tensor starts where the last ended, and the
    last ends at the end of the file. Overlapping tensors (two names, one set of bytes) or gaps are refused."""
    position = 0
    for tensor in sorted(tensors.values(), key=lambda t: (t.start, t.end)):
        begin = tensor.start - data_start
        if begin != position:
            what = (
                "overlaps the tensor before it"
                if begin < position
                else f"leaves a gap of {begin - position:,} bytes before it"
            )
            raise CheckpointError(
                source.name,
                f"tensor {shown(tensor.name)!r} starts at data byte {begin:,} and {what}, which the "
                "safetensors library refuses",
            )
        position = tensor.end - data_start
    if position != data_size:
        raise CheckpointError(
            source.name,
            f"its tensors end at data byte {position:,}, but {data_size:,} bytes of data follow the header, which the "
            "safetensors library refuses",
        )


def _stored(source: ByteSource, name: str, info: Any, data_start: int, data_size: int) -> StoredTensor:
    where = f"tensor {name!r}"
    if not isinstance(info, dict):
        raise CheckpointError(source.name, f"{where}: header entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in ITEMSIZE:
        raise UnsupportedCheckpointError(
            source.name, f"{where}: dtype {dtype!r} is not one safetensors defines (or not one check can read)"
        )
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError(source.name, f"{where}: shape {shape!r} is not a list of non-negative integers")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(o) is int for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise CheckpointError(source.name, f"{where}: data_offsets {offsets!r} are not two increasing byte offsets")
    begin, end = offsets
    if end > data_size:
        raise CheckpointError(
            source.name,
            f"{where}: data_offsets end at byte {end:,} of the data, past the end of the file ({data_size:,} bytes of "
            "data): it is truncated or its header lies",
        )
    expected = math.prod(shape) * ITEMSIZE[dtype]
    if end - begin != expected:
        raise CheckpointError(
            source.name,
            f"{where}: holds {end - begin:,} bytes, but a {dtype} tensor of shape {shape} needs {expected:,}",
        )
    return StoredTensor(name, dtype, tuple(shape), data_start + begin, data_start + end, source)


def check_index(tensor: StoredTensor, index: tuple[int, ...]) -> None:
    if len(index) != len(tensor.shape) or any(not 0 <= i < size for i, size in zip(index, tensor.shape)):
        raise CheckpointError(
            tensor.source.name, f"index {list(index)} does not fit tensor {tensor.name!r} of shape {list(tensor.shape)}"
        )


def read_line(tensor: StoredTensor, index: tuple[int, ...], longest: int = MAX_LINE_VALUES) -> Any:
    """The stored line (last axis) holding ``index``, as float64: one contiguous read of ``shape[-1]`` values,
    refused before reading when it is longer than ``longest`` (the entry's dimensions bound it)."""
    check_index(tensor, index)
    check_line_length(tensor.source.name, tensor.name, tensor.shape[-1], longest)
    first = tensor.offset_of((*index[:-1], 0))
    raw = tensor.source.read(first, tensor.shape[-1] * tensor.itemsize)
    return decode(tensor, raw)


def decode(tensor: StoredTensor, raw: bytes) -> Any:
    """Raw little-endian bytes of a float tensor as a float64 numpy array."""
    import numpy as np

    dtype = tensor.dtype
    if dtype not in FLOAT_DTYPES:
        raise unsupported_format(
            tensor.source.name,
            f"{dtype} weights without the tensors a known quantization keeps beside them (tensor {tensor.name!r})",
        )
    if dtype == "BF16":
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if dtype.startswith("F8_"):
        return _fp8_table(dtype)[np.frombuffer(raw, dtype=np.uint8)]
    return np.frombuffer(raw, dtype={"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype]).astype(np.float64)


def _fp8_table(dtype: str) -> Any:
    """The 256 values of an 8-bit float: E4M3 (finite only, 0x7F is NaN) or E5M2 (IEEE-like)."""
    import numpy as np

    exp_bits, man_bits, bias = (4, 3, 7) if dtype == "F8_E4M3" else (5, 2, 15)
    values = np.empty(256, dtype=np.float64)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exponent = (byte >> man_bits) & ((1 << exp_bits) - 1)
        mantissa = byte & ((1 << man_bits) - 1)
        if dtype == "F8_E4M3" and exponent == 15 and mantissa == 7:
            value = math.nan
        elif dtype == "F8_E5M2" and exponent == 31:
            value = math.inf if mantissa == 0 else math.nan
        elif exponent == 0:
            value = mantissa / (1 << man_bits) * 2.0 ** (1 - bias)
        else:
            value = (1 + mantissa / (1 << man_bits)) * 2.0 ** (exponent - bias)
        values[byte] = sign * value
    return values


def scale_for(tensors: dict[str, StoredTensor], tensor: StoredTensor) -> StoredTensor | None:
    """The block-scale tensor of an fp8 weight (``...weight_scale_inv``, one scale per tile), when the file has one."""
    scale = tensors.get(f"{tensor.name}_scale_inv")
    if scale is None or len(scale.shape) != len(tensor.shape) or not all(scale.shape):
        return None
    return scale


def tile_of(tensor: StoredTensor, scale: StoredTensor, index: tuple[int, ...]) -> tuple[int, ...]:
    """Which scale covers ``index``: the weight is cut into equal tiles, one per scale entry."""
    return tuple(i // math.ceil(size / parts) for i, size, parts in zip(index, tensor.shape, scale.shape))
