"""The rules that turn claims and measurements into answers: impact classes, super weights, verdicts.

Status (where a claim came from) and impact (what zeroing it measurably does) are separate facts. A
super weight is a standing claim measured critical, or a published one nobody has measured yet; a
swindex candidate is never one until verification measures it critical. swindex's own measurement
replaces only an impact that is unmeasured or was measured by swindex: an impact a source measured is
the publication's record, so when swindex measures otherwise the contradiction goes into
``disagreements`` (``origin: swindex``) and both stay visible.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from .records import STANDING_STATUSES, Verdict, format_coordinate

SWINDEX_KIND = "swindex"
SWINDEX = "swindex"
"""``impact.measured_by`` of swindex's own verification runs, and ``origin`` of the disagreements swindex writes."""
VERIFICATION_PREFIX = "swindex verification"
"""How the disagreements verification writes begin (the detector's begin "swindex detection"); both carry ``origin: swindex``."""

IMPACT_THRESHOLDS = {
    "perplexity": {"critical": 2.0, "significant": 1.05},
    "embedding_shift": {"critical": 0.1, "significant": 0.01},
}
"""Classification limits per metric: a ratio of perplexities (zeroed / original), or the embedding shift itself.

Critical when perplexity at least doubles (the paper's Llama-7B goes from 5.7 to over a thousand),
significant from a 5% rise (more than any ordinary weight of a trained model moves it).
"""


def classify(metric: str, ratio: float | None) -> str:
    """critical, significant, inert, or unmeasured (no usable figure) for one weight's measurement."""
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) or metric not in IMPACT_THRESHOLDS:
        return "unmeasured"
    limits = IMPACT_THRESHOLDS[metric]
    if ratio >= limits["critical"]:
        return "critical"
    if ratio >= limits["significant"]:
        return "significant"
    return "inert"


def is_published(claim: Mapping[str, Any]) -> bool:
    """A claim citing anything besides swindex: its status and sources are the publications' record."""
    return any(s.get("kind") != SWINDEX_KIND for s in claim.get("sources") or [])


def coordinate_of(claim: Mapping[str, Any]) -> str:
    """``tensor[i, j]``, the claim's key within its entry."""
    return format_coordinate(claim["tensor"], claim["index"])


def impact_of(claim: Mapping[str, Any]) -> str:
    """critical, significant, inert or unmeasured."""
    return str((claim.get("impact") or {}).get("classification") or "unmeasured")


def measured_impact(claim: Mapping[str, Any]) -> str | None:
    """The classification swindex itself measured, or None when swindex never measured the claim."""
    impact = claim.get("impact") or {}
    return impact.get("classification") if impact.get("measured_by") == SWINDEX else None


def is_super_weight(claim: Mapping[str, Any]) -> bool:
    """A standing claim measured critical, or a published (confirmed or reported) one not yet measured."""
    status, impact = claim.get("status"), impact_of(claim)
    if status not in STANDING_STATUSES:
        return False
    return impact == "critical" or (impact == "unmeasured" and status in ("confirmed", "reported"))


def super_weight_claims(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The claims lookup hands out, each coordinate once, in registry order."""
    seen: set[str] = set()
    result = []
    for claim in entry.get("claims") or []:
        key = coordinate_of(claim)
        if is_super_weight(claim) and key not in seen:
            seen.add(key)
            result.append(claim)
    return result


def weights_to_keep(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every standing claim not measured harmless, each coordinate once (``Entry.weights_to_keep`` for dicts)."""
    seen: set[str] = set()
    result = []
    for claim in entry.get("claims") or []:
        key = coordinate_of(claim)
        if claim.get("status") in STANDING_STATUSES and impact_of(claim) != "inert" and key not in seen:
            seen.add(key)
            result.append(claim)
    return result


def derive_verdict(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict the entry's claims support, in the schema's field names.

    Any super weight makes the outcome ``super_weights``. Otherwise, when claims were measured (or
    swindex verified the entry), no single weight is critical; the joint figure comes from swindex's
    verification run (every measured candidate zeroed together). With nothing measured: not measured.
    """
    claims = list(entry.get("claims") or [])
    measured = [c for c in claims if impact_of(c) != "unmeasured"]
    run = (entry.get("evidence") or {}).get("verification") or {}
    verdict: dict[str, Any] = {}
    count = len(super_weight_claims(entry))
    if count:
        verdict = {"outcome": "super_weights", "super_weights": count}
    elif measured or run:
        verdict = {"outcome": "no_critical_weight"}
    else:
        return {"outcome": "not_measured"}
    if measured:
        verdict["candidates"] = len(measured)
        sources = {(c.get("impact") or {}).get("measured_by") for c in measured}
        if len(sources) == 1 and None not in sources:
            verdict["measured_by"] = sources.pop()
    metric = run.get("metric")
    original, joint = run.get("original"), run.get("all_zeroed")
    if metric == "perplexity" and isinstance(original, (int, float)) and isinstance(joint, (int, float)) and original > 0:
        verdict["joint_ratio"] = round(float(joint) / float(original), 6)
        verdict["metric"] = metric
    elif metric == "embedding_shift" and isinstance(joint, (int, float)):
        verdict["joint_ratio"] = round(float(joint), 6)
        verdict["metric"] = metric
    return verdict


def verdict_of(entry: Mapping[str, Any]) -> Verdict:
    """The derived verdict as a record (with ``.text``)."""
    return Verdict.from_dict(derive_verdict(entry))


def adopt_measurement(claim: Mapping[str, Any], measurement: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The claim with swindex's measurement as its impact, unless a source measured it (then unchanged).

    Returns the claim and, when a source's measured impact disagrees with swindex's classification, a
    one-line description of the contradiction for ``disagreements``.
    """
    result = copy.deepcopy(dict(claim))
    current = dict(result.get("impact") or {})
    ours = dict(measurement, measured_by=SWINDEX)
    if current.get("classification", "unmeasured") == "unmeasured" or current.get("measured_by") == SWINDEX:
        result["impact"] = ours
        return result, None
    if current.get("classification") == ours.get("classification"):
        return result, None
    ratio, metric = ours.get("ratio"), ours.get("metric", "perplexity")
    figure = f" ({metric} x{ratio:.3g} when zeroed)" if isinstance(ratio, (int, float)) and metric == "perplexity" else ""
    return result, (
        f"{VERIFICATION_PREFIX} measured {coordinate_of(claim)} {ours.get('classification')}{figure}, while "
        f"{current.get('measured_by')} measured it {current.get('classification')}; the published impact is kept."
    )


def reconcile(entry: Mapping[str, Any], measurements: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The entry with swindex's measurements adopted (by coordinate), its swindex disagreements redone, and its verdict derived.

    Disagreements verification wrote (``origin: swindex``) are rewritten from the new measurements: one
    that no longer holds is withdrawn; the detector's and those people wrote are never touched here. Returns the entry and what changed.
    """
    result = copy.deepcopy(dict(entry))
    changed: list[str] = []
    measurements = measurements or {}
    def written_here(d: Mapping[str, Any]) -> bool:
        return d.get("origin") == SWINDEX and str(d.get("summary", "")).startswith(VERIFICATION_PREFIX)

    ours = {tuple(d.get("claims") or ()): d for d in result.get("disagreements") or [] if written_here(d)}
    kept = [d for d in result.get("disagreements") or [] if not written_here(d)]
    claims = []
    for claim in result.get("claims") or []:
        coordinate = coordinate_of(claim)
        if coordinate in measurements:
            before = impact_of(claim)
            claim, contradiction = adopt_measurement(claim, measurements[coordinate])
            if impact_of(claim) != before:
                changed.append(f"{coordinate}: impact {impact_of(claim)}")
            if contradiction:
                if (coordinate,) not in ours:
                    changed.append(f"{coordinate}: disagreement recorded")
                kept.append({"summary": contradiction, "claims": [coordinate], "origin": SWINDEX})
            elif (coordinate,) in ours:
                changed.append(f"{coordinate}: disagreement withdrawn")
        elif (coordinate,) in ours:
            kept.append(ours[(coordinate,)])
        claims.append(claim)
    result["claims"] = claims
    if kept:
        result["disagreements"] = kept
    else:
        result.pop("disagreements", None)
    verdict = derive_verdict(result)
    if verdict != result.get("verdict"):
        changed.append(f"verdict: {Verdict.from_dict(verdict).text}")
    result["verdict"] = verdict
    return result, tuple(changed)


def touch(entry: Mapping[str, Any], before: Mapping[str, Any] | None, today: str) -> dict[str, Any]:
    """The one rule for ``modified``: it becomes ``today`` when, and only when, anything else in the entry changed."""
    result = dict(entry)
    if before is None or {k: v for k, v in result.items() if k != "modified"} != {k: v for k, v in before.items() if k != "modified"}:
        result["modified"] = today
    elif "modified" in before:
        result["modified"] = before["modified"]
    return result
