"""What a PATH names: a safetensors folder (sharded or not), one .safetensors file or a .gguf file, with the
small files around it (config.json, the model card) that say which model it is.

A folder's weights are the files transformers would load, and only those (``_get_resolved_checkpoint_files``
in transformers 5's modeling_utils): ``model.safetensors`` when it exists, even beside an index; else every
file the shard index names, each read whole (the index's tensor-to-file map only lists the files). Any other
``.safetensors`` file is a stray no loader reads: it is ignored, and named in a note. A PEFT adapter folder's
``adapter_model.safetensors`` is what peft reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..constants import GGUF_SUFFIX
from ..errors import shown
from ..limits import MAX_SMALL_FILE_BYTES, ParseError, load_json, load_yaml_text
from .errors import CheckpointError
from .source import ByteSource, LocalFile, Transfer

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
"""PEFT's adapter weights, read when the folder has neither model.safetensors nor an index (peft's own rule)."""
CARD_BYTES = 65_536
"""Only the start of a model card is read: its YAML front matter."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's files and metadata; weight files are opened (their headers read) only when needed."""

    location: str
    format: str  # "safetensors" or "gguf"
    files: tuple[str, ...]  # weight files, by name (safetensors shards in order, or the one GGUF file)
    open_file: Callable[[str], ByteSource] = field(repr=False)
    transfer: Transfer = field(repr=False)
    config: Mapping[str, Any] | None = None
    card: Mapping[str, Any] | None = None
    weight_map: Mapping[str, str] | None = None  # tensor name -> file, from the shard index
    revision: str | None = None
    notes: tuple[str, ...] = ()  # what was left out, and why (stray weight files)
    file_sha256: str | None = None  # the one weight file's sha256 when the Hub reports it (LFS): no need to hash it


def open_local(path: str | os.PathLike[str], transfer: Transfer) -> Checkpoint:
    """A local checkpoint: a folder, a .safetensors file, a shard index or a .gguf file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such file or folder (a model id is written ORG/NAME[@REVISION])")
    folder = path if path.is_dir() else path.parent

    def open_file(name: str) -> ByteSource:
        return LocalFile.open(folder / name, transfer)

    def metadata(**kwargs: Any) -> dict[str, Any]:
        config = _read_json(folder / "config.json", transfer) if (folder / "config.json").is_file() else None
        card = (
            front_matter(_read_start(folder / "README.md", CARD_BYTES, transfer))
            if (folder / "README.md").is_file()
            else None
        )
        return {"config": config, "card": card, **kwargs}

    if path.is_file():
        if path.suffix == GGUF_SUFFIX:
            return Checkpoint(str(path), "gguf", (path.name,), open_file, transfer)
        if path.suffix == ".safetensors":
            return Checkpoint(str(path), "safetensors", (path.name,), open_file, transfer, **metadata())
        if path.name.endswith(".safetensors.index.json"):
            weight_map = shard_map(_read_json(path, transfer), str(path))
            return Checkpoint(
                str(folder),
                "safetensors",
                _shards(weight_map, folder, str(path)),
                open_file,
                transfer,
                **metadata(weight_map=weight_map),
            )
        raise CheckpointError(path, "is not a .safetensors, .gguf or model.safetensors.index.json file")
    present = sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())
    if SINGLE_FILE in present:
        return Checkpoint(
            str(folder),
            "safetensors",
            (SINGLE_FILE,),
            open_file,
            transfer,
            **metadata(notes=stray_note(present, (SINGLE_FILE,))),
        )
    if (folder / INDEX_FILE).is_file():
        weight_map = shard_map(_read_json(folder / INDEX_FILE, transfer), str(folder / INDEX_FILE))
        shards = _shards(weight_map, folder, str(folder / INDEX_FILE))
        return Checkpoint(
            str(folder),
            "safetensors",
            shards,
            open_file,
            transfer,
            **metadata(weight_map=weight_map, notes=stray_note(present, shards)),
        )
    if ADAPTER_FILE in present:  # a PEFT adapter: what peft's loader reads (with adapter_config.json beside it)
        return Checkpoint(
            str(folder),
            "safetensors",
            (ADAPTER_FILE,),
            open_file,
            transfer,
            **metadata(notes=stray_note(present, (ADAPTER_FILE,))),
        )
    if present:
        raise CheckpointError(
            folder,
            f"holds {', '.join(present[:4])}{', ...' if len(present) > 4 else ''} but neither {SINGLE_FILE} nor "
            f"{INDEX_FILE}, so transformers loads none of them; check the file you mean directly, e.g. "
            f"{folder / present[0]}",
        )
    ggufs = sorted(p.name for p in folder.glob("*.gguf") if p.is_file())
    if len(ggufs) == 1:
        return Checkpoint(str(folder / ggufs[0]), "gguf", (ggufs[0],), open_file, transfer)
    if ggufs:
        raise CheckpointError(
            folder, f"holds several GGUF files ({', '.join(ggufs)}); give the one to check, e.g. {folder / ggufs[0]}"
        )
    pickles = sorted(p.name for p in folder.glob("*.bin"))
    hint = (
        f" ({', '.join(pickles[:3])} are PyTorch pickles, which check does not open: convert them to safetensors)"
        if pickles
        else ""
    )
    raise CheckpointError(folder, f"holds no .safetensors or .gguf file{hint}")


def stray_note(present: list[str] | tuple[str, ...], read: tuple[str, ...]) -> tuple[str, ...]:
    """A note naming the weight files beside the checkpoint that no loader reads (they were ignored)."""
    stray = [shown(name) for name in present if name not in read]
    if not stray:
        return ()
    return (
        f"ignored {len(stray)} stray file(s) transformers does not load: "
        f"{', '.join(stray[:5])}{', ...' if len(stray) > 5 else ''}",
    )


def shard_map(index: Any, where: str) -> dict[str, str]:
    """The tensor-to-file map of a shard index, refusing file names that leave the checkpoint's folder."""
    weight_map = index.get("weight_map") if isinstance(index, Mapping) else None
    if not isinstance(weight_map, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CheckpointError(where, "has no weight_map of tensor names to file names")
    for name in set(weight_map.values()):
        if not name.endswith(".safetensors") or "/" in name or "\\" in name or name.startswith("."):
            raise CheckpointError(
                where, f"weight_map names {name!r}, which is not a .safetensors file beside the index"
            )
    return dict(weight_map)


def _shards(weight_map: Mapping[str, str], folder: Path, where: str) -> tuple[str, ...]:
    shards = tuple(sorted(set(weight_map.values())))
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(where, f"names shard(s) that are not there: {', '.join(missing)}")
    return shards


def _read_start(path: Path, limit: int, transfer: Transfer) -> bytes:
    source = LocalFile.open(path, transfer)
    return source.read(0, min(source.size, limit))


def _read_json(path: Path, transfer: Transfer) -> Any:
    source = LocalFile.open(path, transfer)
    if source.size > MAX_SMALL_FILE_BYTES:
        raise CheckpointError(path, f"is {source.size:,} bytes; a config or shard index is never that large")
    return parse_json(source.read(0, source.size), str(path))


def parse_json(data: bytes, where: str) -> Any:
    """config.json or a shard index, within swindex.limits' bounds (nesting, integer length, size)."""
    try:
        return load_json(data, where)
    except ParseError as exc:
        raise CheckpointError(exc.where, exc.reason) from None


def front_matter(data: bytes) -> dict[str, Any] | None:
    """The YAML front matter of a model card (between the first two '---' lines), or None when it has none
    or none swindex can read safely (the card only helps name the base model)."""
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    if end is None:
        return None
    try:
        matter = load_yaml_text("\n".join(lines[1:end]), "the model card")
    except ParseError:
        return None
    return matter if isinstance(matter, dict) else None
