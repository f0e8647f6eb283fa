"""`swindex update`: the site's full registry dump, kept in the user's cache so entries reach users without a release.

The dump is validated entry by entry before it replaces the cache, and written atomically, so a bad
download never leaves a corrupt or half-written cache behind. Its ETag is kept and sent back next time,
so an unchanged registry costs one 304. Only the standard library fetches (``import swindex`` stays light).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import SwindexError, ValidationError
from .records import SCHEMA_VERSION

SITE_URL = "https://swindex.github.io/swindex/"
SITE_URL_ENV = "SWINDEX_SITE_URL"
CACHE_DIR_ENV = "SWINDEX_CACHE_DIR"
OFFLINE_ENV = "SWINDEX_OFFLINE"
CACHE_FILE = "registry.json"
DUMP_NAME = "all.json"
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
TIMEOUT_S = 30.0


class UpdateError(SwindexError):
    """The dump could not be fetched or read; the cache, if any, is untouched."""


@dataclass(frozen=True)
class CachedRegistry:
    """What `swindex update` stored: where, from which URL, when, and how new its newest entry is."""

    path: Path
    url: str
    fetched: str
    modified: str | None
    generated: str | None = None
    etag: str | None = None
    count: int = 0


@dataclass(frozen=True)
class UpdateResult:
    """The outcome of one `swindex update`: ``updated``, ``unchanged`` (304 or same content) or ``offline``."""

    status: str
    url: str
    cache: CachedRegistry | None


def offline() -> bool:
    """Whether SWINDEX_OFFLINE asks swindex never to fetch (any value but empty, 0, false, no)."""
    return os.environ.get(OFFLINE_ENV, "").strip().casefold() not in ("", "0", "false", "no")


def cache_dir() -> Path:
    """SWINDEX_CACHE_DIR, else $XDG_CACHE_HOME/swindex, else ~/.cache/swindex."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "swindex"


def cache_file() -> Path:
    return cache_dir() / CACHE_FILE


def dump_url(site: str | None = None) -> str:
    """The full dump's URL under the site (SWINDEX_SITE_URL, else the project's site); https, or http to this machine."""
    from .sitegen.urls import API_ROOT

    base = (site or os.environ.get(SITE_URL_ENV) or SITE_URL).strip()
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UpdateError(f"site URL {base!r} is not an https:// URL; set {SITE_URL_ENV} to the site's address")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise UpdateError(f"site URL {base!r} uses plain http; use https:// (http is accepted only for this machine)")
    return urljoin(base.rstrip("/") + "/", f"{API_ROOT}/{DUMP_NAME}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UpdateError(f"{where}: not valid JSON ({exc})") from None


def newest_modified(entries: list[Mapping[str, Any]]) -> str | None:
    """The latest `modified` date among entries (dates are YYYY-MM-DD, so text order is date order)."""
    dates = [e["modified"] for e in entries if isinstance(e.get("modified"), str)]
    return max(dates) if dates else None


def checked_entries(document: Any, where: str) -> list[dict[str, Any]]:
    """The dump's ``{path, entry}`` items, each entry valid and filed under its own id; ValidationError otherwise."""
    from .sitegen.api import stored_entry
    from .validate import Problem, cross_file_problems, validate_entry_dict

    if not isinstance(document, Mapping) or not isinstance(document.get("entries"), list):
        raise UpdateError(f"{where}: not a registry dump (an object with an `entries` list)")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        advice = "upgrade swindex (pip install -U swindex)" if isinstance(version, int) and version > SCHEMA_VERSION else "the site is older than this swindex"
        raise UpdateError(f"{where}: the site serves schema version {version!r}, this swindex reads version {SCHEMA_VERSION}; {advice}")
    if not document["entries"]:
        raise UpdateError(f"{where}: the dump holds no entries")
    problems: list[Any] = []
    items: list[dict[str, Any]] = []
    loaded: list[tuple[Path, Mapping[str, Any]]] = []
    for i, item in enumerate(document["entries"]):
        label = f"{where} entries[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("entry"), Mapping):
            problems.append(Problem(label, "", "not a {path, entry} item"))
            continue
        entry = stored_entry(item["entry"])  # the API adds super_weights and verdict.text; the cache keeps the registry's fields
        model_id = entry.get("id")
        if isinstance(model_id, str):
            label = f"{label} ({model_id})"
        found = validate_entry_dict(entry, label)
        problems.extend(found)
        path = item.get("path")
        if not found and path not in (f"registry/{model_id}.yaml", f"{model_id}.yaml"):
            problems.append(Problem(label, "path", f"{path!r} is not where the entry {model_id!r} is filed (registry/{model_id}.yaml)"))
            continue
        if not found:
            items.append({"path": f"{model_id}.yaml", "entry": dict(entry)})
            loaded.append((Path(label), entry))
    problems.extend(cross_file_problems(loaded))
    if problems:
        raise ValidationError(problems)
    return items


def _cache_document(items: list[dict[str, Any]], url: str, etag: str | None, generated: Any) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "modified": newest_modified([item["entry"] for item in items]),
        "update": {
            "url": url,
            "etag": etag,
            "fetched": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generated": generated if isinstance(generated, str) else None,
        },
        "entries": items,
    }


def _record(path: Path, document: Mapping[str, Any]) -> CachedRegistry:
    update = document.get("update")
    if document.get("schema_version") != SCHEMA_VERSION or not isinstance(update, Mapping) or not isinstance(document.get("entries"), list):
        raise UpdateError(f"{path}: not a cache this swindex wrote (schema version {document.get('schema_version')!r}); run `swindex update` again")
    return CachedRegistry(
        path=path,
        url=str(update.get("url")),
        fetched=str(update.get("fetched")),
        modified=document.get("modified"),
        generated=update.get("generated"),
        etag=update.get("etag"),
        count=len(document["entries"]),
    )


def read_cache(path: str | Path | None = None) -> CachedRegistry | None:
    """The cached update's record, None when there is none; UpdateError when the file is unreadable."""
    path = Path(path) if path is not None else cache_file()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UpdateError(f"{path}: cannot read the cached update ({exc.strerror or exc})") from None
    return _read_cache(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _read_cache(path: str, mtime_ns: int, size: int) -> CachedRegistry:  # noqa: ARG001 (the key says when to reread)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UpdateError(f"{path}: cannot read the cached update ({exc.strerror or exc})") from None
    document = _parse_json(raw, path)
    if not isinstance(document, Mapping):
        raise UpdateError(f"{path}: not a cache this swindex wrote; run `swindex update` again")
    return _record(Path(path), document)


def _fetch(url: str, etag: str | None, timeout: float) -> tuple[int, bytes, str | None]:
    """(status, body, etag); 304 gives an empty body. Network failures become UpdateError."""
    import urllib.error
    import urllib.request

    from .version import version

    headers = {"Accept": "application/json", "User-Agent": f"swindex/{version()}"}
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (the scheme was checked)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the scheme was checked)
            body = response.read(MAX_DOWNLOAD_BYTES + 1)
            if len(body) > MAX_DOWNLOAD_BYTES:
                raise UpdateError(f"{url}: the dump is over {MAX_DOWNLOAD_BYTES} bytes; refusing it")
            return response.status, body, response.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return 304, b"", exc.headers.get("ETag") or etag
        raise UpdateError(f"{url}: the site answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UpdateError(f"{url}: cannot reach the site ({reason})") from None


def update(*, site: str | None = None, cache: str | Path | None = None, timeout: float = TIMEOUT_S) -> UpdateResult:
    """Fetch the site's dump into the cache when it changed; an invalid or failed download keeps the old cache."""
    from .registry import write_atomic

    url = dump_url(site)
    path = Path(cache) if cache is not None else cache_file()
    if offline():
        return UpdateResult("offline", url, _current(path))
    current = _current(path)
    etag = current.etag if current is not None and current.url == url else None
    status, body, new_etag = _fetch(url, etag, timeout)
    if status == 304:
        return UpdateResult("unchanged", url, current)
    document = _parse_json(body, url)
    items = checked_entries(document, url)
    same = current is not None and current.url == url and _same_entries(path, items)
    fresh = _cache_document(items, url, new_etag, document.get("generated"))
    write_atomic(path, json.dumps(fresh, ensure_ascii=False, separators=(",", ":")) + "\n", mark=".update")
    return UpdateResult("unchanged" if same else "updated", url, read_cache(path))


def _current(path: Path) -> CachedRegistry | None:
    """The existing cache, or None when there is none or it is unreadable (an update then replaces it)."""
    try:
        return read_cache(path)
    except UpdateError:
        return None


def _same_entries(path: Path, items: list[dict[str, Any]]) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("entries") == items
    except (OSError, ValueError):
        return False
