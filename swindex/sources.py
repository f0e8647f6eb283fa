"""Which registry lookups read, and why: a directory asked for, the source checkout's registry/, or the
newer of the index packaged in the wheel and the user's cached `swindex update`."""

from __future__ import annotations

import os
import warnings

from . import constants
from ._record import Record
from .constants import REGISTRY_ENV
from .errors import SwindexError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


class RegistrySource(Record):
    """One registry lookups can read: ``directory`` (asked for), ``checkout``, ``packaged`` or ``cache``.

    ``file`` is a string so that a lookup from the packaged index never imports pathlib; ``path`` is the same as a Path.
    """

    kind: str
    file: str
    modified: str | None = None
    fetched: str | None = None
    stamp: int = 0  # the file's mtime, so a rewritten index or cache is read again
    ids: frozenset[str] = frozenset()  # casefolded model ids it holds (packaged index and cache only)

    @property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self.file)

    def __str__(self) -> str:
        if self.kind == "directory":
            return f"registry directory {self.file}"
        if self.kind == "checkout":
            return f"registry/ of the source checkout {os.path.dirname(self.file)}"
        if self.kind == "cache":
            fetched = (self.fetched or "?")[:10]
            return f"cached update of {self.modified or 'unknown date'} ({self.file}, fetched {fetched})"
        return f"packaged index of {self.modified or 'unknown date'}"


def registry_source(registry: str | os.PathLike[str] | None = None) -> RegistrySource:
    """The registry a lookup with these arguments reads.

    A source checkout always reads its own registry/ (the files being edited); an installed swindex reads
    the newer (by newest entry `modified`) of its packaged index and the cached update, and only the packaged
    index when SWINDEX_OFFLINE is set. A cache dated in the future, or missing entries the packaged index has,
    is never chosen (`cache_refused` says why), so no dump can pin lookups to itself or hide entries.
    """
    explicit = registry if registry is not None else os.environ.get(REGISTRY_ENV) or None
    if explicit:
        return RegistrySource("directory", os.path.realpath(explicit))
    checkout = constants.default_registry_dir()
    if checkout is not None:
        return RegistrySource("checkout", os.fspath(checkout))
    packaged = packaged_source()
    if constants.offline():
        if packaged is None:
            raise SwindexError("this swindex has no packaged index and SWINDEX_OFFLINE is set; reinstall swindex")
        return packaged
    try:
        no_cache = not os.path.exists(constants.cache_path())
    except RuntimeError:  # no home directory to find the cache in
        no_cache = True
    if no_cache and packaged is not None:
        return packaged  # the usual case, decided without importing the update machinery
    from .update import UpdateError, read_cache

    try:
        cached = read_cache()
    except (UpdateError, RuntimeError) as exc:  # RuntimeError: no home directory to find the cache in
        warnings.warn(f"ignoring the cached update: {exc}", stacklevel=3)
        cached = None
    newer = cached is not None and (packaged is None or (cached.modified or "") > (packaged.modified or ""))
    if cached is not None and newer and not cache_refused(cached, packaged):
        stamp = cached.path.stat().st_mtime_ns
        return RegistrySource("cache", str(cached.path), cached.modified, cached.fetched, stamp, cached.ids)
    if packaged is None:
        raise SwindexError(
            "this swindex has no packaged index (a wheel built without hatch_build.py?): reinstall swindex, "
            "or run `swindex update`"
        )
    return packaged


def cache_refused(cached: Any, packaged: RegistrySource | None) -> str:
    """Why a cached update may not serve lookups even though it is newer ("" when it may): a date in the
    future would pin it over every later release, and a dump lacking entries would hide them."""
    from .update import latest_date

    if (cached.modified or "") > latest_date():
        return f"the cached update is dated {cached.modified}, in the future"
    missing = sorted(packaged.ids - cached.ids) if packaged is not None else []
    if missing:
        named = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        entries = "entry" if len(missing) == 1 else "entries"
        return f"the cached update lacks {len(missing)} {entries} the packaged index has ({named})"
    return ""


def packaged_source() -> RegistrySource | None:
    """The index generated into the wheel, with its newest entry's date; None where there is none."""
    path = os.fspath(constants.PACKAGED_INDEX)
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return None
    document = _packaged_document(path, stamp)
    ids = frozenset(item["entry"]["id"].casefold() for item in document["entries"])
    return RegistrySource("packaged", path, document.get("modified"), stamp=stamp, ids=ids)


_PACKAGED: dict[tuple[str, int], dict[str, Any]] = {}


def _packaged_document(path: str, stamp: int) -> dict[str, Any]:
    """The packaged index, parsed once per (file, mtime): swindex wrote and validated it when the wheel was built, so
    it is read without the limits an untrusted file gets (the cached update is read through `registry.read_index`)."""
    key = (path, stamp)
    if key not in _PACKAGED:
        import json

        with open(path, "rb") as handle:
            document = json.loads(handle.read())
        _PACKAGED.clear()  # only the newest file is ever asked for again
        _PACKAGED[key] = document
    return _PACKAGED[key]


def source_items(source: RegistrySource) -> list[Any]:
    """Every entry of a source, sorted by id: Entry records from a directory, ``(path, entry dict)`` pairs from an
    index (records are built when a lookup asks for them)."""
    if source.kind == "directory":
        from .registry import load_registry

        return load_registry(source.file)
    if source.kind == "checkout":
        return _checkout_entries(source.path)
    if source.kind == "packaged":
        document = _packaged_document(source.file, source.stamp)
    else:
        from .registry import read_index_document

        document = read_index_document(source.file)
    return [(item.get("path"), _current(item["entry"])) for item in document["entries"]]


def _current(entry: dict[str, Any]) -> dict[str, Any]:
    """An indexed entry in today's schema: a cache written by an older swindex is upgraded, not refused."""
    if entry.get("schema_version", constants.ENTRY_SCHEMA_VERSION) == constants.ENTRY_SCHEMA_VERSION:
        return entry
    from .migrate import upgrade

    return upgrade(entry)


def source_entries(source: RegistrySource) -> list:
    """Every entry of a source as records, sorted by id."""
    from .records import Entry

    return [
        item if isinstance(item, Entry) else Entry.from_dict(item[1], path=item[0]) for item in source_items(source)
    ]


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
            raise SwindexError(
                f"{path}: not a readable entry ({type(exc).__name__}: {exc}); `swindex validate` says what to fix"
            ) from None
    return sorted(entries, key=lambda e: e.id.casefold())
