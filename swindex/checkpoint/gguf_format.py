"""Reading a GGUF file's header and one row of a tensor, dequantized with the ``gguf`` package.

Why a parser of our own for the header: ``gguf.GGUFReader`` builds every metadata array (a tokenizer holds
~100k strings), which takes seconds; check, and loading (a file's quantization type, whether it carries a
tokenizer), need a dozen scalars and the tensor table, so it skips arrays and reads nothing else. It is swindex's
one GGUF header reader. Every count, length and offset is checked against the file's size before it is used,
so a truncated or hostile header fails with a message and no allocation. Values are dequantized with
``gguf.quants.dequantize``, the reference the llama.cpp project ships.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..limits import MAX_GGUF_ARRAY_ITEMS, MAX_GGUF_NESTING, MAX_LINE_VALUES, MAX_TENSORS
from ..errors import shown
from .errors import CheckpointError, UnsupportedCheckpointError, unsupported_format
from .source import ByteSource, check_line_length

MAGIC = b"GGUF"
MAX_DIMS = 4
KEPT_ARRAY_LENGTH = 64
"""Metadata arrays up to this length are read (base-model lists); longer ones (tokenizer vocabularies) are skipped."""
_FIRST_CHUNK, _LAST_CHUNK = (
    1 << 14,
    1 << 22,
)  # header reads start small and double: most headers are tiny, a tokenizer's is megabytes
# GGUF metadata value types: struct format of the fixed-size ones; 8 is a string, 9 an array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: dims fastest-first (``ne``), its ggml type and where its bytes start."""

    name: str
    ne: tuple[int, ...]
    type: int
    start: int  # absolute byte offset
    block_size: int
    type_size: int
    source: ByteSource

    @property
    def type_name(self) -> str:
        from gguf.constants import GGMLQuantizationType

        return GGMLQuantizationType(self.type).name

    @property
    def row_bytes(self) -> int:
        return self.ne[0] // self.block_size * self.type_size

    @property
    def array_shape(self) -> tuple[int, ...]:
        """The shape as numpy sees the dequantized tensor (``ne`` reversed)."""
        return tuple(reversed(self.ne))


@dataclass(frozen=True)
class GGUFFile:
    """A GGUF file's metadata (scalars and short arrays) and its tensor table."""

    source: ByteSource
    version: int
    metadata: Mapping[str, Any]
    tensors: Mapping[str, GGUFTensor]
    data_start: int
    #: every metadata key, the long arrays stepped over included (``tokenizer.ggml.tokens`` says a tokenizer is in)
    keys: frozenset[str] = frozenset()

    @property
    def has_tokenizer(self) -> bool:
        """Whether the file carries a tokenizer (its vocabulary), which transformers can build from the header."""
        return "tokenizer.ggml.tokens" in self.keys

    @property
    def quantization(self) -> str | None:
        """The quantization type the header declares (``general.file_type``, e.g. "Q4_1"), else the commonest type of
        its matrices; None for a file with neither."""
        from collections import Counter

        from gguf.constants import GGMLQuantizationType, LlamaFileType

        declared = self.metadata.get("general.file_type")
        if isinstance(declared, int) and not isinstance(declared, bool):
            try:
                return LlamaFileType(declared).name.removeprefix("MOSTLY_").removeprefix("ALL_")
            except ValueError:
                pass  # a type this gguf package does not know: the tensors tell
        kinds = Counter(t.type for t in self.tensors.values() if len(t.ne) >= 2)
        if not kinds:
            return None
        kind = kinds.most_common(1)[0][0]
        return GGMLQuantizationType(kind).name


class _Cursor:
    """Sequential reads over a ByteSource, a chunk at a time, refusing to step past the end of the file."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.pos = 0
        self._buffer = b""
        self._buffer_start = 0
        self._chunk = _FIRST_CHUNK
        self.items = 0  # strings and arrays inside metadata arrays stepped over so far

    def take(self, length: int, what: str) -> bytes:
        if length < 0 or self.pos + length > self.source.size:
            raise CheckpointError(
                self.source.name,
                f"GGUF header: {what} needs {length:,} bytes at offset {self.pos:,}, past the end of the file "
                f"({self.source.size:,} bytes): it is truncated or its header lies",
            )
        offset = self.pos - self._buffer_start
        if offset + length > len(self._buffer):
            size = min(max(length, self._chunk), self.source.size - self.pos)
            self._buffer, self._buffer_start, offset = self.source.read(self.pos, size), self.pos, 0
            self._chunk = min(self._chunk * 2, _LAST_CHUNK)
        self.pos += length
        return self._buffer[offset : offset + length]

    def skip(self, length: int, what: str) -> None:
        if length < 0 or self.pos + length > self.source.size:
            raise CheckpointError(
                self.source.name,
                f"GGUF header: {what} claims {length:,} bytes at offset {self.pos:,}, past the end of the file "
                f"({self.source.size:,} bytes)",
            )
        self.pos += length

    def unpack(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        length = self.unpack("<Q", what)
        return self.take(length, what).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Step over ``count`` strings (a tokenizer's vocabulary): only their lengths are read."""
        unpack_from, size = struct.unpack_from, self.source.size
        for _ in range(count):
            offset = self.pos - self._buffer_start
            if offset + 8 > len(self._buffer):
                self.take(8, what)
                self.pos -= 8
                offset = 0
            self.pos += 8 + unpack_from("<Q", self._buffer, offset)[0]
            if self.pos > size:
                raise CheckpointError(
                    self.source.name,
                    f"GGUF header: a string of {what} ends at byte {self.pos:,}, past the end of the file ({size:,} "
                    "bytes): it is truncated or its header lies",
                )


def read_gguf(source: ByteSource) -> GGUFFile:
    """The header of a GGUF file (versions 2 and 3, little-endian), every tensor checked to lie inside the file."""
    from gguf.constants import GGML_QUANT_SIZES

    cursor = _Cursor(source)
    if source.size < 24 or cursor.take(4, "magic") != MAGIC:
        raise CheckpointError(source.name, "is not a GGUF file (it does not start with 'GGUF')")
    version = cursor.unpack("<I", "version")
    if version not in (2, 3):
        hint = " (a big-endian file?)" if version & 0xFFFF == 0 else ""
        raise UnsupportedCheckpointError(source.name, f"GGUF version {version}{hint}: check reads versions 2 and 3")
    tensor_count = cursor.unpack("<Q", "tensor count")
    kv_count = cursor.unpack("<Q", "metadata count")
    if tensor_count * 24 + kv_count * 12 > source.size:
        raise CheckpointError(
            source.name,
            f"GGUF header claims {tensor_count:,} tensors and {kv_count:,} metadata entries, more than a "
            f"{source.size:,}-byte file can hold",
        )
    if tensor_count > MAX_TENSORS:
        raise CheckpointError(
            source.name,
            f"GGUF header claims {tensor_count:,} tensors, more than the {MAX_TENSORS:,} check reads: a hostile file?",
        )
    metadata: dict[str, Any] = {}
    keys = set()
    for _ in range(kv_count):
        key = cursor.string("metadata key")
        kind = cursor.unpack("<I", f"type of {key}")
        value = _value(cursor, kind, key)
        keys.add(key)
        if value is not _SKIPPED:
            metadata[key] = value
    infos = []
    for _ in range(tensor_count):
        name = cursor.string("tensor name")
        n_dims = cursor.unpack("<I", f"dimensions of {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise CheckpointError(
                source.name, f"GGUF tensor {name!r} claims {n_dims} dimensions; ggml has 1 to {MAX_DIMS}"
            )
        ne = tuple(cursor.unpack("<Q", f"shape of {name}") for _ in range(n_dims))
        if not all(0 < n < 1 << 63 for n in ne):
            raise CheckpointError(
                source.name, f"GGUF tensor {name!r} has shape {list(ne)}; ggml dimensions are 1 to 2**63 - 1"
            )
        infos.append((name, ne, cursor.unpack("<I", f"type of {name}"), cursor.unpack("<Q", f"offset of {name}")))
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise CheckpointError(source.name, f"GGUF general.alignment {alignment!r} is not a power of two")
    data_start = -(-cursor.pos // alignment) * alignment
    tensors = {}
    expected = 0
    for name, ne, kind, offset in infos:
        if name in tensors:
            raise CheckpointError(
                source.name, f"GGUF tensor {shown(name)!r} is listed twice: llama.cpp refuses such a file"
            )
        if kind not in GGML_QUANT_SIZES:
            raise UnsupportedCheckpointError(
                source.name,
                f"GGUF tensor {name!r} has ggml type {kind}, which the installed gguf package does "
                "not know; upgrade it",
            )
        block_size, type_size = GGML_QUANT_SIZES[kind]
        if ne[0] % block_size:
            raise CheckpointError(
                source.name,
                f"GGUF tensor {name!r}: {ne[0]} values per row is not a whole number of {block_size}-value blocks",
            )
        size = math.prod(ne) // block_size * type_size
        if offset != expected:
            raise CheckpointError(
                source.name,
                f"GGUF tensor {shown(name)!r} starts at data offset {offset:,}, not at {expected:,} where the tensor "
                f"table puts it (each tensor follows the last, aligned to {alignment}): misaligned or overlapping, "
                "which llama.cpp refuses",
            )
        expected += -(-size // alignment) * alignment
        start = data_start + offset
        if start + size > source.size:
            raise CheckpointError(
                source.name,
                f"GGUF tensor {name!r} claims {size:,} bytes at offset {start:,}, past the end of the file "
                f"({source.size:,} bytes): it is truncated or its header lies",
            )
        tensors[name] = GGUFTensor(name, ne, kind, start, block_size, type_size, source)
    return GGUFFile(source, version, metadata, tensors, data_start, frozenset(keys))


_SKIPPED = object()


def _value(cursor: _Cursor, kind: int, key: str, depth: int = 0) -> Any:
    """One metadata value: scalars and strings read, arrays read when short and stepped over when long."""
    if kind in _SCALARS:
        return cursor.unpack(_SCALARS[kind], key)
    if kind == _STRING:
        return cursor.string(key)
    if kind != _ARRAY:
        raise CheckpointError(
            cursor.source.name, f"GGUF metadata {key!r} has value type {kind}, which GGUF does not define"
        )
    if depth >= MAX_GGUF_NESTING:
        raise CheckpointError(
            cursor.source.name, f"GGUF metadata {key!r} nests arrays more than {MAX_GGUF_NESTING} deep: a hostile file?"
        )
    item = cursor.unpack("<I", f"item type of {key}")
    count = cursor.unpack("<Q", f"length of {key}")
    smallest = struct.calcsize(_SCALARS[item]) if item in _SCALARS else 8 if item == _STRING else 12
    if count * smallest > cursor.source.size - cursor.pos:  # O(1): even the shortest items would not fit in the file
        raise CheckpointError(
            cursor.source.name,
            f"GGUF metadata {key!r} claims {count:,} items, more than fit in the rest of the file: "
            "it is truncated or its header lies",
        )
    if item in (_STRING, _ARRAY):  # stepped over one at a time: bounded for the whole header, not per array
        cursor.items += count
        if cursor.items > MAX_GGUF_ARRAY_ITEMS:
            raise CheckpointError(
                cursor.source.name,
                f"GGUF metadata arrays hold over {MAX_GGUF_ARRAY_ITEMS:,} strings or arrays (at {key!r}), "
                "more than check steps over: a hostile file?",
            )
    if count <= KEPT_ARRAY_LENGTH and item != _ARRAY:
        values = [_value(cursor, item, key, depth + 1) for _ in range(count)]
        return values if _SKIPPED not in values else _SKIPPED
    if item in _SCALARS:
        cursor.skip(count * smallest, key)
    elif item == _STRING:
        cursor.skip_strings(count, key)
    else:
        for _ in range(count):
            _value(cursor, item, key, depth + 1)
    return _SKIPPED


def read_row(
    tensor: GGUFTensor, row: int, expert: int | None = None, longest: int = MAX_LINE_VALUES
) -> tuple[Any, bytes]:
    """Row ``row`` (of expert ``expert`` in a 3-D tensor), dequantized, and its raw bytes: one read of one row,
    refused before reading when it is longer than ``longest`` (the entry's dimensions bound it)."""
    import numpy as np
    from gguf.constants import GGMLQuantizationType  # an enum: gguf names the type in its NotImplementedError
    from gguf.quants import dequantize

    check_line_length(tensor.source.name, tensor.name, tensor.ne[0], longest)
    rows = tensor.ne[1] if len(tensor.ne) > 1 else 1
    experts = tensor.ne[2] if len(tensor.ne) > 2 else 1
    if (
        not 0 <= row < rows
        or (expert is None) != (len(tensor.ne) < 3)
        or (expert is not None and not 0 <= expert < experts)
    ):
        where = f"row {row}" + (f" of expert {expert}" if expert is not None else "")
        raise CheckpointError(
            tensor.source.name, f"{where} is outside GGUF tensor {tensor.name!r} (ne {list(tensor.ne)})"
        )
    flat = (expert or 0) * rows + row
    raw = tensor.source.read(tensor.start + flat * tensor.row_bytes, tensor.row_bytes)
    try:
        values = dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(1, -1), GGMLQuantizationType(tensor.type))
    except NotImplementedError:
        what = f"GGUF {tensor.type_name} (tensor {tensor.name!r}: the installed gguf package cannot dequantize it)"
        raise unsupported_format(tensor.source.name, what) from None
    return np.asarray(values, dtype=np.float64).reshape(-1), raw


def quant_step(tensor: GGUFTensor, raw_row: bytes, column: int) -> float | None:
    """The quantization step of the block holding ``column``: the spacing of the values it can hold there.

    Known exactly for the legacy formats (the block's f16 scale ``d``) and for Q2_K, Q4_K, Q5_K and Q6_K (the
    super-block scale times the sub-block's scale); None for float types and formats without a single step.
    """
    import numpy as np

    name = tensor.type_name
    block = raw_row[column // tensor.block_size * tensor.type_size :][: tensor.type_size]
    within = column % tensor.block_size

    def f16(offset: int) -> float:
        return float(np.frombuffer(block[offset : offset + 2], dtype="<f2")[0])

    if name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
        return abs(f16(0))
    if name in ("Q4_K", "Q5_K"):
        from gguf.quants import Q4_K

        scales, _ = Q4_K.get_scale_min(np.frombuffer(block[4:16], dtype=np.uint8).reshape(1, 12))
        return abs(f16(0)) * float(scales[0, within // 32])
    if name == "Q6_K":
        return abs(f16(208)) * abs(float(np.frombuffer(block[192:208], dtype=np.int8)[within // 16]))
    if name == "Q2_K":
        return abs(f16(80)) * float(block[within // 16] & 0x0F)
    return None
