"""Reading a registry directory into entries,
and building the prebuilt index the wheel ships (hatch_build.py; never committed)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .constants import INDEX_FORMAT, PACKAGED_INDEX, default_registry_dir  # noqa: F401 (the last two re-exported)
from .errors import SwindexError, ValidationError, shown
from .records import SCHEMA_VERSION, Entry
from .validate import entry_files, validate_registry
from .yamlio import load_yaml


def load_registry(root: str | Path, validate: bool = True) -> list[Entry]:
    """All entries of a registry directory, sorted by id; raises ValidationError listing every problem."""
    root = Path(root)
    if validate:
        problems = validate_registry(root)
        if problems:
            raise ValidationError(problems)
    entries = [Entry.from_dict(load_yaml(path), path=path.relative_to(root).as_posix()) for path in entry_files(root)]
    return sorted(entries, key=lambda e: e.id.casefold())


def index_document(entries: list[Entry]) -> dict[str, Any]:
    """The prebuilt index: every entry in registry field names plus the file it came from.

    It carries no generation time, so that rebuilding an unchanged registry gives the same bytes; its
    newest entry's `modified` dates it against a cached `swindex update`.
    """
    return {
        "index_format": INDEX_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "modified": max((e.modified for e in entries), default=None),
        "entries": [{"path": e.path, "entry": e.to_dict()} for e in entries],
    }


def write_atomic(path: str | Path, text: str, mark: str = "") -> None:
    """Write a file so that readers see the old or the new content, never a partial one.

    The text goes to a hidden temporary file in the same directory (``.NAME<mark>*.tmp``), which is
    fsynced and renamed over the target; the directory is fsynced so the rename survives a power cut.
    """
    path = Path(path)
    if path.is_dir():
        raise SwindexError(f"{path} is a directory; give a file name to write")
    if path.parent.exists() and not path.parent.is_dir():
        raise SwindexError(f"{path}: {path.parent} is not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{mark or '.'}", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if os.name == "posix":
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def render_index(root: str | Path) -> str:
    """The index file's text for a registry directory (validated first)."""
    return (
        json.dumps(index_document(load_registry(root)), ensure_ascii=False, separators=(",", ":"), sort_keys=False)
        + "\n"
    )


def build_index(root: str | Path, out: str | Path = PACKAGED_INDEX) -> Path:
    """Validate a registry and write its index (by default the one shipped inside the package)."""
    write_atomic(out, render_index(root))
    return Path(out)


def read_index_document(path: str | Path) -> dict[str, Any]:
    """A prebuilt index or cached update parsed within swindex.limits (the cache is a file in the user's cache);
    SwindexError when it is not an index in the format this swindex writes."""
    from .limits import ParseError, load_json

    try:
        document = load_json(Path(path).read_bytes(), str(path))
    except (OSError, ParseError) as exc:
        raise SwindexError(
            f"{shown(str(path))}: not a readable index ({exc}); rebuild it with `swindex index` or run `swindex update`"
        ) from None
    if (
        not isinstance(document, dict)
        or document.get("index_format") != INDEX_FORMAT
        or not isinstance(document.get("entries"), list)
    ):
        found = document.get("index_format") if isinstance(document, dict) else None
        raise SwindexError(
            f"{shown(str(path))}: index format {found!r}, this swindex reads {INDEX_FORMAT}; rebuild it with "
            "`swindex index` or run `swindex update`"
        )
    return document


def read_index(path: str | Path = PACKAGED_INDEX) -> list[Entry]:
    """Entries from a prebuilt index (validated when it was built), entries of older schemas upgraded."""
    from .sources import RegistrySource, source_entries

    return source_entries(RegistrySource("index", os.fspath(path)))
