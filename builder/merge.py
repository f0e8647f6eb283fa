"""Merging a fresh detection into an existing registry entry without losing anything published.

Rules (plain functions over registry-format dicts):
- An existing entry's published sources, contributors, statuses, aliases, notes, findings and
  disagreements stay as they are.
- The new detection becomes the entry-level evidence (``evidence.detection``, replacing an older
  swindex run; a verification run likewise).
- A detected coordinate that matches an existing claim adds its per-weight ``evidence.detection``;
  the claim's status is never touched, nor are the sources of a published claim (one citing
  anything besides swindex). A claim only swindex sources gets its swindex source refreshed
  (replacing the one with the same citation, so reruns do not pile up copies).
- A detected coordinate nobody claimed yet is added with status ``detected`` and impact
  ``unmeasured``: a candidate until verification measures it.
- A standing claim (confirmed, reported, detected) the detection did not find gets a
  ``disagreements`` item (``origin: swindex``, ``step: detection``) saying so; it is never rewritten or removed, except
  that ``--force`` drops a claim only swindex's own earlier run made. Disagreements people wrote are
  never touched, whatever their words.
- After verification, ``swindex.claims.reconcile`` adopts swindex's measured impact where no source
  measured the claim, records a disagreement where one did and swindex measures otherwise, and
  derives the verdict.
- ``modified`` changes only when something else changed (``swindex.claims.touch``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swindex.claims import (
    SWINDEX,
    SWINDEX_KIND,
    coordinate_of,
    derive_verdict,
    is_published,
    is_swindex_disagreement,
    touch,
)
from swindex.records import Claim
from swindex.schema import entry_schema

DISAGREEMENT_PREFIX = "swindex detection"


@dataclass(frozen=True)
class MergeResult:
    """The merged entry and what the merge did, for the summary table."""

    entry: dict[str, Any]
    detected: int
    added: tuple[str, ...]
    matched: tuple[str, ...]
    not_found: tuple[str, ...]


def _weight_key(claim: Mapping[str, Any]) -> tuple[Any, ...]:
    return (claim.get("layer"), claim.get("expert"), claim.get("row"), claim.get("column"))


def _ordered(data: Mapping[str, Any], order: list[str]) -> dict[str, Any]:
    """Keys in the schema's order, unknown ones after (so equal entries serialise to equal bytes)."""
    rank = {key: i for i, key in enumerate(order)}
    return {key: data[key] for key in sorted(data, key=lambda k: (rank.get(k, len(rank)), k))}


def canonical(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry with top-level and per-claim keys in the schema's order."""
    schema = entry_schema()
    top = list(schema["properties"])
    claim_order = list(schema["$defs"]["claim"]["properties"])
    result = _ordered(entry, top)
    if isinstance(result.get("claims"), list):
        result["claims"] = [_ordered(c, claim_order) if isinstance(c, Mapping) else c for c in result["claims"]]
    return result


def stamp(entry: Mapping[str, Any], today: str) -> dict[str, Any]:
    """Set the dates swindex itself produced (run evidence and swindex sources) to today, for reproducible files."""
    result = copy.deepcopy(dict(entry))
    result["modified"] = today
    evidence = result.get("evidence") or {}
    for run in ("detection", "verification"):
        if isinstance(evidence.get(run), dict):
            evidence[run]["date"] = today
    for claim in result.get("claims") or []:
        for source in claim.get("sources") or []:
            if source.get("kind") == SWINDEX_KIND and "date" in source:
                source["date"] = today
    return result


def _run_label(fresh: Mapping[str, Any]) -> str:
    run = (fresh.get("evidence") or {}).get("detection") or {}
    parts = [run.get("tool") or "swindex"]
    if run.get("dtype"):
        parts.append(run["dtype"])
    revision = run.get("revision") or fresh.get("revision")
    parts.append(f"revision {revision[:12]}" if revision else "revision unknown")
    if run.get("date"):
        parts.append(run["date"])
    return ", ".join(parts)


def _disagreement(claim: Mapping[str, Any], fresh: Mapping[str, Any]) -> dict[str, Any]:
    who = [s.get("citation", "") for s in claim.get("sources") or [] if s.get("kind") != SWINDEX_KIND]
    reporters = "; ".join(who) if who else "an earlier swindex detection"
    if len(reporters) > 1200:
        reporters = reporters[:1197] + "..."
    summary = (
        f"{DISAGREEMENT_PREFIX} ({_run_label(fresh)}) did not find {coordinate_of(claim)} "
        f"(status {claim.get('status')}), which {reporters} report(s); the claim is kept as published."
    )
    return {"summary": summary, "claims": [coordinate_of(claim)], "origin": SWINDEX, "step": "detection"}


def _is_ours(disagreement: Mapping[str, Any], coord: str) -> bool:
    """A disagreement an earlier detection run wrote about this coordinate (never one people wrote)."""
    return is_swindex_disagreement(disagreement, "detection") and list(disagreement.get("claims") or []) == [coord]


def _add_sources(claim: dict[str, Any], sources: list[Mapping[str, Any]]) -> None:
    kept = list(claim.get("sources") or [])
    for source in sources:
        same = [
            i
            for i, s in enumerate(kept)
            if s.get("kind") == SWINDEX_KIND and s.get("citation") == source.get("citation")
        ]
        if same:
            kept[same[0]] = copy.deepcopy(dict(source))
        else:
            kept.append(copy.deepcopy(dict(source)))
    claim["sources"] = kept


def _fill_facts(entry: dict[str, Any], fresh: Mapping[str, Any]) -> None:
    """Facts the detection read off the model fill what the entry does not say yet; nothing recorded is replaced."""
    for key in ("family", "parameters"):
        if entry.get(key) is None and fresh.get(key) is not None:
            entry[key] = fresh[key]
    if entry.get("revision") is None and fresh.get("revision") is not None and not entry.get("claims"):
        entry["revision"] = fresh["revision"]
    if fresh.get("dimensions"):
        dims = dict(entry.get("dimensions") or {})
        for key, value in fresh["dimensions"].items():
            if value is not None:
                dims.setdefault(key, value)
        entry["dimensions"] = dims


def _take_runs(entry: dict[str, Any], fresh: Mapping[str, Any]) -> None:
    """The fresh detection (and verification) run replaces swindex's earlier one as entry-level evidence."""
    evidence = dict(entry.get("evidence") or {})
    for run in ("detection", "verification"):
        if (fresh.get("evidence") or {}).get(run) is not None:
            evidence[run] = copy.deepcopy(fresh["evidence"][run])
    if evidence:
        entry["evidence"] = evidence


def _fold_detection(target: dict[str, Any], claim: Mapping[str, Any]) -> None:
    """A detected weight matching a claim adds its evidence (and value, if none was recorded);
    status and published sources stay."""
    if not is_published(target):
        _add_sources(target, [s for s in claim.get("sources") or [] if s.get("kind") == SWINDEX_KIND])
    weight_evidence = dict(target.get("evidence") or {})
    for key, value in (claim.get("evidence") or {}).items():
        weight_evidence[key] = copy.deepcopy(value)
    if weight_evidence:
        target["evidence"] = weight_evidence
    if target.get("value") is None and claim.get("value") is not None:
        target["value"] = claim["value"]
        if claim.get("value_dtype") is not None:
            target["value_dtype"] = claim["value_dtype"]


@dataclass
class _Matching:
    """The claims after folding in a detection, and which of them it found."""

    claims: list[dict[str, Any]]
    found: set[int]
    added: list[str]
    matched: list[str]


def _match(claims: list[dict[str, Any]], detected: list[dict[str, Any]]) -> _Matching:
    """Each detected weight matched to a claim by coordinate (or by layer, expert, row and column), else added."""
    by_coordinate = {coordinate_of(c): i for i, c in enumerate(claims)}
    by_weight = {_weight_key(c): i for i, c in enumerate(claims)}
    result = _Matching(claims, set(), [], [])
    for claim in detected:
        i = by_coordinate.get(coordinate_of(claim), by_weight.get(_weight_key(claim)))
        if i is None:
            claims.append(claim)
            i = len(claims) - 1
            by_coordinate[coordinate_of(claim)] = by_weight[_weight_key(claim)] = i
            result.added.append(coordinate_of(claim))
        else:
            _fold_detection(claims[i], claim)
            result.matched.append(coordinate_of(claims[i]))
        result.found.add(i)
    return result


def _drop_own(matching: _Matching, disagreements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``--force``: claims only swindex's earlier runs made, not found now and not discussed by people,
    go (with our notes on them)."""
    claims = matching.claims
    named_by_people = {c for d in disagreements for c in d.get("claims") or [] if not _is_ours(d, c)}
    kept = [
        i for i, c in enumerate(claims) if i in matching.found or is_published(c) or coordinate_of(c) in named_by_people
    ]
    dropped = {coordinate_of(c) for i, c in enumerate(claims) if i not in kept}
    matching.found = {kept.index(i) for i in matching.found}
    matching.claims = [claims[i] for i in kept]
    return [d for d in disagreements if not any(_is_ours(d, c) for c in dropped)]


def _note_not_found(
    matching: _Matching, disagreements: list[dict[str, Any]], fresh: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """A standing claim the detection did not find gets (or keeps, rewritten) our disagreement;
    one found again loses it."""
    not_found = []
    for i, claim in enumerate(matching.claims):
        coord = coordinate_of(claim)
        ours = [j for j, d in enumerate(disagreements) if _is_ours(d, coord)]
        if i in matching.found:
            disagreements = [d for j, d in enumerate(disagreements) if j not in ours]
            continue
        if not Claim.from_dict(claim).standing:
            continue
        not_found.append(coord)
        item = _disagreement(claim, fresh)
        if ours:
            disagreements[ours[0]] = item
        else:
            disagreements.append(item)
    return disagreements, not_found


def merge_entry(
    existing: Mapping[str, Any] | None, fresh: Mapping[str, Any], today: str, replace_own: bool = False
) -> MergeResult:
    """Fold a fresh detection entry into an existing one, or take it whole when there is none.

    ``replace_own`` (``--force``) replaces swindex's own earlier results: a claim only swindex sources
    that this detection no longer finds is dropped instead of kept with a disagreement. Nothing else is
    ever replaced: published claims, aliases and hand-written notes survive every run.
    """
    fresh = copy.deepcopy(dict(fresh))
    detected = list(fresh.get("claims") or [])
    for claim in detected:
        claim["status"] = "detected"
        claim.setdefault("impact", {"classification": "unmeasured"})
    if existing is None:
        entry = canonical({**fresh, "verdict": derive_verdict(fresh), "modified": today})
        return MergeResult(entry, len(detected), tuple(coordinate_of(c) for c in detected), (), ())

    entry = copy.deepcopy(dict(existing))
    _fill_facts(entry, fresh)
    _take_runs(entry, fresh)
    matching = _match([dict(c) for c in entry.get("claims") or []], detected)
    disagreements = [dict(d) for d in entry.get("disagreements") or []]
    if replace_own:
        disagreements = _drop_own(matching, disagreements)
    disagreements, not_found = _note_not_found(matching, disagreements, fresh)
    entry["claims"] = matching.claims
    if disagreements:
        entry["disagreements"] = disagreements
    else:
        entry.pop("disagreements", None)
    entry["verdict"] = derive_verdict(entry)
    entry = touch(canonical(entry), canonical(existing), today)
    return MergeResult(entry, len(detected), tuple(matching.added), tuple(matching.matched), tuple(not_found))
