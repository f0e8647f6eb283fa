"""Reading the Hugging Face Hub cache: which model and commit a cache path holds, and which commit is cached.

Why one module: loading (to record the commit measured), lookup (to find a model from a path), detection and the
builder all read ``models--ORG--NAME/snapshots/SHA`` paths; one pattern, written once, reads them all, on any
platform's separators. Light: standard library only, so `swindex.lookup` can use it.
"""

from __future__ import annotations

import os
import re

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
"""A full commit sha, what the registry's revision fields hold (never a branch or tag)."""

CACHE_PATH = re.compile(
    r"(?:^|[/\\])models--(?:(?P<org>[^/\\]+?)--)?(?P<name>[^/\\]+?)"
    r"(?:[/\\]snapshots[/\\](?P<sha>[0-9a-f]{40})(?=[/\\]|$))?(?=[/\\]|$)"
)
"""A Hub cache folder in a path: ``models--ORG--NAME`` (``models--NAME`` for an id without an organisation),
optionally followed by ``snapshots/SHA``; ``/`` or ``\\`` separates."""


def is_commit_sha(text: str | None) -> bool:
    """Whether text is a full commit sha (what the registry's revision fields hold), not a branch or tag."""
    return bool(text and COMMIT_SHA.match(text))


def parse_cache_path(path: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """(model id, commit sha) a Hub cache path names, each None when the path does not say it.

    The path is read as written (never resolved): a model folder names the id, a snapshot folder the commit too.
    """
    match = CACHE_PATH.search(os.fspath(path))
    if not match:
        return None, None
    model_id = f"{match['org']}/{match['name']}" if match["org"] else match["name"]
    return model_id, match["sha"]


def parse_snapshot(path: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """(model id, commit sha) when a local path lies inside a Hub cache snapshot (links resolved), else (None, None)."""
    from pathlib import Path

    model_id, sha = parse_cache_path(Path(path).expanduser().resolve())
    return (model_id, sha) if sha is not None else (None, None)


def cached_sha(model_id: str, revision: str | None) -> str | None:
    """The commit the local Hub cache holds for a model id (at ``revision``, a branch or tag), with no network call."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - dependency of transformers
        return None
    try:
        found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - a malformed id or cache simply means "unknown"
        return None
    if isinstance(found, str):
        return parse_snapshot(found)[1]
    return None
