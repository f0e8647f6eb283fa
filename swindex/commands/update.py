"""`swindex update`: fetch the site's registry into the user's cache, so lookups see entries newer than the wheel."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "update",
        help="fetch the latest registry from the site into your cache",
        description="Fetch the site's full registry dump, validate every entry, and keep it in the cache directory "
        "($SWINDEX_CACHE_DIR, else $XDG_CACHE_HOME/swindex or ~/.cache/swindex). Lookups then use the newer of it and "
        "the index packaged with swindex. SWINDEX_OFFLINE=1 turns fetching off.",
    )
    p.add_argument(
        "--site", metavar="URL", help="the site's address (default: $SWINDEX_SITE_URL, else the project's site)"
    )
    p.add_argument("--clear", action="store_true", help="delete the cached update, so lookups read the packaged index")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ValidationError, shown_lines
    from .._lookup import clear_cache
    from ..sources import registry_source
    from ..update import UpdateError, update

    if args.clear:
        return _clear()
    try:
        result = update(site=args.site)
    except UpdateError as exc:
        source = registry_source()
        print(f"swindex update: error: {shown_lines(str(exc))}; lookups keep using the {source}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        kept = f"the dump was refused, the cache is unchanged and lookups keep using the {registry_source()}"
        print(f"swindex update: error: {kept}; {shown_lines(str(exc))}", file=sys.stderr)
        return 1
    clear_cache()
    source = registry_source()
    if result.status == "offline":
        print(
            f"swindex update: SWINDEX_OFFLINE is set, so {result.url} was not fetched; lookups use the {source}",
            file=sys.stderr,
        )
        return 0
    cache = result.cache
    if result.status == "unchanged":
        print(f"swindex update: up to date with {result.url}", file=sys.stderr)
    elif cache is not None:
        print(
            f"swindex update: {cache.count} entries (newest {cache.modified}) from {result.url} saved in {cache.path}",
            file=sys.stderr,
        )
    print(f"swindex update: lookups use the {source}" + _why(source.kind), file=sys.stderr)
    return 0


def _clear() -> int:
    from .._lookup import clear_cache
    from ..sources import registry_source
    from ..update import clear

    removed = clear()
    clear_cache()
    said = f"deleted {removed}" if removed is not None else "there was no cached update"
    print(f"swindex update: {said}; lookups use the {registry_source()}", file=sys.stderr)
    return 0


def _why(kind: str) -> str:
    if kind == "checkout":
        return " (a source checkout reads its own files; the cache serves installed copies)"
    if kind == "packaged":
        return _packaged_why()
    if kind == "directory":
        return " (SWINDEX_REGISTRY names it)"
    return ""


def _packaged_why() -> str:
    from ..sources import cache_refused, packaged_source
    from ..update import UpdateError, read_cache

    try:
        cached = read_cache()
    except UpdateError:
        return ""
    refused = cache_refused(cached, packaged_source()) if cached is not None else ""
    return f" ({refused})" if refused else " (it is as new as the cached update or newer)"
