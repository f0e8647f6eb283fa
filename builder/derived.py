"""Derived models of a registry model (fine-tunes, merges, quantizations): did they keep its super weights?

Each derived model listed under an item is read with `swindex check` (headers and a few bytes, never the
model) against the entry just built, and recorded in ``evidence.derived_checks``: its id, the revision
checked, the date, the verdict and how many of the weights to keep it kept. The records replace the
previous run's, so they always describe the list as it stands.

``python -m builder --derived`` instead asks the Hub for every model derived from each entry (`swindex derived`)
and records each checkpoint's check with its kind, GGUF file and, when it has no verdict, why.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from swindex.errors import SwindexError

from .modellist import DerivedModel


def check_checkpoint(location: str, entry: Mapping[str, Any]) -> Any:
    """`swindex check` of one checkpoint (a local path or ORG/NAME[@REVISION]) against an entry dict."""
    from swindex.checkpoint import check

    return check(location, entry=entry)


def derived_record(
    derived: DerivedModel, entry: Mapping[str, Any], check: Callable[[str, Mapping[str, Any]], Any], today: str
) -> dict[str, Any]:
    """The evidence record of one derived model:
    ``verdict`` unknown (with a warning saying why) when it cannot be read."""
    location = derived.path or (f"{derived.id}@{derived.revision}" if derived.revision else derived.id)
    try:
        report = check(location, entry)
    except SwindexError as exc:
        warnings.warn(f"{entry.get('id')}: derived model {derived.id} could not be checked: {exc}", stacklevel=2)
        from swindex.checkpoint import weights_to_check
        from swindex.records import Entry

        return {
            "id": derived.id,
            "revision": derived.revision,
            "date": today,
            "verdict": "unknown",
            "weights": len(weights_to_check(Entry.from_dict(entry))),
            "kept": 0,
        }
    resolved = report.checkpoint.rsplit("@", 1)[1] if derived.path is None and "@" in report.checkpoint else None
    return {
        "id": derived.id,
        "revision": derived.revision or resolved,
        "date": today,
        "verdict": report.verdict,
        "weights": len(report.weights),
        "kept": report.counts["kept"],
    }


def with_derived_checks(
    entry: Mapping[str, Any],
    derived: Sequence[DerivedModel],
    check: Callable[[str, Mapping[str, Any]], Any],
    today: str,
) -> dict[str, Any]:
    """The entry with ``evidence.derived_checks`` recording each derived model's check."""
    result = copy.deepcopy(dict(entry))
    evidence = dict(result.get("evidence") or {})
    evidence["derived_checks"] = [derived_record(d, result, check, today) for d in derived]
    result["evidence"] = evidence
    return result


REASON_LENGTH = 500
"""The schema's limit on a skipped checkpoint's reason; longer ones are cut."""


def scanned_record(result: Any, today: str) -> dict[str, Any]:
    """The evidence record of one checkpoint found by `swindex derived` (a swindex.derived.DerivedCheck)."""
    record: dict[str, Any] = {
        "id": result.id,
        "revision": result.revision,
        "date": today,
        "verdict": result.verdict or "unknown",
        "weights": result.weights,
        "kept": result.kept,
        "kind": result.kind,
    }
    if result.file is not None:
        record["file"] = result.file
    if result.skipped:
        record["skipped"] = result.skipped
        record["reason"] = result.reason[:REASON_LENGTH]
    return record


def with_scanned_checks(entry: Mapping[str, Any], results: Sequence[Any], today: str) -> dict[str, Any]:
    """The entry with a scan's records in ``evidence.derived_checks``: they replace the previous scan's, and any
    listed record of a model the scan found; models the list names and the Hub does not link stay."""
    result = copy.deepcopy(dict(entry))
    evidence = dict(result.get("evidence") or {})
    found = {r.id for r in results}
    kept = [c for c in evidence.get("derived_checks") or [] if "kind" not in c and c.get("id") not in found]
    latest = {(r.id, r.file): r for r in results}  # a resumed scan's file may hold an older revision's check first
    records = sorted(
        (scanned_record(r, today) for r in latest.values()), key=lambda c: (c["id"].casefold(), c.get("file") or "")
    )
    evidence["derived_checks"] = kept + records
    result["evidence"] = evidence
    return result


def scan_model(
    model_id: str,
    registry: Path,
    today: str,
    *,
    state_dir: Path | None = None,
    workers: int = 16,
    deadline: float = 30.0,
    endpoint: str | None = None,
    header: str = "",
) -> tuple[bool, str]:
    """List and check every derived model of one registry entry and write the records into it: (written, summary);
    an entry that is not there yet, or records no weight to keep, is left alone (nothing to check against)."""
    from collections import Counter

    from swindex.derived import ScanState, list_derived, scan
    from swindex.records import Entry

    from .atomic import entry_path, write_entry
    from .pipeline import _finish
    from .state import read_entry, read_header

    path = entry_path(registry, model_id)
    existing = read_entry(path)
    if existing is None:
        return False, "no registry entry yet: nothing to check its derived models against"
    entry = Entry.from_dict(existing, path=str(path))
    from swindex.checkpoint import weights_to_check

    if not weights_to_check(entry):
        return False, "its entry records no weight to keep: nothing to check"
    state = None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        state = ScanState(state_dir / f"{model_id.replace('/', '--')}.jsonl", model_id)
    try:
        models = list_derived(model_id, endpoint=endpoint)
        results = list(scan(models, entry, workers=workers, deadline=deadline, state=state, endpoint=endpoint))
        if state is not None:
            results = list(state.records())  # the earlier runs' checks of a resumed scan too
    finally:
        if state is not None:
            state.close()
    updated = _finish(with_scanned_checks(existing, results, today), existing, today)
    written = write_entry(path, updated, header=read_header(path) or header)
    counts = Counter(r.verdict or "could not check" for r in results)
    said = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none"
    return written, f"{len(results)} derived checkpoint(s): {said}"
