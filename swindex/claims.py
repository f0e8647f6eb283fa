"""Keeping claims in step with swindex's own measurements, without ever rewriting a published claim.

After verification each claim carries ``evidence.impact.classification``. A claim only swindex sources
follows it: measured harmless it is ``inert``; measured to matter it is ``detected`` again. A published
claim keeps the status its sources give it; when it is published as ``inert`` but swindex measures it
critical or significant, the contradiction is recorded in ``disagreements`` (replacing swindex's earlier
note on the same claim), so readers see both.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .records import format_coordinate

SWINDEX_KIND = "swindex"
VERIFICATION_PREFIX = "swindex verification"


def is_published(claim: Mapping[str, Any]) -> bool:
    """A claim citing anything besides swindex: its status and sources are the publications' record."""
    return any(s.get("kind") != SWINDEX_KIND for s in claim.get("sources") or [])


def _coordinate(claim: Mapping[str, Any]) -> str:
    return format_coordinate(claim["tensor"], claim["index"])


def measured_impact(claim: Mapping[str, Any]) -> str | None:
    """critical, significant or inert as swindex verify classified the claim, or None if it was never measured."""
    return ((claim.get("evidence") or {}).get("impact") or {}).get("classification")


def reconcile(entry: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The entry with statuses following swindex's measurements as above, and what changed (for a summary)."""
    result = copy.deepcopy(dict(entry))
    changed: list[str] = []
    disagreements = [dict(d) for d in result.get("disagreements") or []]
    for claim in result.get("super_weights") or []:
        coordinate, measured = _coordinate(claim), measured_impact(claim)
        ours = [i for i, d in enumerate(disagreements) if str(d.get("summary", "")).startswith(VERIFICATION_PREFIX) and d.get("claims") == [coordinate]]
        if not is_published(claim):
            status = {"inert": "inert", "critical": "detected", "significant": "detected"}.get(measured)
            if claim.get("status") in ("detected", "inert") and status is not None and status != claim["status"]:
                claim["status"] = status
                changed.append(f"{coordinate}: status {status}")
            continue
        if claim.get("status") == "inert" and measured in ("critical", "significant"):
            impact = claim["evidence"]["impact"]
            ratio, metric = impact.get("ratio"), impact.get("metric", "perplexity")
            figure = f" ({metric} x{ratio:.3g} when zeroed)" if isinstance(ratio, (int, float)) else ""
            summary = (
                f"{VERIFICATION_PREFIX} measured {coordinate} {measured}{figure}, "
                "while its sources report zeroing it harmless; the claim is kept as published."
            )
            item = {"summary": summary, "claims": [coordinate]}
            if ours:
                disagreements[ours[0]] = item
            else:
                disagreements.append(item)
                changed.append(f"{coordinate}: disagreement recorded")
        elif ours:
            disagreements = [d for i, d in enumerate(disagreements) if i not in ours]
            changed.append(f"{coordinate}: disagreement withdrawn")
    if disagreements:
        result["disagreements"] = disagreements
    else:
        result.pop("disagreements", None)
    return result, tuple(changed)
