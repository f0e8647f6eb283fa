"""`check`: read each super weight of an entry out of a checkpoint, and judge whether it was kept.

One function holds the workflow (open, choose the entry, refuse a contradicting shape, read, judge); the
file formats, the entry inference and the verdict rules live in their own modules beside it.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import SwindexError
from ..layout import gguf_array_index, gguf_tensor_name, stored_index
from ..records import Entry
from ..limits import longest_row
from .errors import CheckpointError, DimensionMismatchError, UnsupportedCheckpointError
from .formats import read_stored, stored_form
from .gguf_format import GGUFFile, quant_step, read_gguf, read_row
from .infer import config_dimensions, gguf_dimensions, infer_entry, refuse_contradictions
from .locate import Checkpoint, open_local
from .quantized import Element
from .remote import is_repo_spec, open_remote
from .report import CheckReport, WeightCheck, judge
from .safetensors_format import StoredTensor, read_header, read_line, scale_for, tile_of
from .source import Transfer

_UNQUANTIZED_GGUF = ("F32", "F16", "BF16", "F64")


def check(
    checkpoint: str | os.PathLike[str],
    *,
    entry: Entry | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    base: str | None = None,
    registry: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    file: str | None = None,
) -> CheckReport:
    """Whether a fine-tune, merge or quantization kept its base model's super weights.

    ``checkpoint`` is a local folder of safetensors (sharded or not), one .safetensors or .gguf file, or a
    repository ``ORG/NAME[@REVISION]`` read with range requests. ``entry`` (an Entry, an entry dict or an
    entry file) or ``base`` (a registry id) names the model it derives from; otherwise its own metadata
    does. Only headers and the bytes around each weight are read. ``file`` picks one GGUF file of a
    repository (a GGUF repository holds one file per quantization type).
    """
    transfer = Transfer()
    opened = open_checkpoint(checkpoint, transfer, endpoint=endpoint, file=file)
    if opened.format == "gguf":
        import gguf.quants  # noqa: F401 - imported before the clock starts: the report times reading, not start-up
    started = time.perf_counter()
    gguf_file = read_gguf(opened.open_file(opened.files[0])) if opened.format == "gguf" else None
    dimensions = gguf_dimensions(gguf_file.metadata) if gguf_file else config_dimensions(opened.config)
    choosing = time.perf_counter()
    chosen, how = choose_entry(opened, gguf_file, dimensions, entry=entry, base=base, registry=registry)
    started += time.perf_counter() - choosing  # nor finding and validating the entry
    refuse_contradictions(chosen, dimensions, opened.location)
    weights = weights_to_check(chosen)
    if not weights:
        raise SwindexError(
            f"{opened.location}: its base model is {chosen.id} (from {how}), whose entry records no scalar super weight "
            "to check (its findings, if any, are rows or experts); `swindex detect` can find them, or name another with --base"
        )
    read = _gguf_reader(gguf_file, chosen) if gguf_file else _safetensors_reader(opened, chosen)
    results = tuple(read(claim) for claim in weights)
    notes = ()
    if any(r.recorded is None for r in results):
        notes = ("a weight without a recorded value is reported, not judged: the entry needs its value (swindex detect records it)",)
    return CheckReport(
        checkpoint=opened.location, format=opened.format, entry=chosen.id, entry_from=how, weights=results,
        bytes_read=transfer.bytes, reads=transfer.reads, seconds=time.perf_counter() - started, notes=notes,
    )


def open_checkpoint(
    spec: str | os.PathLike[str], transfer: Transfer, *, endpoint: str | None = None, file: str | None = None
) -> Checkpoint:
    """A local path when one exists by that name, else a repository id (and ``file``, one GGUF file in it)."""
    text = os.fspath(spec)
    if Path(text).exists() or not is_repo_spec(text):
        if file is not None:
            raise SwindexError(
                f"{text}: a file within a checkpoint is named only for a repository; give the local file's path instead"
            )
        return open_local(text, transfer)
    return open_remote(text, transfer, endpoint=endpoint, file=file)


def choose_entry(
    opened: Checkpoint,
    gguf_file: GGUFFile | None,
    dimensions: Mapping[str, int],
    *,
    entry: Any = None,
    base: str | None = None,
    registry: Any = None,
) -> tuple[Entry, str]:
    """The entry to check against and how it was chosen: given, named, or inferred from the checkpoint."""
    if entry is not None and base is not None:
        raise SwindexError("give the entry or the base model, not both")
    if isinstance(entry, Entry):
        return entry, "the entry given"
    if isinstance(entry, Mapping):
        return Entry.from_dict(entry), "the entry given"
    if entry is not None:
        from ..errors import ValidationError
        from ..validate import check_file

        data, problems = check_file(Path(entry))  # validated first: a broken entry fails before any weight is read
        if problems:
            raise ValidationError(problems)
        return Entry.from_dict(data, path=os.fspath(entry)), f"entry file {os.fspath(entry)}"
    if base is not None:
        from .._lookup import lookup

        return lookup(base, registry=registry), f"named base {base}"
    return infer_entry(
        opened.location, config=opened.config, card=opened.card, gguf_metadata=gguf_file.metadata if gguf_file else None,
        dimensions=dimensions, registry=registry,
    )


def weights_to_check(entry: Entry) -> tuple[Any, ...]:
    """What quantization and fine-tuning should keep: the entry's weights to keep (its standing super weights before schema 2)."""
    chosen = getattr(entry, "weights_to_keep", None)
    return tuple(chosen if chosen is not None else entry.active_super_weights)


def _gguf_reader(gguf_file: GGUFFile, entry: Entry) -> Any:
    hidden = entry.dimensions.get("hidden_size")

    def read(claim: Any) -> WeightCheck:
        tensor = _gguf_tensor(gguf_file, claim)
        rows = tensor.array_shape[-2] if len(tensor.ne) > 1 else 1
        if isinstance(hidden, int) and rows != hidden:
            raise DimensionMismatchError(f"{gguf_file.source.name}: {tensor.name} has {rows} rows (ne {list(tensor.ne)}); {entry.id}'s hidden size is {hidden}")
        expert = claim.expert if len(tensor.ne) > 2 else None
        if claim.column >= tensor.ne[0]:
            raise CheckpointError(gguf_file.source.name, f"column {claim.column} is outside {tensor.name} (ne {list(tensor.ne)})")
        values, raw = read_row(tensor, claim.row, expert, longest=longest_row(entry.dimensions))
        value = float(values[claim.column])
        quantized = tensor.type_name not in _UNQUANTIZED_GGUF
        start = claim.column // tensor.block_size * tensor.block_size
        block = values[start:start + tensor.block_size]
        step = quant_step(tensor, raw, claim.column) if quantized else None
        verdict, reason = judge(claim.value, value)
        return WeightCheck(
            coordinate=str(claim.coordinate), layer=claim.layer, row=claim.row, column=claim.column, expert=claim.expert,
            tensor=tensor.name, index=gguf_array_index(claim.row, claim.column, expert), file=gguf_file.source.name,
            stored_as=tensor.type_name, recorded=claim.value, value=value, quantized=quantized,
            block_scale=step, block_error=(value - claim.value) / step if step and claim.value is not None else None,
            largest_in_row=_largest(value, values), largest_in_block=_largest(value, block) if quantized else None,
            verdict=verdict, reason=reason,
        )

    return read


def _gguf_tensor(gguf_file: GGUFFile, claim: Any) -> Any:
    shared = bool(re.search(r"shared_experts?\.", claim.tensor))
    names = [gguf_tensor_name(claim.layer, claim.expert, shared=shared)]
    if claim.expert is not None:
        names.append(f"blk.{claim.layer}.ffn_down.{claim.expert}.weight")  # llama.cpp's older per-expert tensors
    for name in names:
        if name in gguf_file.tensors:
            return gguf_file.tensors[name]
    present = sorted(n for n in gguf_file.tensors if n.startswith(f"blk.{claim.layer}.ffn_down"))
    raise CheckpointError(
        gguf_file.source.name,
        f"has no {names[0]} for {claim.coordinate}" + (f" (layer {claim.layer} holds {', '.join(present)})" if present else f" (it has no layer {claim.layer} down projection)"),
    )


def _safetensors_reader(opened: Checkpoint, entry: Entry) -> Any:
    @cache
    def header(file: str) -> dict[str, StoredTensor]:
        return read_header(opened.open_file(file))

    def file_of(name: str) -> str | None:
        if opened.weight_map is not None:
            return opened.weight_map.get(name)
        return next((file for file in opened.files if name in header(file)), None)

    @cache
    def names() -> tuple[str, ...]:
        if opened.weight_map is not None:
            return tuple(opened.weight_map)
        return tuple(name for file in opened.files for name in header(file))

    hidden = entry.dimensions.get("hidden_size")
    lines: dict[tuple[str, str, tuple[int, ...]], tuple[Any, str, bool]] = {}
    form = cache(lambda: stored_form(opened, names()))

    def find(name: str) -> StoredTensor | None:
        file = file_of(name)
        return header(file).get(name) if file is not None else None

    def match(name: str) -> str | None:
        try:
            return _match_tensor(SimpleNamespace(tensor=name, layer=-1, expert=None), names(), opened.location)
        except CheckpointError:
            return None

    def read(claim: Any) -> WeightCheck:
        stored = read_stored(form(), claim, find, match)  # quantized formats and adapters
        if stored is not None:
            return _stored_check(claim, stored, entry)
        name = _match_tensor(claim, names(), opened.location)
        file = file_of(name)
        if file is None or name not in header(file):
            raise CheckpointError(file or opened.location, f"the shard index puts {name} in this file, but its header does not list it")
        tensor = header(file)[name]
        index = _index_in(tensor, claim, entry)
        transposed = tuple(index[-2:]) != (claim.row, claim.column)
        rows = tensor.shape[-1 if transposed else -2]
        if isinstance(hidden, int) and rows != hidden:
            raise DimensionMismatchError(f"{tensor.source.name}: {name} has shape {list(tensor.shape)}, {rows} rows; {entry.id}'s hidden size is {hidden}")
        key = (file, name, tuple(index[:-1]))
        if key not in lines:  # weights on one row share its read
            scale_file = file_of(f"{name}_scale_inv") if tensor.dtype.startswith("F8_") else None
            scale = scale_for(header(scale_file), tensor) if scale_file else None
            lines[key] = _line(tensor, index, scale, longest_row(entry.dimensions))
        line, stored_as, quantized = lines[key]
        value = float(line[index[-1]])
        verdict, reason = judge(claim.value, value)
        largest = _largest(value, line)
        return WeightCheck(
            coordinate=str(claim.coordinate), layer=claim.layer, row=claim.row, column=claim.column, expert=claim.expert,
            tensor=name, index=tuple(index), file=tensor.source.name, stored_as=stored_as, recorded=claim.value,
            value=value, quantized=quantized,
            largest_in_row=None if transposed else largest, largest_in_column=largest if transposed else None,
            verdict=verdict, reason=reason,
        )

    return read


def _stored_check(claim: Any, stored: Element, entry: Entry) -> WeightCheck:
    """The check of a weight read by a quantized format's or an adapter's reader."""
    hidden = entry.dimensions.get("hidden_size")
    if isinstance(hidden, int) and stored.shape[0] and stored.shape[0] != hidden:
        raise DimensionMismatchError(
            f"{stored.file}: {stored.tensor} holds a {list(stored.shape)} weight, {stored.shape[0]} rows; "
            f"{entry.id}'s hidden size is {hidden}"
        )
    verdict, reason = judge(claim.value, stored.value)
    has_group = stored.group is not None
    return WeightCheck(
        coordinate=str(claim.coordinate), layer=claim.layer, row=claim.row, column=claim.column, expert=claim.expert,
        tensor=stored.tensor, index=stored.index, file=stored.file, stored_as=stored.stored_as, recorded=claim.value,
        value=stored.value, quantized=stored.step is not None, block_scale=stored.step,
        block_error=(stored.value - claim.value) / stored.step if stored.step and claim.value is not None else None,
        largest_in_row=_largest(stored.value, stored.group) if has_group and stored.group_is_row else None,
        largest_in_block=_largest(stored.value, stored.group) if has_group and not stored.group_is_row else None,
        verdict=verdict, reason=reason,
    )


def _line(
    tensor: StoredTensor, index: tuple[int, ...], scale: StoredTensor | None, longest: int
) -> tuple[Any, str, bool]:
    """(values, stored as, quantized) of the stored line holding ``index``; fp8 values times their tile scales."""
    line = read_line(tensor, index, longest)
    if scale is None:
        return line, tensor.dtype, False
    import numpy as np

    scales = read_line(scale, tile_of(tensor, scale, index))
    width = math.ceil(tensor.shape[-1] / scale.shape[-1])
    return line * np.repeat(scales, width)[: len(line)], f"{tensor.dtype} x {scale.dtype} tile scales", True


def _match_tensor(claim: Any, names: tuple[str, ...], where: str) -> str:
    """The checkpoint's name for the claim's tensor: the same name, the same under another prefix
    (``model.`` dropped, ``language_model.`` added), or the claim's expert saved as its own tensor."""
    wanted = claim.tensor
    available = set(names)
    for name in (wanted, f"{wanted}.weight"):
        if name in available:
            return name
    for target in (wanted, f"{wanted}.weight"):
        found = sorted(n for n in names if n.endswith("." + target) or target.endswith("." + n))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise CheckpointError(where, f"several tensors could be {wanted}: {', '.join(found)}")
    if claim.expert is not None:
        own = re.compile(rf"(?:^|\.)(?:layers|h|blocks)\.{claim.layer}\..*experts\.{claim.expert}\.(?:down_proj|w2|c_proj|fc2)\.weight$")
        found = sorted(n for n in names if own.search(n))
        if len(found) == 1:
            return found[0]
    module = wanted.rsplit(".", 1)[0] if wanted.endswith(".weight") else wanted
    if any(n.endswith(f"{module.split('.', 1)[-1]}.qweight") for n in names):
        raise UnsupportedCheckpointError(where, f"{module} is stored as packed integers (qweight: GPTQ or AWQ), which check cannot read")
    layer = f".{claim.layer}."
    near = sorted(n for n in names if layer in f".{n}" and ("down" in n or "c_proj" in n or "fc2" in n or "w2" in n))[:4]
    hint = f"; its layer {claim.layer} has {', '.join(near)}" if near else ""
    raise CheckpointError(where, f"has no tensor {wanted} (nor one of that name under another prefix){hint}: is it the model the entry describes?")


def _index_in(tensor: StoredTensor, claim: Any, entry: Entry) -> tuple[int, ...]:
    """Where the claim's scalar sits in this checkpoint's tensor: the entry's own index when the ranks agree
    (the entry records its model's layout), else, for one expert saved as its own Linear, ``[row, column]``."""
    index = tuple(claim.index)
    if len(tensor.shape) == len(index):
        return index
    if len(tensor.shape) == 2 and len(index) == 3:
        return stored_index(claim.row, claim.column)  # one expert saved as its own Linear
    raise CheckpointError(tensor.source.name, f"{tensor.name} has shape {list(tensor.shape)}, which cannot hold index {list(index)} of {claim.coordinate}")


def _largest(value: float, values: Any) -> bool:
    import numpy as np

    magnitudes = np.abs(np.asarray(values, dtype=np.float64))
    return bool(abs(value) >= np.nanmax(magnitudes)) if magnitudes.size else False
