"""`swindex update`: the site's full registry dump, kept in the user's cache so entries reach users without a release.

The dump is validated entry by entry before it replaces the cache, and written atomically, so a bad
download never leaves a corrupt or half-written cache behind. Its ETag is kept with the site's URL and sent
back only to that site, so an unchanged registry costs one 304. The download has a whole deadline and a
size cap, and every redirect hop is checked (``swindex.limits``). Only the standard library fetches
(``import swindex`` stays light).
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from . import limits
from .errors import SwindexError, ValidationError, shown
from .constants import (  # noqa: F401 (the environment names and cache paths are re-exported: their home is constants)
    CACHE_DIR_ENV,
    CACHE_FILE,
    INDEX_FORMAT,
    OFFLINE_ENV,
    SITE_URL_ENV,
    cache_dir,
    cache_file,
    offline,
)
from .records import SCHEMA_VERSION

SITE_URL = "https://swindex.github.io/swindex/"
DUMP_NAME = "all.json"
FUTURE_SLACK_DAYS = 1
"""An entry may be dated this many days after today (the site's clock may be in another time zone); later is refused."""


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
    ids: frozenset[str] = frozenset()  # the model ids it holds, casefolded: what it covers


@dataclass(frozen=True)
class UpdateResult:
    """The outcome of one `swindex update`: ``updated``, ``unchanged`` (304 or same content) or ``offline``."""

    status: str
    url: str
    cache: CachedRegistry | None


def dump_url(site: str | None = None) -> str:
    """The full dump's URL under the site (SWINDEX_SITE_URL, else the project's site);
    https, or http to this machine."""
    from .sitegen.urls import API_ROOT

    base = (site or os.environ.get(SITE_URL_ENV) or SITE_URL).strip()
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UpdateError(f"site URL {base!r} is not an https:// URL; set {SITE_URL_ENV} to the site's address")
    if not limits.allowed_url(base):
        raise UpdateError(f"site URL {base!r} uses plain http; use https:// (http is accepted only for this machine)")
    return urljoin(base.rstrip("/") + "/", f"{API_ROOT}/{DUMP_NAME}")


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        return limits.load_json(raw, where, unique_keys=True)
    except limits.ParseError as exc:
        raise UpdateError(f"{shown(where)}: not valid JSON ({exc.reason})") from None


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
        advice = (
            "upgrade swindex (pip install -U swindex)"
            if isinstance(version, int) and version > SCHEMA_VERSION
            else "the site is older than this swindex"
        )
        raise UpdateError(
            f"{where}: the site serves schema version {version!r}, this swindex reads version "
            f"{SCHEMA_VERSION}; {advice}"
        )
    if not document["entries"]:
        raise UpdateError(f"{where}: the dump holds no entries")
    if len(document["entries"]) > limits.MAX_DUMP_ENTRIES:
        count = len(document["entries"])
        raise UpdateError(f"{where}: the dump holds {count:,} entries, over the {limits.MAX_DUMP_ENTRIES:,} accepted")
    latest = latest_date()
    problems: list[Any] = []
    items: list[dict[str, Any]] = []
    loaded: list[tuple[Path, Mapping[str, Any]]] = []
    for i, item in enumerate(document["entries"]):
        if len(problems) >= limits.MAX_PROBLEMS:  # enough to act on; the rest are counted, not kept
            rest = len(document["entries"]) - i
            problems.append(Problem(where, "", f"and {rest:,} more entries not checked after {len(problems)} problems"))
            raise ValidationError(problems)
        label = f"{where} entries[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("entry"), Mapping):
            problems.append(Problem(label, "", "not a {path, entry} item"))
            continue
        entry = stored_entry(
            item["entry"]
        )  # the API adds super_weights and verdict.text; the cache keeps the registry's fields
        model_id = entry.get("id")
        if isinstance(model_id, str):
            label = f"{label} ({model_id})"
        found = validate_entry_dict(entry, label)
        if not found and isinstance(entry.get("modified"), str) and entry["modified"] > latest:
            ahead = f"{entry['modified']} is in the future (after {latest}); a dump never dates an entry ahead"
            found = [Problem(label, "modified", ahead)]
        problems.extend(found[: limits.MAX_PROBLEMS])
        path = item.get("path")
        if not found and path not in (f"registry/{model_id}.yaml", f"{model_id}.yaml"):
            problems.append(
                Problem(
                    label, "path", f"{path!r} is not where the entry {model_id!r} is filed (registry/{model_id}.yaml)"
                )
            )
            continue
        if not found:
            items.append({"path": f"{model_id}.yaml", "entry": dict(entry)})
            loaded.append((Path(label), entry))
    problems.extend(cross_file_problems(loaded))
    if problems:
        raise ValidationError(problems)
    return items


def latest_date() -> str:
    """The latest `modified` an entry may carry: today (``swindex.dates``, so SWINDEX_TODAY pins it) plus the slack."""
    from .dates import today

    return (_dt.date.fromisoformat(today()) + _dt.timedelta(days=FUTURE_SLACK_DAYS)).isoformat()


def _cache_document(items: list[dict[str, Any]], url: str, etag: str | None, generated: Any) -> dict[str, Any]:
    return {
        "index_format": INDEX_FORMAT,
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
    if (
        document.get("index_format") != INDEX_FORMAT
        or not isinstance(update, Mapping)
        or not isinstance(document.get("entries"), list)
    ):
        raise UpdateError(
            f"{path}: not a cache this swindex reads (index format {document.get('index_format')!r}); run "
            "`swindex update` again"
        )
    return CachedRegistry(
        path=path,
        url=str(update.get("url")),
        fetched=str(update.get("fetched")),
        modified=document.get("modified"),
        generated=update.get("generated"),
        etag=update.get("etag"),
        count=len(document["entries"]),
        ids=entry_ids(document["entries"]),
    )


def entry_ids(items: Any) -> frozenset[str]:
    """The casefolded model ids of an index's or a dump's ``{path, entry}`` items."""
    return frozenset(
        item["entry"]["id"].casefold()
        for item in items
        if isinstance(item, Mapping)
        and isinstance(item.get("entry"), Mapping)
        and isinstance(item["entry"].get("id"), str)
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


def _fetch(url: str, etag: str | None, deadline_s: float) -> tuple[int, bytes, str | None]:
    """(status, body, etag); 304 gives an empty body. Network failures, a slow or oversized reply and a redirect
    that leaves https (or this machine) become UpdateError."""
    import urllib.error
    import urllib.request

    from .version import version

    headers = {"Accept": "application/json", "User-Agent": f"swindex/{version()}"}
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (the scheme was checked)
    deadline = time.monotonic() + deadline_s
    opener = urllib.request.build_opener(_redirect_handler())
    try:
        with opener.open(request, timeout=deadline_s) as response:
            body = _read_within(response, url, deadline, deadline_s)
            return response.status, body, response.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return 304, b"", exc.headers.get("ETag") or etag
        raise UpdateError(f"{shown(url)}: the site answered HTTP {exc.code} {shown(str(exc.reason))}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:  # IncompleteRead: cut short
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, UpdateError):
            raise reason from None
        raise UpdateError(f"{shown(url)}: cannot reach the site ({shown(str(reason))})") from None


def _read_within(response: Any, url: str, deadline: float, deadline_s: float) -> bytes:
    """The reply's body, a piece at a time, refused past MAX_DUMP_BYTES; the connection is cut at the deadline."""
    late = UpdateError(f"{shown(url)}: the site took over {deadline_s:g} s to send the dump; try again later")
    chunks, received = [], 0
    try:
        with limits.cut_off_at(deadline, response.fileno()):
            while chunk := response.read1(1 << 16):
                received += len(chunk)
                if received > limits.MAX_DUMP_BYTES:
                    raise UpdateError(f"{shown(url)}: the dump is over {limits.MAX_DUMP_BYTES:,} bytes; refusing it")
                if time.monotonic() > deadline:
                    raise late
                chunks.append(chunk)
    except (OSError, http.client.HTTPException):
        if time.monotonic() > deadline:
            raise late from None
        raise
    if time.monotonic() > deadline:  # the cut can also look like the end of the reply
        raise late
    return b"".join(chunks)


def _redirect_handler() -> type:
    import urllib.request

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        """Follows a redirect only to https, or to plain http on this machine (a hop may not downgrade the fetch)."""

        max_redirections = limits.MAX_REDIRECTS

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            if not limits.allowed_url(newurl, req.full_url):
                raise UpdateError(
                    f"{shown(req.full_url)}: the site redirected to {shown(newurl)}; "
                    "update follows https only (or http on this machine)"
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return CheckedRedirects


def update(*, site: str | None = None, cache: str | Path | None = None, timeout: float | None = None) -> UpdateResult:
    """Fetch the site's dump into the cache when it changed; an invalid or failed download keeps the old cache.

    ``timeout`` is the whole download's deadline (default ``limits.UPDATE_DEADLINE_S``)."""
    from .registry import write_atomic

    url = dump_url(site)
    path = Path(cache) if cache is not None else cache_file()
    if offline():
        return UpdateResult("offline", url, _current(path))
    current = _current(path)
    etag = current.etag if current is not None and current.url == url else None  # an ETag is its own site's
    status, body, new_etag = _fetch(url, etag, limits.UPDATE_DEADLINE_S if timeout is None else timeout)
    if status == 304:
        if etag is None:  # "not modified" since nothing: no cache of this site's dump to keep
            raise UpdateError(
                f"{shown(url)}: the site answered 304 Not Modified to a request naming no cached copy; "
                "nothing was fetched"
            )
        return UpdateResult("unchanged", url, current)
    document = _parse_json(body, url)
    items = checked_entries(document, url)
    same = current is not None and current.url == url and _same_entries(path, items)
    fresh = _cache_document(items, url, new_etag, document.get("generated"))
    write_atomic(path, json.dumps(fresh, ensure_ascii=False, separators=(",", ":")) + "\n", mark=".update")
    return UpdateResult("unchanged" if same else "updated", url, read_cache(path))


def clear(cache: str | Path | None = None) -> Path | None:
    """Delete the cached update (lookups then read the packaged index); the path deleted, or None if there was none."""
    path = Path(cache) if cache is not None else cache_file()
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UpdateError(f"{shown(str(path))}: cannot delete the cached update ({exc.strerror or exc})") from None
    _read_cache.cache_clear()
    return path


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
