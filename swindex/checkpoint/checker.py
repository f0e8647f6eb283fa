"""`check`: read each super weight of an entry out of a checkpoint, and judge whether it was kept.

One function holds the workflow (open, choose the entry, refuse a contradicting shape, read, judge); the
file formats, the entry inference and the verdict rules live in their own modules beside it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._hashing import file_sha256
from ..errors import SwindexError, shown
from ..layout import (
    checkpoint_names,
    expert_tensor_name,
    gguf_array_index,
    gguf_tensor_names,
    held_order,
    stored_index,
)
from ..records import Entry
from ..limits import longest_row
from .errors import CheckpointError, DimensionMismatchError, UnsupportedCheckpointError
from .adapter import PEFT_PREFIX
from .formats import read_stored, stored_form
from .gguf_format import GGUFFile, quant_step, read_gguf, read_row
from .infer import (
    Inference,
    config_dimensions,
    gguf_dimensions,
    infer_entry,
    recorded_artifacts,
    refuse_contradictions,
    worth_hashing,
)
from .locate import Checkpoint, open_local
from .quantized import Element
from .remote import is_repo_spec, open_remote
from .report import CheckReport, WeightCheck, judge, weight_role
from .safetensors_format import StoredTensor, read_header, read_line, scale_for, tile_of
from .source import LocalFile, Transfer

_UNQUANTIZED_GGUF = ("F32", "F16", "BF16", "F64")


def check(
    checkpoint: str | os.PathLike[str],
    *,
    entry: Entry | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    base: str | None = None,
    registry: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    file: str | None = None,
) -> CheckReport:
    """Whether a fine-tune, merge or quantization kept its base model's super weights.

    ``checkpoint`` is a local folder of safetensors (sharded or not), one .safetensors or .gguf file, or a
    repository ``ORG/NAME[@REVISION]`` read with range requests (from the local Hugging Face cache when
    HF_HUB_OFFLINE is set). ``entry`` (an Entry, an entry dict or an entry file) or ``base`` (a registry id)
    names the model it derives from; otherwise its own bytes and metadata do (`swindex.checkpoint.infer`).
    Only headers and the bytes around each weight are read (and the whole file, once, for the sha256 rule).
    ``file`` picks one GGUF file of a repository (a GGUF repository holds one file per quantization type).
    """
    transfer = Transfer()
    opened = open_checkpoint(checkpoint, transfer, endpoint=endpoint, revision=revision, file=file)
    if opened.format == "gguf":
        import gguf.quants  # noqa: F401 - imported before the clock starts: the report times reading, not start-up
    started = time.perf_counter()
    gguf_file = read_gguf(opened.open_file(opened.files[0])) if opened.format == "gguf" else None
    dimensions = gguf_dimensions(gguf_file.metadata) if gguf_file else config_dimensions(opened.config)
    choosing = time.perf_counter()
    chosen, sha256 = choose_entry(opened, gguf_file, dimensions, entry=entry, base=base, registry=registry)
    started += time.perf_counter() - choosing  # nor finding and validating the entry (nor hashing for it)
    refuse_contradictions(chosen.entry, dimensions, opened.location)
    weights = weights_to_check(chosen.entry)
    if not weights:
        raise SwindexError(
            f"{shown(opened.location)}: its base model is {chosen.entry.id} (rule {chosen.rule}: "
            f"{shown(chosen.detail)}), whose entry records no scalar weight to keep (its findings, if any, are rows "
            "or experts); `swindex detect` can find them, or name another with --base"
        )
    read = _gguf_reader(gguf_file, chosen.entry) if gguf_file else _safetensors_reader(opened, chosen.entry)
    results = tuple(read(claim) for claim in weights)
    return CheckReport(
        checkpoint=opened.location,
        format=opened.format,
        entry=chosen.entry.id,
        entry_rule=chosen.rule,
        entry_from=chosen.detail,
        weights=results,
        revision=opened.revision,
        sha256=sha256,
        bytes_read=transfer.bytes,
        reads=transfer.reads,
        seconds=time.perf_counter() - started,
        notes=opened.notes,
    )


def infer_base(checkpoint: str | os.PathLike[str], *, registry: str | os.PathLike[str] | None = None) -> Inference:
    """The registry entry a local checkpoint derives from, and the rule that told it: what `check` would use.

    `swindex lookup FILE` answers with this, so lookup and check never disagree about a file's model.
    """
    transfer = Transfer()
    opened = open_local(os.fspath(checkpoint), transfer)
    gguf_file = read_gguf(opened.open_file(opened.files[0])) if opened.format == "gguf" else None
    dimensions = gguf_dimensions(gguf_file.metadata) if gguf_file else config_dimensions(opened.config)
    inferred, _ = choose_entry(opened, gguf_file, dimensions, registry=registry)
    refuse_contradictions(inferred.entry, dimensions, opened.location)
    return inferred


def open_checkpoint(
    spec: str | os.PathLike[str],
    transfer: Transfer,
    *,
    endpoint: str | None = None,
    revision: str | None = None,
    file: str | None = None,
) -> Checkpoint:
    """A local path when one exists by that name, else a repository id (and ``file``, one GGUF file in it); a
    repository is read from its cached snapshot when HF_HUB_OFFLINE is set."""
    text = os.fspath(spec)
    if Path(text).exists() or not is_repo_spec(text):
        if file is not None:
            raise SwindexError(
                f"{text}: a file within a checkpoint is named only for a repository; give the local file's path instead"
            )
        if revision is not None:
            raise SwindexError(f"--revision {revision}: {shown(text)} is a local path, which has no revisions")
        return open_local(text, transfer)
    from huggingface_hub.constants import is_offline_mode

    if is_offline_mode():
        return open_cached(text, transfer, revision=revision, file=file)
    return open_remote(text, transfer, endpoint=endpoint, revision=revision, file=file)


def open_cached(spec: str, transfer: Transfer, *, revision: str | None = None, file: str | None = None) -> Checkpoint:
    """A repository's snapshot in the local Hugging Face cache, read as a local folder (offline, nothing is fetched)."""
    from dataclasses import replace

    from huggingface_hub import snapshot_download

    repo, _, named = spec.partition("@")
    wanted = revision or named or None
    try:
        folder = snapshot_download(repo, revision=wanted, local_files_only=True)
    except Exception:  # noqa: BLE001 - huggingface_hub says 'not cached' with several error types, all meaning this
        at = f" at {wanted}" if wanted else ""
        raise CheckpointError(
            spec,
            f"HF_HUB_OFFLINE is set and the local Hugging Face cache holds no snapshot of it{at}: "
            "unset HF_HUB_OFFLINE, or download it first",
        ) from None
    opened = open_local(Path(folder) / file if file is not None else folder, transfer)
    sha = Path(folder).name
    return replace(opened, location=f"{repo}@{sha} (local cache)", revision=sha)


def choose_entry(
    opened: Checkpoint,
    gguf_file: GGUFFile | None,
    dimensions: Mapping[str, int],
    *,
    entry: Any = None,
    base: str | None = None,
    registry: Any = None,
) -> tuple[Inference, str | None]:
    """The entry to check against and how it was chosen (given, named, or inferred), with the sha256 if hashed."""
    if entry is not None and base is not None:
        raise SwindexError("give the entry or the base model, not both")
    if isinstance(entry, Entry):
        return Inference(entry, "given", "the entry given"), None
    if isinstance(entry, Mapping):
        return Inference(_validated(dict(entry), "the entry given"), "given", "the entry given"), None
    if entry is not None:
        from ..errors import ValidationError
        from ..validate import check_file

        data, problems = check_file(Path(entry))  # validated first: a broken entry fails before any weight is read
        if problems:
            raise ValidationError(problems)
        return Inference(Entry.from_dict(data, path=os.fspath(entry)), "given", f"entry file {os.fspath(entry)}"), None
    if base is not None:
        from .._lookup import lookup

        return Inference(lookup(base, registry=registry), "named", f"--base {base}"), None
    artifacts = recorded_artifacts(registry)
    sha256 = _sha256_if_recorded(opened, artifacts)
    inferred = infer_entry(
        opened.location,
        config=opened.config,
        card=opened.card,
        gguf_metadata=gguf_file.metadata if gguf_file else None,
        dimensions=dimensions,
        registry=registry,
        sha256=sha256,
        artifacts=artifacts,
    )
    return inferred, sha256


def _validated(data: dict[str, Any], where: str) -> Entry:
    """An entry dict, refused (ValidationError) when it breaks the schema or a rule: NaN never judges a weight."""
    from ..errors import ValidationError
    from ..validate import validate_entry_dict

    problems = validate_entry_dict(data, where)
    if problems:
        raise ValidationError(problems)
    return Entry.from_dict(data)


def _sha256_if_recorded(opened: Checkpoint, artifacts: list[Any]) -> str | None:
    """The sha256 of a one-file checkpoint when some recorded artifact could be it (see `infer.worth_hashing`):
    the Hub's own LFS figure for a repository, else the local file hashed."""
    if len(opened.files) != 1:
        return None
    if opened.file_sha256 is not None:
        return opened.file_sha256
    source = opened.open_file(opened.files[0])
    if not isinstance(source, LocalFile) or not worth_hashing(artifacts, source.size, opened.format):
        return None
    return file_sha256(source.path)


def weights_to_check(entry: Entry) -> tuple[Any, ...]:
    """What quantization and fine-tuning should keep: the entry's weights to keep (swindex.claims decides)."""
    return tuple(entry.weights_to_keep)


def _curve(claim: Any) -> tuple[tuple[float, float], ...] | None:
    """The claim's recorded scale curve (perplexity ratio at each scale), when swindex verify measured one."""
    impact = getattr(claim, "impact", None)
    return getattr(impact, "scale_curve", None) if getattr(impact, "metric", None) == "perplexity" else None


def _recorded(claim: Any, entry: Entry) -> float | None:
    """The claim's recorded value; a non-finite one is refused, never compared (NaN would make every check pass)."""
    value = claim.value
    if value is not None and not math.isfinite(value):
        raise SwindexError(
            f"{entry.id}: {claim.coordinate} records the value {value}, which is not a finite number; "
            "fix or update the entry"
        )
    return value


def _weight(claim: Any, entry: Entry, value: float, line: Any, **found: Any) -> WeightCheck:
    """One WeightCheck: the claim's coordinates, what was found, and the verdict on it."""
    recorded = _recorded(claim, entry)
    return WeightCheck(
        location=claim.location,
        role=weight_role(claim),
        recorded=recorded,
        value=value,
        judgement=judge(recorded, value, curve=_curve(claim), line=line),
        **found,
    )


def _gguf_reader(gguf_file: GGUFFile, entry: Entry) -> Any:
    hidden = entry.dimensions.get("hidden_size")

    def read(claim: Any) -> WeightCheck:
        tensor = _gguf_tensor(gguf_file, claim)
        rows = tensor.array_shape[-2] if len(tensor.ne) > 1 else 1
        if isinstance(hidden, int) and rows != hidden:
            raise DimensionMismatchError(
                f"{shown(gguf_file.source.name)}: {shown(tensor.name)} has {rows} rows (ne {list(tensor.ne)}); "
                f"{entry.id}'s hidden size is {hidden}"
            )
        expert = claim.expert if len(tensor.ne) > 2 else None
        if claim.column >= tensor.ne[0]:
            outside = f"column {claim.column} is outside {shown(tensor.name)} (ne {list(tensor.ne)})"
            raise CheckpointError(gguf_file.source.name, outside)
        values, raw = read_row(tensor, claim.row, expert, longest=longest_row(entry.dimensions))
        value = float(values[claim.column])
        quantized = tensor.type_name not in _UNQUANTIZED_GGUF
        start = claim.column // tensor.block_size * tensor.block_size
        block = values[start : start + tensor.block_size]
        step = quant_step(tensor, raw, claim.column) if quantized else None
        recorded = _recorded(claim, entry)
        return _weight(
            claim,
            entry,
            value,
            values,
            tensor=tensor.name,
            index=gguf_array_index(claim.row, claim.column, expert),
            file=gguf_file.source.name,
            stored_as=tensor.type_name,
            quantized=quantized,
            block_scale=step,
            block_error=(value - recorded) / step if step and recorded is not None else None,
            largest_in_row=_largest(value, values),
            largest_in_block=_largest(value, block) if quantized else None,
        )

    return read


def _gguf_tensor(gguf_file: GGUFFile, claim: Any) -> Any:
    names = gguf_tensor_names(claim.tensor, claim.layer, claim.expert)
    for name in names:
        if name in gguf_file.tensors:
            return gguf_file.tensors[name]
    present = sorted(n for n in gguf_file.tensors if n.startswith(f"blk.{claim.layer}.ffn_down"))
    held = (
        f" (layer {claim.layer} holds {', '.join(map(shown, present))})"
        if present
        else f" (it has no layer {claim.layer} down projection)"
    )
    raise CheckpointError(gguf_file.source.name, f"has no {names[0]} for {claim.coordinate}{held}")


def loaded_tensors(opened: Checkpoint, header: Any) -> dict[str, StoredTensor]:
    """Every tensor a loader would see, by name, across the checkpoint's files; a name in two files is refused.

    transformers reads every key of every file it loads, the later file winning; a checkpoint whose files
    disagree about a tensor has no one answer, so check names both places instead of picking one.
    """
    tensors: dict[str, StoredTensor] = {}
    for file in opened.files:
        for name, tensor in header(file).items():
            if name in tensors:
                raise CheckpointError(
                    opened.location,
                    f"tensor {shown(name)} is stored twice, in {shown(tensors[name].source.name)} "
                    f"and in {shown(tensor.source.name)}; "
                    "transformers loads the later one, whatever the index says: remove one copy",
                )
            tensors[name] = tensor
    return tensors


def _safetensors_reader(opened: Checkpoint, entry: Entry) -> Any:
    @cache
    def header(file: str) -> dict[str, StoredTensor]:
        return read_header(opened.open_file(file))

    @cache
    def tensors() -> dict[str, StoredTensor]:
        return loaded_tensors(opened, header)

    hidden = entry.dimensions.get("hidden_size")
    lines: dict[tuple[str, tuple[int, ...]], tuple[Any, str, bool]] = {}
    form = cache(lambda: stored_form(opened, tuple(tensors())))

    def find(name: str) -> StoredTensor | None:
        return tensors().get(name)

    def match(name: str) -> str | None:
        try:
            return _match_tensor(SimpleNamespace(tensor=name, layer=-1, expert=None), tuple(tensors()), opened.location)
        except CheckpointError:
            return None

    def read(claim: Any) -> WeightCheck:
        found = read_stored(form(), claim, find, match)  # quantized formats and adapters
        if found is not None:
            return _stored_check(claim, found, entry)
        stored = tensors()
        if form().adapter is not None:  # peft's modules_to_save: the whole weight, under peft's own prefix
            stored = {n.removeprefix(PEFT_PREFIX): t for n, t in stored.items()}
        name = _match_tensor(claim, tuple(stored), opened.location)
        tensor = stored[name]
        index = _index_in(tensor, claim, entry)
        transposed = held_order(index, claim.row, claim.column) == "transposed"
        rows = tensor.shape[-1 if transposed else -2]
        if isinstance(hidden, int) and rows != hidden:
            raise DimensionMismatchError(
                f"{shown(tensor.source.name)}: {shown(name)} has shape {list(tensor.shape)}, {rows} rows; "
                f"{entry.id}'s hidden size is {hidden}"
            )
        key = (name, tuple(index[:-1]))
        if key not in lines:  # weights on one row share its read
            lines[key] = stored_line(stored, name, index, longest_row(entry.dimensions))
        line, stored_as, quantized = lines[key]
        value = float(line[index[-1]])
        largest = _largest(value, line)
        return _weight(
            claim,
            entry,
            value,
            line,
            tensor=name,
            index=tuple(index),
            file=tensor.source.name,
            stored_as=stored_as,
            quantized=quantized,
            largest_in_row=None if transposed else largest,
            largest_in_column=largest if transposed else None,
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
    recorded = _recorded(claim, entry)
    has_group = stored.group is not None
    return _weight(
        claim,
        entry,
        stored.value,
        stored.group if has_group and stored.group_is_row else None,
        tensor=stored.tensor,
        index=stored.index,
        file=stored.file,
        stored_as=stored.stored_as,
        quantized=stored.step is not None,
        block_scale=stored.step,
        block_error=(stored.value - recorded) / stored.step if stored.step and recorded is not None else None,
        largest_in_row=_largest(stored.value, stored.group) if has_group and stored.group_is_row else None,
        largest_in_block=_largest(stored.value, stored.group) if has_group and not stored.group_is_row else None,
    )


def stored_line(
    tensors: Mapping[str, StoredTensor], name: str, index: tuple[int, ...], longest: int
) -> tuple[Any, str, bool]:
    """(values, stored as, quantized) of the stored line of tensor ``name`` holding ``index``; a line longer than
    ``longest`` (the entry's widest row, `swindex.limits.longest_row`) is refused before it is read.

    The one place a plain safetensors value is decoded: floats, and fp8 times its tile scales (quantized
    formats and adapters are read by `swindex.checkpoint.formats.read_stored` first).
    """
    tensor = tensors[name]
    scale = scale_for(dict(tensors), tensor) if tensor.dtype.startswith("F8_") else None
    return _line(tensor, index, scale, longest)


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
    """The checkpoint's name for the claim's tensor: exactly its name, or the same under another of the
    prefixes a loader adds or drops (`swindex.layout.CHECKPOINT_PREFIXES`), or the claim's expert saved as
    its own tensor. A name that only ends like it (``weight``, ``mlp.down_proj.weight``) is not it."""
    available = set(names)
    found = [name for name in checkpoint_names(claim.tensor) if name in available]
    if claim.expert is not None and not found:
        found = [name for name in checkpoint_names(expert_tensor_name(claim.tensor, claim.expert)) if name in available]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names_found = ", ".join(map(shown, found))
        raise CheckpointError(
            where, f"holds {claim.tensor} under several names ({names_found}); a loader keeps one: remove the others"
        )
    module = claim.tensor.rsplit(".", 1)[0] if claim.tensor.endswith(".weight") else claim.tensor
    if any(n.endswith(f"{module.split('.', 1)[-1]}.qweight") for n in names):
        raise UnsupportedCheckpointError(
            where, f"{module} is stored as packed integers (qweight: GPTQ or AWQ), which check cannot read"
        )
    layer = f".{claim.layer}."
    near = sorted(n for n in names if layer in f".{n}" and ("down" in n or "c_proj" in n or "fc2" in n or "w2" in n))[
        :4
    ]
    hint = f"; its layer {claim.layer} has {', '.join(map(shown, near))}" if near else ""
    raise CheckpointError(
        where,
        f"has no tensor {claim.tensor} (nor one of that name under another prefix){hint}: "
        "is it the model the entry describes?",
    )


def _index_in(tensor: StoredTensor, claim: Any, entry: Entry) -> tuple[int, ...]:
    """Where the claim's scalar sits in this checkpoint's tensor: the entry's own index when the ranks agree
    (the entry records its model's layout), else, for one expert saved as its own Linear, ``[row, column]``."""
    index = tuple(claim.index)
    if len(tensor.shape) == len(index):
        return index
    if len(tensor.shape) == 2 and len(index) == 3:
        return stored_index(claim.row, claim.column)  # one expert saved as its own Linear
    raise CheckpointError(
        tensor.source.name,
        f"{tensor.name} has shape {list(tensor.shape)}, which cannot hold index {list(index)} of {claim.coordinate}",
    )


def _largest(value: float, values: Any) -> bool:
    import numpy as np

    magnitudes = np.abs(np.asarray(values, dtype=np.float64))
    return bool(abs(value) >= np.nanmax(magnitudes)) if magnitudes.size else False
