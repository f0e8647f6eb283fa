"""Comparing a registry with an earlier one, so that no published claim disappears or changes unseen.

A pull request may correct a claim (a new status, another source), but a coordinate is never deleted:
a wrong one is marked ``withdrawn`` or ``disputed`` with its reasons, so anyone who relied on it can
see what happened. Removals are problems; every other change to a claim is listed for the reviewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RegistryFileError
from .migrate import upgrade
from .records import format_coordinate
from .validate import Problem, entry_files, expected_id
from .yamlio import load_yaml

_WATCHED = ("status", "impact", "value", "sources", "row", "column", "layer", "expert")


@dataclass(frozen=True)
class ClaimChanges:
    """What changed between two registries: removals (problems) and edits of kept claims (for review)."""

    problems: tuple[Problem, ...]
    changes: tuple[str, ...]


def _claims(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Claims by coordinate, an older schema's entry read as the current schema first (so a migration loses nothing unseen)."""
    if entry.get("schema_version") == 1 and isinstance(entry.get("super_weights"), list):
        entry = upgrade(entry)
    result = {}
    for claim in entry.get("claims") or []:
        if isinstance(claim, Mapping) and isinstance(claim.get("tensor"), str) and isinstance(claim.get("index"), list):
            result[format_coordinate(claim["tensor"], claim["index"])] = claim
    return result


def _entries(root: Path) -> dict[str, tuple[Path, Mapping[str, Any]]]:
    found = {}
    for path in entry_files(root):
        try:
            data = load_yaml(path)
        except RegistryFileError:  # an unreadable file is the validator's to report
            continue
        if isinstance(data, Mapping):
            found[expected_id(path, root) or path.stem] = (path, data)
    return found


def compare_registries(before: str | Path, after: str | Path) -> ClaimChanges:
    """Every claim of ``before`` must still be in ``after``; edits of kept claims are described."""
    old, new = _entries(Path(before)), _entries(Path(after))
    problems: list[Problem] = []
    changes: list[str] = []
    for model_id, (old_path, old_entry) in sorted(old.items()):
        if model_id not in new:
            problems.append(Problem(str(Path(after) / f"{model_id}.yaml"), "", f"the entry for {model_id} was removed; entries are never deleted"))
            continue
        new_path, new_entry = new[model_id]
        kept = _claims(new_entry)
        for coordinate, claim in _claims(old_entry).items():
            if coordinate not in kept:
                problems.append(
                    Problem(
                        str(new_path), "claims",
                        f"claim {coordinate} (status {claim.get('status')}) was removed; a published claim is never deleted: "
                        "keep it with status withdrawn or disputed and say why in its notes or the disagreements",
                    )
                )
                continue
            edited = [name for name in _WATCHED if claim.get(name) != kept[coordinate].get(name)]
            for name in edited:
                before_value, after_value = claim.get(name), kept[coordinate].get(name)
                if name == "sources":
                    change = f"sources {len(before_value or [])} -> {len(after_value or [])} (or their text)"
                else:
                    change = f"{name} {before_value!r} -> {after_value!r}"
                changes.append(f"{model_id}: {coordinate}: {change}")
    return ClaimChanges(tuple(problems), tuple(changes))
