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
from .layout import format_coordinate
from .validate import Problem, entry_files, expected_id
from .yamlio import load_yaml

_WATCHED = ("status", "impact", "value", "sources", "row", "column", "layer", "expert")


@dataclass(frozen=True)
class ClaimChanges:
    """What changed between two registries: removals (problems) and edits of kept claims (for review)."""

    problems: tuple[Problem, ...]
    changes: tuple[str, ...]


def _claims(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Claims by coordinate, an older schema's entry read as the current schema first
    (so a migration loses nothing unseen)."""
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
            problems.append(
                Problem(
                    str(Path(after) / f"{model_id}.yaml"),
                    "",
                    f"the entry for {model_id} was removed; entries are never deleted",
                )
            )
            continue
        new_path, new_entry = new[model_id]
        kept = _claims(new_entry)
        for coordinate, claim in _claims(old_entry).items():
            if coordinate not in kept:
                problems.append(
                    Problem(
                        str(new_path),
                        "claims",
                        f"claim {coordinate} (status {claim.get('status')}) was removed; a published claim is never "
                        "deleted: keep it with status withdrawn or disputed and say why in its notes "
                        "or the disagreements",
                    )
                )
                continue
            for change in claim_changes(claim, kept[coordinate]):
                changes.append(f"{model_id}: {coordinate}: {change}")
    return ClaimChanges(tuple(problems), tuple(changes))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """``name old -> new`` for each field that differs, in the order the fields were written."""
    names = [*before, *(k for k in after if k not in before)]
    return [
        f"{name} {_short(before.get(name))} -> {_short(after.get(name))}"
        for name in names
        if before.get(name) != after.get(name)
    ]


def _by_citation(sources: Any) -> dict[tuple[Any, int], Mapping[str, Any]]:
    """Sources keyed by citation (and which of that citation's sources it is, should one be cited twice)."""
    keyed: dict[tuple[Any, int], Mapping[str, Any]] = {}
    seen: dict[Any, int] = {}
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, Mapping):
            citation = source.get("citation")
            seen[citation] = seen.get(citation, -1) + 1
            keyed[(citation, seen[citation])] = source
    return keyed


def _source_changes(before: Any, after: Any) -> list[str]:
    old, new = _by_citation(before), _by_citation(after)
    changes = [f"source removed: {_short(key[0])}" for key in old if key not in new]
    changes += [f"source added: {_short(key[0])}" for key in new if key not in old]
    for key in (k for k in old if k in new and old[k] != new[k]):
        changes.append(f"source {_short(key[0])} edited: {'; '.join(_field_changes(old[key], new[key]))}")
    if not changes and before != after:
        changes.append("sources reordered")
    return changes


def claim_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What a reviewer needs to know about one claim's edit: each changed field, each source added,
    removed or edited (by citation, with the fields that changed) and each changed figure of its impact."""
    changes: list[str] = []
    for name in _WATCHED:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name == "sources":
            changes.extend(_source_changes(old, new))
        elif name == "impact" and isinstance(old, Mapping) and isinstance(new, Mapping):
            changes.extend(f"impact {change}" for change in _field_changes(old, new))
        else:
            changes.append(f"{name} {_short(old)} -> {_short(new)}")
    return changes
