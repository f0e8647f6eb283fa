"""Derived models of a registry model (fine-tunes, merges, quantizations): did they keep its super weights?

Each derived model listed under an item is read with `swindex check` (headers and a few bytes, never the
model) against the entry just built, and recorded in ``evidence.derived_checks``: its id, the revision
checked, the date, the verdict and how many of the weights to keep it kept. The records replace the
previous run's, so they always describe the list as it stands.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from swindex.errors import SwindexError

from .modellist import DerivedModel


def check_checkpoint(location: str, entry: Mapping[str, Any]) -> Any:
    """`swindex check` of one checkpoint (a local path or ORG/NAME[@REVISION]) against an entry dict."""
    from swindex.checkpoint import check

    return check(location, entry=entry)


def derived_record(derived: DerivedModel, entry: Mapping[str, Any], check: Callable[[str, Mapping[str, Any]], Any], today: str) -> dict[str, Any]:
    """The evidence record of one derived model: ``verdict`` unknown (with a warning saying why) when it cannot be read."""
    location = derived.path or (f"{derived.id}@{derived.revision}" if derived.revision else derived.id)
    try:
        report = check(location, entry)
    except SwindexError as exc:
        warnings.warn(f"{entry.get('id')}: derived model {derived.id} could not be checked: {exc}", stacklevel=2)
        from swindex.checkpoint import weights_to_check
        from swindex.records import Entry

        return {"id": derived.id, "revision": derived.revision, "date": today, "verdict": "unknown", "weights": len(weights_to_check(Entry.from_dict(entry))), "kept": 0}
    resolved = report.checkpoint.rsplit("@", 1)[1] if derived.path is None and "@" in report.checkpoint else None
    return {
        "id": derived.id,
        "revision": derived.revision or resolved,
        "date": today,
        "verdict": report.verdict,
        "weights": len(report.weights),
        "kept": report.counts["kept"],
    }


def with_derived_checks(entry: Mapping[str, Any], derived: Sequence[DerivedModel], check: Callable[[str, Mapping[str, Any]], Any], today: str) -> dict[str, Any]:
    """The entry with ``evidence.derived_checks`` recording each derived model's check."""
    result = copy.deepcopy(dict(entry))
    evidence = dict(result.get("evidence") or {})
    evidence["derived_checks"] = [derived_record(d, result, check, today) for d in derived]
    result["evidence"] = evidence
    return result
