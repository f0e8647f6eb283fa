"""One weight of a quantized safetensors checkpoint, dequantized from the few bytes that hold it.

Why element by element: check must stay a header-and-bytes read whatever the format, so each reader here
takes a weight's (row, column) in Hugging Face's [out, in] orientation, reads the packed word (or the one
group) holding it, its group's scale and zero point, and dequantizes that element as the format's own library
would. Layouts, each from the library version named:

* **GPTQ** (AutoGPTQ 0.7 / GPTQModel, ``checkpoint_format`` gptq or gptq_v2): ``qweight`` int32 [in*bits/32, out]
  packs consecutive *input* rows low bits first; ``qzeros`` int32 [groups, out*bits/32] packs output columns;
  ``scales`` [groups, out]; ``g_idx`` [in] gives each input's group (act-order). v1 stores zero points less one.
* **AWQ** (AutoAWQ 0.2 GEMM): ``qweight`` int32 [in, out/8] packs *output* columns in the order 0 2 4 6 1 3 5 7;
  ``qzeros`` [in/group, out/8] likewise; ``scales`` [in/group, out]. value = (q - zero) * scale.
* **bitsandbytes** 0.50 4-bit: ``weight`` bytes of two 4-bit codes (the first element in the high nibble) of the
  row-major weight; ``weight.absmax`` per block (uint8 codes of ``nested_quant_map`` times ``nested_absmax`` plus
  ``nested_offset`` under double quantization), ``weight.quant_map`` the 16 NF4/FP4 values, and a JSON blob
  ``weight.quant_state.bitsandbytes__nf4|fp4`` (shape, blocksize). 8-bit: ``weight`` int8, ``SCB`` per row:
  value = int8 * SCB / 127.
* **compressed-tensors** 0.19 ``pack-quantized``: ``weight_packed`` int32 [out, in*bits/32] packs input columns low
  bits first, as unsigned (q + 2^(bits-1)); ``weight_scale`` [out, groups] (or [out, 1], [1]); an asymmetric
  ``weight_zero_point`` packed the same way along output rows; ``weight_shape``. ``float-quantized`` /
  ``naive-quantized``: ``weight`` fp8 or int8 with ``weight_scale`` (tensor, channel, group or block).
* **MLX** 0.32 affine: ``weight`` uint32 [out, in*bits/32] packs input columns low bits first; ``scales`` and
  ``biases`` [out, in/group]: value = scale * q + bias; group size and bits from config.json's ``quantization``.

Only bit widths that divide 32 (2, 4, 8) are read: the others pack across words differently in each library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointError, UnsupportedCheckpointError, unsupported_format
from .locate import parse_json
from .safetensors_format import FLOAT_DTYPES, StoredTensor, decode

PACKED_BITS = (2, 4, 8)
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
"""AutoAWQ's GEMM packing: nibble i of a word holds output column 8 * word + AWQ_ORDER[i]."""
AWQ_LAYOUTS = ("gemm", "exllama", "ipex")  # the GEMM layout on disk; GEMV and Marlin pack otherwise
GPTQ_LAYOUTS = {"gptq": 1, "gptq_v2": 0}  # the checkpoint format and what to add to its stored zero points
COMPRESSED_TENSORS_FORMATS = ("pack-quantized", "float-quantized", "naive-quantized", "int-quantized", "dense")
MAX_QUANT_STATE = 65_536
"""A bitsandbytes quant_state blob is a few hundred bytes of JSON; larger is refused before it is read."""


@dataclass(frozen=True)
class Quantization:
    """How a checkpoint says it was quantized: the method and its settings, and the file that says so."""

    method: str  # gptq, awq, bitsandbytes, compressed-tensors, mlx, fp8
    settings: Mapping[str, Any] = field(default_factory=dict)
    source: str = "config.json"

    def setting(self, *names: str, default: Any = None) -> Any:
        """The first of ``names`` the settings give (libraries spell the same setting differently)."""
        return next((self.settings[n] for n in names if self.settings.get(n) is not None), default)


@dataclass(frozen=True)
class Element:
    """One weight read out of its stored form: the value and where it came from."""

    value: float
    stored_as: str  # the format in words, e.g. "GPTQ int4 (group 128)"
    tensor: str  # the stored tensor holding it
    index: tuple[int, ...]  # of the word, byte or value read in that tensor
    file: str
    shape: tuple[int, int]  # the weight's [out, in] shape
    step: float | None = None  # the quantization step (scale) of its group
    group: Any = None  # the dequantized values of its group (or row), when they were read with it
    group_is_row: bool = False


def quantization_of(
    config: Mapping[str, Any] | None, file: str = "config.json", source: str | None = None
) -> Quantization | None:
    """The quantization a config (config.json, quantize_config.json or quant_config.json) declares, or None.

    MLX writes ``quantization`` (group_size, bits) with no ``quant_method``; AutoGPTQ's and AutoAWQ's own files
    are the settings themselves. A method check cannot read is refused here, before any weight is read.
    """
    if not isinstance(config, Mapping):
        return None
    source = source or file
    settings = config.get("quantization_config")
    if not isinstance(settings, Mapping) and isinstance(config.get("quantization"), Mapping):
        settings = config["quantization"]
    if not isinstance(settings, Mapping):
        if file != "config.json" and ("bits" in config or "w_bit" in config):
            settings = config  # quantize_config.json / quant_config.json
        else:
            return None
    method = settings.get("quant_method")
    if method is None and "group_size" in settings and "bits" in settings and file == "config.json":
        method = "mlx"
    if method is None and file == "quant_config.json":
        method = "awq"
    if method is None and file == "quantize_config.json":
        method = "gptq"
    if not isinstance(method, str):
        return None
    method = method.lower()
    if method not in ("gptq", "awq", "bitsandbytes", "compressed-tensors", "mlx", "fp8"):
        raise unsupported(source, f"quant_method {method!r}")
    return Quantization(method, dict(settings), source)


unsupported = unsupported_format


Find = Callable[[str], "StoredTensor | None"]
"""The checkpoint's stored tensor of a name (from whichever shard holds it), or None."""

MARKERS = ("qweight", "weight_packed", "weight.absmax", "SCB", "biases", "weight_scale")
"""The tensor beside a module's weight that tells how it is stored, in the order they are tried."""


def read_quantized(quantization: Quantization | None, module: str, find: Find, row: int, column: int) -> Element | None:
    """The weight at (row, column) of ``module`` when it is stored quantized; None when stored as plain floats.

    The stored tensors decide the layout (a config may leave some modules unquantized); the config gives what
    the tensors cannot say (GPTQ or AWQ, the MLX group size, the GPTQ zero-point convention).
    """
    if find(f"{module}.qweight") is not None:
        method = quantization.method if quantization else None
        if method == "gptq":
            return read_gptq(quantization, module, find, row, column)  # type: ignore[arg-type]
        if method == "awq":
            return read_awq(quantization, module, find, row, column)  # type: ignore[arg-type]
        raise UnsupportedCheckpointError(
            module,
            "is stored as packed integers (qweight) but no config says whether GPTQ or AWQ packed them: "
            "keep config.json (quantization_config) or quantize_config.json beside the weights",
        )
    if find(f"{module}.weight_packed") is not None:
        return read_pack_quantized(quantization, module, find, row, column)
    if find(f"{module}.weight.absmax") is not None or any(
        find(f"{module}.weight.quant_state.bitsandbytes__{t}") for t in ("nf4", "fp4")
    ):
        return read_bnb_4bit(module, find, row, column)
    if find(f"{module}.SCB") is not None:
        return read_bnb_8bit(module, find, row, column)
    if find(f"{module}.biases") is not None and find(f"{module}.scales") is not None:
        return read_mlx(quantization, module, find, row, column)
    if find(f"{module}.weight_scale") is not None:
        return read_scaled(module, find, row, column)
    weight = find(f"{module}.weight")
    if quantization is not None and quantization.method == "mlx" and weight is not None and weight.dtype == "U32":
        raise CheckpointError(
            weight.source.name, f"{module}.weight is MLX-packed but its scales and biases are missing"
        )
    return None


# --- reading a few values of a stored tensor -------------------------------------------------------------


def _need(find: Find, name: str, dtypes: tuple[str, ...] | None = None, rank: int | None = None) -> StoredTensor:
    tensor = find(name)
    if tensor is None:
        raise CheckpointError(
            name.rsplit(".", 1)[0], f"has no {name.rsplit('.', 1)[-1]} tensor, which its format needs beside the weight"
        )
    if dtypes is not None and tensor.dtype not in dtypes:
        raise UnsupportedCheckpointError(
            tensor.source.name, f"{name} is stored as {tensor.dtype}; its format stores it as {' or '.join(dtypes)}"
        )
    if rank is not None and len(tensor.shape) != rank:
        raise CheckpointError(
            tensor.source.name, f"{name} has shape {list(tensor.shape)}; its format stores a {rank}-D tensor"
        )
    return tensor


def _raw(tensor: StoredTensor, index: tuple[int, ...], count: int = 1) -> bytes:
    """The bytes of ``count`` consecutive stored values starting at ``index`` (checked to lie inside the tensor)."""
    start = tensor.offset_of(index)
    if start + count * tensor.itemsize > tensor.end:
        raise CheckpointError(
            tensor.source.name, f"{tensor.name}: {count} values at {list(index)} run past the tensor's end"
        )
    return tensor.source.read(start, count * tensor.itemsize)


_INTS = {"I8": "<i1", "U8": "<u1", "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8"}


def _ints(tensor: StoredTensor, index: tuple[int, ...], count: int = 1) -> Any:
    import numpy as np

    if tensor.dtype not in _INTS:
        raise UnsupportedCheckpointError(
            tensor.source.name, f"{tensor.name} is stored as {tensor.dtype}, not as integers"
        )
    return np.frombuffer(_raw(tensor, index, count), dtype=_INTS[tensor.dtype]).astype(np.int64)


def _word(tensor: StoredTensor, index: tuple[int, ...]) -> int:
    """One packed 32-bit word as an unsigned integer (libraries store it as int32)."""
    return int(_ints(tensor, index)[0]) & 0xFFFFFFFF


def _floats(tensor: StoredTensor, index: tuple[int, ...], count: int = 1) -> Any:
    if tensor.dtype not in FLOAT_DTYPES:
        raise UnsupportedCheckpointError(
            tensor.source.name, f"{tensor.name} is stored as {tensor.dtype}, not as floating-point scales"
        )
    return decode(tensor, _raw(tensor, index, count))


def _float(tensor: StoredTensor, index: tuple[int, ...]) -> float:
    return float(_floats(tensor, index)[0])


def _at(tensor: StoredTensor, *index: int) -> tuple[int, ...]:
    """``index`` for a tensor of that rank, or its scalar/1-element form for a per-tensor value stored as [] or [1]."""
    if len(tensor.shape) == len(index):
        return index
    if math.prod(tensor.shape) == 1:
        return (0,) * len(tensor.shape)
    raise CheckpointError(
        tensor.source.name, f"{tensor.name} has shape {list(tensor.shape)}, which cannot be indexed by {list(index)}"
    )


def rounded(value: Any, dtype: str) -> Any:
    """``value`` (a float or an array) rounded to ``dtype``: the precision the format's library dequantizes into
    (its scales' dtype), so the value reported is the one a loader hands the model, not a more exact one."""
    import numpy as np

    array = np.asarray(value, dtype=np.float64)
    if dtype in ("F16", "F32"):
        array = array.astype(np.float16 if dtype == "F16" else np.float32).astype(np.float64)
    elif dtype == "BF16":
        bits = array.astype(np.float32).view(np.uint32).astype(np.uint64)
        nearest = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000  # round to nearest even, as torch does
        array = nearest.astype(np.uint32).view(np.float32).astype(np.float64)
    return float(array) if array.ndim == 0 else array


_TORCH_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def _bits(value: Any, where: str, allowed: tuple[int, ...] = PACKED_BITS) -> int:
    if type(value) is not int or value not in allowed:
        raise (
            unsupported(where, f"{value}-bit packing")
            if type(value) is int
            else CheckpointError(where, f"bits {value!r} is not a bit width")
        )
    return value


def _check_element(where: str, shape: tuple[int, int], row: int, column: int) -> None:
    if not (0 <= row < shape[0] and 0 <= column < shape[1]):
        raise CheckpointError(where, f"weight [{row}, {column}] is outside its shape {list(shape)}")


def _group_size(value: Any, columns: int, where: str) -> int:
    if value in (None, -1, 0):
        return columns
    if type(value) is not int or value < 0:
        raise CheckpointError(where, f"group_size {value!r} is not a positive integer (or -1)")
    return value


def _group(g_idx: StoredTensor | None, column: int, group_size: int, groups: int, where: str) -> int:
    """The group of input ``column``: its g_idx entry (act-order) when stored, else column // group_size."""
    group = int(_ints(g_idx, (column,))[0]) if g_idx is not None else column // group_size
    if not 0 <= group < groups:
        raise CheckpointError(where, f"input {column} falls in group {group}, but only {groups} groups are stored")
    return group


# --- GPTQ and AWQ ----------------------------------------------------------------------------------------


def read_gptq(quantization: Quantization, module: str, find: Find, row: int, column: int) -> Element:
    """GPTQ: qweight packs input rows, so the element is one bit field of word [column / pack, row]."""
    layout = str(quantization.setting("checkpoint_format", "format", default="gptq")).lower()
    if layout not in GPTQ_LAYOUTS:
        raise unsupported(quantization.source, f"GPTQ {layout}")
    bits = _bits(quantization.setting("bits", "w_bit"), quantization.source)
    pack, mask = 32 // bits, (1 << bits) - 1
    qweight = _need(find, f"{module}.qweight", ("I32", "U32"), 2)
    scales = _need(find, f"{module}.scales", FLOAT_DTYPES, 2)
    qzeros = _need(find, f"{module}.qzeros", ("I32", "U32"), 2)
    g_idx = find(f"{module}.g_idx")
    shape = (qweight.shape[1], qweight.shape[0] * pack)
    _check_element(qweight.name, shape, row, column)
    if scales.shape[1] != shape[0] or qzeros.shape[0] != scales.shape[0] or qzeros.shape[1] * pack < shape[0]:
        raise CheckpointError(
            qweight.source.name,
            f"{module}: qweight {list(qweight.shape)}, qzeros {list(qzeros.shape)} and scales {list(scales.shape)} "
            f"do not fit {bits}-bit GPTQ of a {list(shape)} weight",
        )
    group_size = _group_size(quantization.setting("group_size"), shape[1], quantization.source)
    group = _group(g_idx, column, group_size, scales.shape[0], module)
    index = (column // pack, row)
    q = (_word(qweight, index) >> (bits * (column % pack))) & mask
    zero = ((_word(qzeros, (group, row // pack)) >> (bits * (row % pack))) & mask) + GPTQ_LAYOUTS[layout]
    scale = _float(scales, (group, row))
    order = ", act-order" if g_idx is not None and quantization.setting("desc_act") else ""
    return Element(
        rounded(scale * (q - zero), scales.dtype),
        f"GPTQ int{bits} (group {group_size}{order}, {layout})",
        qweight.name,
        index,
        qweight.source.name,
        shape,
        step=abs(scale),
    )


def read_awq(quantization: Quantization, module: str, find: Find, row: int, column: int) -> Element:
    """AWQ GEMM: qweight packs output columns in AWQ's interleaved order, so the element is one nibble of word
    [column, row / 8]."""
    layout = str(quantization.setting("version", default="gemm")).lower()
    if layout not in AWQ_LAYOUTS:
        raise unsupported(quantization.source, f"AWQ {layout}")
    bits = _bits(quantization.setting("bits", "w_bit"), quantization.source, (4,))
    qweight = _need(find, f"{module}.qweight", ("I32", "U32"), 2)
    scales = _need(find, f"{module}.scales", FLOAT_DTYPES, 2)
    qzeros = _need(find, f"{module}.qzeros", ("I32", "U32"), 2)
    shape = (qweight.shape[1] * 8, qweight.shape[0])
    _check_element(qweight.name, shape, row, column)
    if scales.shape[1] != shape[0] or qzeros.shape != (scales.shape[0], qweight.shape[1]):
        raise CheckpointError(
            qweight.source.name,
            f"{module}: qweight {list(qweight.shape)}, qzeros {list(qzeros.shape)} and scales {list(scales.shape)} "
            f"do not fit AWQ of a {list(shape)} weight",
        )
    group_size = _group_size(quantization.setting("group_size", "q_group_size"), shape[1], quantization.source)
    group = _group(None, column, group_size, scales.shape[0], module)
    shift = bits * AWQ_ORDER.index(row % 8)
    index = (column, row // 8)
    q = (_word(qweight, index) >> shift) & 0xF
    zero = (_word(qzeros, (group, row // 8)) >> shift) & 0xF
    scale = _float(scales, (group, row))
    return Element(
        rounded(scale * (q - zero), scales.dtype),
        f"AWQ int4 (group {group_size}, {layout})",
        qweight.name,
        index,
        qweight.source.name,
        shape,
        step=abs(scale),
    )


# --- bitsandbytes ------------------------------------------------------------------------------------------


def read_bnb_4bit(module: str, find: Find, row: int, column: int) -> Element:
    """bitsandbytes NF4/FP4: the element's 4-bit code, its block's absmax (itself 8-bit under double quant), and
    the value the code stands for."""
    import numpy as np

    weight = _need(find, f"{module}.weight")
    blob = next(
        (t for t in (find(f"{module}.weight.quant_state.bitsandbytes__{k}") for k in ("nf4", "fp4")) if t is not None),
        None,
    )
    if blob is None:
        raise CheckpointError(
            weight.source.name,
            f"{module}.weight is bitsandbytes 4-bit but has no quant_state.bitsandbytes__nf4 (or __fp4) tensor",
        )
    if blob.end - blob.start > MAX_QUANT_STATE:
        raise CheckpointError(
            blob.source.name, f"{blob.name} is {blob.end - blob.start:,} bytes, too large for a quant_state"
        )
    where = f"{blob.source.name}: {blob.name}"
    state = parse_json(blob.source.read(blob.start, blob.end - blob.start), where)  # within swindex.limits' bounds
    shape = state.get("shape") if isinstance(state, dict) else None
    blocksize = state.get("blocksize") if isinstance(state, dict) else None
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(type(d) is int and d > 0 for d in shape)
        and type(blocksize) is int
        and blocksize > 0
    ):
        raise CheckpointError(where, "does not give a 2-D shape and a blocksize")
    shape_t = (shape[0], shape[1])
    _check_element(weight.name, shape_t, row, column)
    count = shape[0] * shape[1]
    if weight.end - weight.start != (count + 1) // 2:
        raise CheckpointError(
            weight.source.name,
            f"{weight.name} holds {weight.end - weight.start:,} bytes; "
            f"4-bit codes of a {shape} weight need {(count + 1) // 2:,}",
        )
    absmax = _need(find, f"{module}.weight.absmax", None, 1)
    quant_map = _need(find, f"{module}.weight.quant_map", FLOAT_DTYPES, 1)
    flat = row * shape[1] + column
    block = flat // blocksize
    if absmax.shape[0] != -(-count // blocksize) or quant_map.shape[0] != 16:
        raise CheckpointError(
            weight.source.name,
            f"{module}: absmax {list(absmax.shape)} and quant_map {list(quant_map.shape)} "
            f"do not fit {count:,} values in blocks of {blocksize}",
        )
    scale = _block_absmax(absmax, state, module, find, block)
    first = block * blocksize
    last = min(first + blocksize, count)
    raw = np.frombuffer(weight.source.read(weight.start + first // 2, (last + 1) // 2 - first // 2), dtype=np.uint8)
    codes = np.stack([raw >> 4, raw & 0x0F], axis=1).reshape(-1)[first % 2 :][: last - first]
    code_values = _floats(quant_map, (0,), 16)  # 64 bytes: the 16 values a code can stand for
    group = code_values[codes] * scale
    kind = "nf4" if blob.name.endswith("nf4") else "fp4"
    nested = " double quant" if find(f"{module}.weight.nested_absmax") is not None else ""
    group = rounded(group, _TORCH_DTYPES.get(str(state.get("dtype")), "F64"))
    return Element(
        float(group[flat - first]),
        f"bitsandbytes {kind} (block {blocksize}{nested})",
        weight.name,
        (flat // 2,),
        weight.source.name,
        shape_t,
        step=abs(scale),
        group=group,
    )


def _block_absmax(absmax: StoredTensor, state: Mapping[str, Any], module: str, find: Find, block: int) -> float:
    """A block's absmax: stored as a float, or under double quantization as an 8-bit code of a second blockwise
    quantization."""
    if absmax.dtype in FLOAT_DTYPES:
        return _float(absmax, (block,))
    nested_absmax = _need(find, f"{module}.weight.nested_absmax", FLOAT_DTYPES, 1)
    nested_map = _need(find, f"{module}.weight.nested_quant_map", FLOAT_DTYPES, 1)
    nested_block, offset = state.get("nested_blocksize"), state.get("nested_offset")
    if (
        type(nested_block) is not int
        or nested_block <= 0
        or not isinstance(offset, (int, float))
        or not math.isfinite(offset)
    ):
        raise CheckpointError(
            absmax.source.name,
            f"{module}: a double-quantized absmax needs nested_blocksize and nested_offset in its quant_state",
        )
    code = int(_ints(absmax, (block,))[0])
    if code >= nested_map.shape[0] or block // nested_block >= nested_absmax.shape[0]:
        raise CheckpointError(
            absmax.source.name,
            f"{module}: absmax code {code} of block {block} lies outside its nested quant map or absmax",
        )
    return _float(nested_map, (code,)) * _float(nested_absmax, (block // nested_block,)) + float(offset)


def read_bnb_8bit(module: str, find: Find, row: int, column: int) -> Element:
    """bitsandbytes LLM.int8(): an int8 weight with one absmax per row (SCB); the row is read whole."""
    weight = _need(find, f"{module}.weight", ("I8",), 2)
    scb = _need(find, f"{module}.SCB", FLOAT_DTYPES, 1)
    shape = (weight.shape[0], weight.shape[1])
    _check_element(weight.name, shape, row, column)
    if scb.shape[0] != shape[0]:
        raise CheckpointError(weight.source.name, f"{module}: SCB has {scb.shape[0]} row scales for {shape[0]} rows")
    scale = _float(scb, (row,)) / 127
    line = rounded(_ints(weight, (row, 0), shape[1]) * scale, "F32")
    return Element(
        float(line[column]),
        "bitsandbytes int8 (row scale)",
        weight.name,
        (row, column),
        weight.source.name,
        shape,
        step=abs(scale),
        group=line,
        group_is_row=True,
    )


# --- compressed-tensors ------------------------------------------------------------------------------------


def _scale_index(
    scale: StoredTensor, shape: tuple[int, int], row: int, column: int, g_idx: StoredTensor | None
) -> tuple[int, ...]:
    """Which entry of a weight_scale (or zero point) covers (row, column): tensor, channel, group (g_idx) or block."""
    if math.prod(scale.shape) == 1:
        return (0,) * len(scale.shape)
    if len(scale.shape) != 2:
        raise CheckpointError(
            scale.source.name,
            f"{scale.name} has shape {list(scale.shape)}; check reads tensor, channel, group and block scales",
        )
    rows, columns = scale.shape
    column_group = _group(g_idx, column, -(-shape[1] // columns), columns, scale.name) if columns > 1 else 0
    return (row // -(-shape[0] // rows), column_group)


def read_pack_quantized(quantization: Quantization | None, module: str, find: Find, row: int, column: int) -> Element:
    """compressed-tensors pack-quantized: (q - zero) * scale, q the bit field of input ``column`` in row ``row``'s
    words."""
    if quantization is not None and quantization.method == "compressed-tensors":
        layout = quantization.setting("format", default="pack-quantized")
        if layout not in COMPRESSED_TENSORS_FORMATS and layout != "mixed-precision":
            raise unsupported(quantization.source, f"compressed-tensors {layout}")
    packed = _need(find, f"{module}.weight_packed", ("I32",), 2)
    if find(f"{module}.weight_global_scale") is not None:
        raise unsupported(packed.source.name, "compressed-tensors nvfp4-pack-quantized")
    shape_tensor = _need(find, f"{module}.weight_shape", ("I64", "I32"), 1)
    stored_shape = tuple(int(v) for v in _ints(shape_tensor, (0,), 2)) if shape_tensor.shape == (2,) else ()
    if len(stored_shape) != 2 or stored_shape[0] != packed.shape[0] or min(stored_shape) <= 0:
        raise CheckpointError(
            packed.source.name,
            f"{module}: weight_shape {list(stored_shape)} does not fit weight_packed {list(packed.shape)}",
        )
    shape = (stored_shape[0], stored_shape[1])
    bits = next((b for b in PACKED_BITS if -(-shape[1] * b // 32) == packed.shape[1]), None)
    if bits is None:
        raise unsupported(packed.source.name, f"pack-quantized {packed.shape[1] * 32 / shape[1]:.3g}-bit packing")
    _check_element(packed.name, shape, row, column)
    scale_tensor = _need(find, f"{module}.weight_scale", FLOAT_DTYPES)
    g_idx = find(f"{module}.weight_g_idx")
    scale_at = _scale_index(scale_tensor, shape, row, column, g_idx)
    scale = _float(scale_tensor, scale_at)
    offset, mask = 1 << (bits - 1), (1 << bits) - 1
    index = (row, column * bits // 32)
    q = ((_word(packed, index) >> (column * bits % 32)) & mask) - offset
    zero_tensor = find(f"{module}.weight_zero_point")
    zero = 0
    if zero_tensor is not None:
        if (
            zero_tensor.dtype == "I32" and len(scale_at) == 2 and zero_tensor.shape[0] < shape[0]
        ):  # packed along output rows
            zero = ((_word(zero_tensor, (row * bits // 32, scale_at[1])) >> (row * bits % 32)) & mask) - offset
        else:
            zero = int(_ints(zero_tensor, _at(zero_tensor, *scale_at))[0])
    strategy = _strategy(scale_tensor, shape)
    return Element(
        rounded(scale * (q - zero), scale_tensor.dtype),
        f"compressed-tensors int{bits} pack-quantized ({strategy}{', asymmetric' if zero_tensor is not None else ''})",
        packed.name,
        index,
        packed.source.name,
        shape,
        step=abs(scale),
    )


def _strategy(scale: StoredTensor, shape: tuple[int, int]) -> str:
    if math.prod(scale.shape) == 1:
        return "tensor scale"
    if len(scale.shape) == 2 and scale.shape[1] == 1:
        return "channel scales"
    if len(scale.shape) == 2 and scale.shape[0] == shape[0]:
        return f"group {-(-shape[1] // scale.shape[1])}"
    return f"blocks of {-(-shape[0] // scale.shape[0])}x{-(-shape[1] // scale.shape[1])}"


def read_scaled(module: str, find: Find, row: int, column: int) -> Element:
    """compressed-tensors float-quantized (fp8) and naive-quantized (int8): the stored row times its weight_scale."""
    weight = _need(find, f"{module}.weight", ("F8_E4M3", "F8_E5M2", "I8"), 2)
    scale_tensor = _need(find, f"{module}.weight_scale", FLOAT_DTYPES)
    shape = (weight.shape[0], weight.shape[1])
    _check_element(weight.name, shape, row, column)
    scale_at = _scale_index(scale_tensor, shape, row, column, find(f"{module}.weight_g_idx"))
    scale = _float(scale_tensor, scale_at)
    zero_tensor = find(f"{module}.weight_zero_point")
    zero = int(_ints(zero_tensor, _at(zero_tensor, *scale_at))[0]) if zero_tensor is not None else 0
    if weight.dtype == "I8":
        value = float(_ints(weight, (row, column))[0] - zero) * scale
    else:
        value = (_float(weight, (row, column)) - zero) * scale
    return Element(
        rounded(value, scale_tensor.dtype),
        f"{weight.dtype} x {_strategy(scale_tensor, shape)}",
        weight.name,
        (row, column),
        weight.source.name,
        shape,
        step=abs(scale),
    )


# --- MLX ---------------------------------------------------------------------------------------------------


def read_mlx(quantization: Quantization | None, module: str, find: Find, row: int, column: int) -> Element:
    """MLX affine: scale * q + bias, q the bit field of input ``column``; the group's words are read together."""
    import numpy as np

    if quantization is None or quantization.method != "mlx":
        raise CheckpointError(
            module,
            "is MLX-quantized (weight, scales, biases) but no config.json gives its quantization (group_size, bits)",
        )
    settings: Any = quantization.settings
    for key in (module, module.removeprefix("model."), f"model.{module}"):  # mlx-lm's per-module overrides
        if key in settings:
            if not isinstance(settings[key], Mapping):
                raise CheckpointError(
                    quantization.source, f"quantization says {module} is not quantized, yet it has scales and biases"
                )
            settings = {**settings, **settings[key]}
    mode = settings.get("mode", "affine")
    if mode != "affine":
        raise unsupported(quantization.source, f"MLX {mode}")
    bits = _bits(settings.get("bits"), quantization.source)
    group_size = settings.get("group_size")
    weight = _need(find, f"{module}.weight", ("U32",), 2)
    scales = _need(find, f"{module}.scales", FLOAT_DTYPES, 2)
    biases = _need(find, f"{module}.biases", FLOAT_DTYPES, 2)
    pack = 32 // bits
    shape = (weight.shape[0], weight.shape[1] * pack)
    if (
        type(group_size) is not int
        or group_size <= 0
        or group_size % pack
        or scales.shape != (shape[0], shape[1] // group_size)
        or biases.shape != scales.shape
    ):
        raise CheckpointError(
            weight.source.name,
            f"{module}: weight {list(weight.shape)}, scales {list(scales.shape)} and biases {list(biases.shape)} "
            f"do not fit {bits}-bit MLX groups of {group_size}",
        )
    _check_element(weight.name, shape, row, column)
    group = column // group_size
    words = np.frombuffer(_raw(weight, (row, group * group_size // pack), group_size // pack), dtype="<u4")
    codes = ((words[:, None] >> (bits * np.arange(pack, dtype=np.uint32))) & ((1 << bits) - 1)).reshape(-1)
    scale, bias = _float(scales, (row, group)), _float(biases, (row, group))
    values = rounded(scale * codes.astype(np.float64) + bias, scales.dtype)
    return Element(
        float(values[column % group_size]),
        f"MLX affine int{bits} (group {group_size})",
        weight.name,
        (row, column // pack),
        weight.source.name,
        shape,
        step=abs(scale),
        group=values,
    )
