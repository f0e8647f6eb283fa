"""Which registry lookups read, and why: a directory asked for, the source checkout's registry/, or the
newer of the index packaged in the wheel and the user's cached `swindex update`."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import SwindexError

REGISTRY_ENV = "SWINDEX_REGISTRY"


@dataclass(frozen=True)
class RegistrySource:
    """One registry lookups can read: ``directory`` (asked for), ``checkout``, ``packaged`` or ``cache``."""

    kind: str
    path: Path
    modified: str | None = None
    fetched: str | None = None
    stamp: int = 0  # the file's mtime, so a rewritten index or cache is read again

    def __str__(self) -> str:
        if self.kind == "directory":
            return f"registry directory {self.path}"
        if self.kind == "checkout":
            return f"registry/ of the source checkout {self.path.parent}"
        if self.kind == "cache":
            return f"cached update of {self.modified or 'unknown date'} ({self.path}, fetched {(self.fetched or '?')[:10]})"
        return f"packaged index of {self.modified or 'unknown date'}"


def registry_source(registry: str | os.PathLike[str] | None = None) -> RegistrySource:
    """The registry a lookup with these arguments reads.

    A source checkout always reads its own registry/ (the files being edited); an installed swindex reads
    the newer (by newest entry `modified`) of its packaged index and the cached update, and only the packaged
    index when SWINDEX_OFFLINE is set.
    """
    from .registry import default_registry_dir
    from .update import UpdateError, offline, read_cache

    explicit = registry if registry is not None else os.environ.get(REGISTRY_ENV) or None
    if explicit:
        return RegistrySource("directory", Path(explicit).resolve())
    checkout = default_registry_dir()
    if checkout is not None:
        return RegistrySource("checkout", checkout)
    packaged = packaged_source()
    if offline():
        if packaged is None:
            raise SwindexError("this swindex has no packaged index and SWINDEX_OFFLINE is set; reinstall swindex")
        return packaged
    try:
        cached = read_cache()
    except (UpdateError, RuntimeError) as exc:  # RuntimeError: no home directory to find the cache in
        warnings.warn(f"ignoring the cached update: {exc}", stacklevel=3)
        cached = None
    if cached is not None and (packaged is None or (cached.modified or "") > (packaged.modified or "")):
        return RegistrySource("cache", cached.path, cached.modified, cached.fetched, cached.path.stat().st_mtime_ns)
    if packaged is None:
        raise SwindexError("this swindex has no packaged index (a wheel built without hatch_build.py?): reinstall swindex, or run `swindex update`")
    return packaged


def packaged_source() -> RegistrySource | None:
    """The index generated into the wheel, with its newest entry's date; None where there is none."""
    from .registry import PACKAGED_INDEX

    try:
        stamp = PACKAGED_INDEX.stat().st_mtime_ns
    except OSError:
        return None
    return RegistrySource("packaged", PACKAGED_INDEX, _index_modified(str(PACKAGED_INDEX), stamp), stamp=stamp)


@lru_cache(maxsize=4)
def _index_modified(path: str, stamp: int) -> str | None:  # noqa: ARG001 (the stamp says when to reread)
    from .update import newest_modified

    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(document.get("modified"), str):
        return document["modified"]
    return newest_modified([item["entry"] for item in document.get("entries", [])])


def source_entries(source: RegistrySource) -> list:
    """Every entry of a source, sorted by id. A checkout's files are read as they are (`swindex validate`
    judges them), so a lookup there needs neither jsonschema nor a generated index."""
    from .registry import load_registry, read_index

    if source.kind == "directory":
        return load_registry(source.path)
    if source.kind == "checkout":
        return _checkout_entries(source.path)
    return read_index(source.path)


def _checkout_entries(root: Path) -> list:
    from .records import Entry
    from .validate import entry_files
    from .yamlio import load_yaml

    entries = []
    for path in entry_files(root):
        data = load_yaml(path)
        try:
            entries.append(Entry.from_dict(data, path=path.relative_to(root).as_posix()))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SwindexError(f"{path}: not a readable entry ({type(exc).__name__}: {exc}); `swindex validate` says what to fix") from None
    return sorted(entries, key=lambda e: e.id.casefold())
