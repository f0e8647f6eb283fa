"""Resuming: the registry entry itself records which swindex run produced it, so no side file can go stale.

A model counts as done when its entry's ``evidence.detection`` was written by the same swindex tool
(name and version) with the same thresholds at the same model revision and, when verification is asked for and the entry
has standing claims, carries ``evidence.verification`` as well. A rerun skips such models unless
``--force``; a run killed half-way therefore redoes only the models whose entries were not yet
replaced, and ends with the same files as an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swindex.errors import RegistryFileError
from swindex.claims import has_standing_claim
from swindex.yamlio import load_yaml


def read_entry(path: str | Path) -> dict[str, Any] | None:
    """The existing entry at path, or None when there is no file; unreadable files raise RegistryFileError."""
    path = Path(path)
    if not path.exists():
        return None
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise RegistryFileError(
            path, "an entry must be a mapping of fields; fix or delete the file, or rerun with --force"
        )
    return dict(data)


def read_header(path: str | Path) -> str:
    """The comment lines at the top of an existing file (e.g. the editor's schema pointer), kept on rewrite."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return ""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def done_reason(
    entry: Mapping[str, Any] | None,
    tool: str,
    revision: str | None,
    verify: bool,
    thresholds: Mapping[str, float] | None = None,
) -> str | None:
    """Why the model needs no new run (a message for the summary), or None when it must run."""
    if not entry:
        return None
    evidence = entry.get("evidence") or {}
    run = evidence.get("detection") or {}
    if run.get("tool") != tool:
        return None
    if thresholds is not None and dict(run.get("thresholds") or {}) != dict(thresholds):
        return None
    if (run.get("revision") or None) != (revision or None):
        return None
    if verify and has_standing_claim(entry) and not evidence.get("verification"):
        return None
    at = f"revision {revision[:12]}" if revision else "the same local files"
    return f"already done by {tool} at {at} on {run.get('date', '?')} (use --force to redo)"
