"""The rules that turn claims and measurements into answers: statuses, impact classes, super weights, verdicts.

Each rule is written once here, on the typed records (``swindex.records``); callers holding registry dicts go
through ``Claim.from_dict`` (``claims_of``), so the validator, lookup, the site, quantization and the builder
count the same way. Status (where a claim came from: ``status_from_sources``) and impact (what zeroing it
measurably does: ``classify``) are separate facts. A
super weight is a standing claim measured critical, or a published one nobody has measured yet; a
swindex candidate is never one until verification measures it critical. swindex's own measurement
replaces only an impact that is unmeasured or was measured by swindex: an impact a source measured is
the publication's record, so when swindex measures otherwise the contradiction goes into
``disagreements`` (``origin: swindex``, ``step: verification``) and both stay visible.
"""

from __future__ import annotations

import copy
import math

from ._record import Record
from .layout import format_coordinate

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time: `lookup(...).super_weights` stays within the 30 ms
    from collections.abc import Iterable, Mapping
    from typing import Any

    from .records import Claim, Source, Verdict

SWINDEX_KIND = "swindex"
SWINDEX = "swindex"
"""``impact.measured_by`` of swindex's own verification runs, and ``origin`` of the disagreements swindex writes."""
VERIFICATION_PREFIX = "swindex verification"
"""How the disagreements verification writes begin, for readers; tools recognise them by ``origin`` and ``step``."""

STANDING_STATUSES = ("confirmed", "reported", "detected")
"""Statuses whose claims stand; the others are kept for the record and shown, never handed out."""
PUBLISHED_STATUSES = ("confirmed", "reported")
"""Standing statuses a publication gives: such a claim is a super weight until someone measures it otherwise."""
FIRST_HAND_EVIDENCE = ("reported", "detected", "ablation")
"""Evidence of a source that looked at the weight itself (copied, assumed, heuristic and unlabeled claims did not)."""
GROUNDING_EVIDENCE = ("reported", "ablation")
"""What one party needs beyond a detector's listing for its claim to stand: its authors' own report or an ablation."""


class Band(Record):
    """Classification limits for one metric, and which way is worse (perplexity rises, accuracy falls)."""

    critical: float
    significant: float
    higher_is_worse: bool = True

    def classify(self, ratio: float) -> str:
        """critical, significant or inert for one figure."""
        worse = (lambda limit: ratio >= limit) if self.higher_is_worse else (lambda limit: ratio <= limit)
        if worse(self.critical):
            return "critical"
        if worse(self.significant):
            return "significant"
        return "inert"


IMPACT_BANDS = {
    "perplexity": Band(critical=2.0, significant=1.05),
    "embedding_shift": Band(critical=0.1, significant=0.01),
    "accuracy": Band(critical=0.75, significant=0.95, higher_is_worse=False),
    "nll": Band(critical=1.3, significant=1.02),
    "row_ablation_nll": Band(critical=1.3, significant=1.02),
}
"""Classification limits per metric: the ratio zeroed / original (for embedding_shift, the shift itself).

perplexity: critical when it at least doubles (the paper's Llama-7B goes from 5.7 to over a thousand),
significant from a 5% rise (more than any ordinary weight of a trained model moves it). accuracy (a
benchmark's, e.g. HellaSwag): critical when a quarter of it is lost, significant from a 5% loss.
nll and row_ablation_nll (mean negative log-likelihood, MLM loss for encoders; row_ablation_nll when a
whole row was zeroed): at the loss of a typical model (about 2.3 nats, perplexity 10) a 30% rise doubles
perplexity and a 2% rise raises it 5%, so those are the limits.
"""
IMPACT_THRESHOLDS = {
    metric: {"critical": band.critical, "significant": band.significant} for metric, band in IMPACT_BANDS.items()
}
"""The same limits as plain numbers, for reports and pages (``IMPACT_BANDS`` says which way is worse)."""


def classify(metric: str, ratio: float | None) -> str:
    """critical, significant, inert, or unmeasured (no usable figure) for one weight's measurement."""
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) or metric not in IMPACT_BANDS:
        return "unmeasured"
    return IMPACT_BANDS[metric].classify(ratio)


def figure_of(impact: Mapping[str, Any]) -> float | None:
    """The figure an impact is classified by: its ratio, else zeroed / original; None when it has neither."""
    ratio, original, zeroed = impact.get("ratio"), impact.get("original"), impact.get("zeroed")
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool):
        return float(ratio)
    if impact.get("metric") == "embedding_shift":
        return None
    if isinstance(original, (int, float)) and isinstance(zeroed, (int, float)) and original:
        return float(zeroed) / float(original)
    return None


def is_standing(claim: Claim) -> bool:
    """Whether a claim's provenance stands (confirmed, reported, detected), not unverified, disputed or withdrawn."""
    return claim.status in STANDING_STATUSES


def is_super_weight(claim: Claim) -> bool:
    """A standing claim measured critical, or a published (confirmed or reported) one nobody has measured yet.

    A swindex candidate nobody measured is not one, nor is a weight measured significant or inert.
    """
    if not is_standing(claim):
        return False
    impact = claim.impact.classification
    return impact == "critical" or (impact == "unmeasured" and claim.status in PUBLISHED_STATUSES)


def is_kept(claim: Claim) -> bool:
    """Whether quantization should hold the weight out: it stands and nobody measured it harmless."""
    return is_standing(claim) and claim.impact.classification != "inert"


def _unique(claims: Iterable[Claim]) -> tuple[Claim, ...]:
    seen: set[str] = set()
    result = []
    for claim in claims:
        if claim.coordinate not in seen:
            seen.add(claim.coordinate)
            result.append(claim)
    return tuple(result)


def super_weights(claims: Iterable[Claim]) -> tuple[Claim, ...]:
    """The claims lookup hands out, each coordinate once, in registry order."""
    return _unique(c for c in claims if is_super_weight(c))


def weights_to_keep(claims: Iterable[Claim]) -> tuple[Claim, ...]:
    """Every standing claim not measured harmless, each coordinate once: what quantization holds out."""
    return _unique(c for c in claims if is_kept(c))


KEEP_KINDS = ("super weight", "significant weight", "unmeasured candidate")
"""What each weight to keep is, in the words quantize and keep print: why it is held out."""


def keep_kind(claim: Claim) -> str:
    """Which of ``KEEP_KINDS`` a weight to keep is: a super weight, measured significant, or not measured yet."""
    if is_super_weight(claim):
        return KEEP_KINDS[0]
    return KEEP_KINDS[1] if claim.impact.classification in ("significant", "critical") else KEEP_KINDS[2]


def keep_counts(claims: Iterable[Claim]) -> str:
    """``1 super weight, 1 significant weight``: how many of each kind, so a report's words match the entry."""
    counts = {kind: 0 for kind in KEEP_KINDS}
    for claim in claims:
        counts[keep_kind(claim)] += 1
    parts = [f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in counts.items() if n]
    return ", ".join(parts) if parts else "nothing"


def has_standing_claim(entry: Mapping[str, Any]) -> bool:
    """Whether an entry dict has a claim that stands (a published claim or a candidate): verification has work to do."""
    return any(is_standing(c) for c in claims_of(entry))


def claims_of(entry: Mapping[str, Any]) -> tuple[Claim, ...]:
    """An entry dict's claims as typed records, so dict callers share the rules above."""
    from .records import Claim

    return tuple(Claim.from_dict(c) for c in entry.get("claims") or [])


def party_of(source: Source) -> str:
    """Who stands behind a source: swindex (any run), else ``party`` (a paper and its code share one), else citation."""
    if source.kind == SWINDEX_KIND:
        return SWINDEX
    return source.party or source.citation


def parties(sources: Iterable[Source]) -> frozenset[str]:
    """The independent parties that reported, detected or ablated a claim first-hand."""
    return frozenset(party_of(s) for s in sources if s.evidence in FIRST_HAND_EVIDENCE)


def status_from_sources(sources: Iterable[Source]) -> str:
    """The status a claim's sources support, as the README defines it: the one source-counting rule.

    Two independent parties that reported, detected or ablated it make it confirmed. One party makes it
    reported when that party published it or zeroed it, detected when the party is swindex's detector,
    and unverified when it only listed it from a detector (nobody zeroed it). Copied, assumed, heuristic
    and unlabeled sources never count. Disputed and withdrawn are judgements people record, not counts.
    """
    first_hand = [s for s in sources if s.evidence in FIRST_HAND_EVIDENCE]
    who = parties(first_hand)
    if len(who) >= 2:
        return "confirmed"
    if who == {SWINDEX}:
        return "detected"
    if any(s.evidence in GROUNDING_EVIDENCE for s in first_hand):
        return "reported"
    return "unverified"


def is_swindex_disagreement(disagreement: Mapping[str, Any], step: str) -> bool:
    """Whether swindex's ``step`` (detection or verification) wrote a disagreement, from its structured fields only.

    Its words are never parsed: a person may write "swindex verification" in a summary, and that item stays theirs.
    """
    return disagreement.get("origin") == SWINDEX and disagreement.get("step") == step


def is_published(claim: Mapping[str, Any]) -> bool:
    """A claim citing anything besides swindex: its status and sources are the publications' record."""
    return any(s.get("kind") != SWINDEX_KIND for s in claim.get("sources") or [])


def coordinate_of(claim: Mapping[str, Any]) -> str:
    """``tensor[i, j]``, the claim's key within its entry."""
    return format_coordinate(claim["tensor"], claim["index"])


def impact_of(claim: Mapping[str, Any]) -> str:
    """critical, significant, inert or unmeasured."""
    return str((claim.get("impact") or {}).get("classification") or "unmeasured")


def derive_verdict(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict the entry's claims support, in the schema's field names.

    Any super weight makes the outcome ``super_weights``. Otherwise, when claims were measured (or
    swindex verified the entry), no single weight is critical; the joint figure comes from swindex's
    verification run (every measured candidate zeroed together). With nothing measured: not measured.
    """
    claims = claims_of(entry)
    measured = [c for c in claims if c.impact.measured]
    run = (entry.get("evidence") or {}).get("verification") or {}
    verdict: dict[str, Any] = {}
    count = len(super_weights(claims))
    if count:
        verdict = {"outcome": "super_weights", "super_weights": count}
    elif measured or run:
        verdict = {"outcome": "no_critical_weight"}
    else:
        return {"outcome": "not_measured"}
    if measured:
        verdict["candidates"] = len(measured)
        by = {c.impact.measured_by for c in measured}
        if len(by) == 1 and None not in by:
            verdict["measured_by"] = by.pop()
    metric = run.get("metric")
    original, joint = run.get("original"), run.get("all_zeroed")
    if (
        metric == "perplexity"
        and isinstance(original, (int, float))
        and isinstance(joint, (int, float))
        and original > 0
    ):
        verdict["joint_ratio"] = round(float(joint) / float(original), 6)
        verdict["metric"] = metric
    elif metric == "embedding_shift" and isinstance(joint, (int, float)):
        verdict["joint_ratio"] = round(float(joint), 6)
        verdict["metric"] = metric
    return verdict


def verdict_of(entry: Mapping[str, Any]) -> Verdict:
    """The derived verdict as a record (with ``.text``)."""
    from .records import Verdict

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
    figure = (
        f" ({metric} x{ratio:.3g} when zeroed)" if isinstance(ratio, (int, float)) and metric == "perplexity" else ""
    )
    return result, (
        f"{VERIFICATION_PREFIX} measured {coordinate_of(claim)} {ours.get('classification')}{figure}, while "
        f"{current.get('measured_by')} measured it {current.get('classification')}; the published impact is kept."
    )


def reconcile(
    entry: Mapping[str, Any], measurements: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The entry with swindex's measurements adopted (by coordinate),
    its swindex disagreements redone, and its verdict derived.

    Disagreements verification wrote (``origin: swindex``, ``step: verification``) are rewritten from the new
    measurements: one that no longer holds is withdrawn; the detector's and those people wrote are never touched here.
    Returns the entry and what changed.
    """
    result = copy.deepcopy(dict(entry))
    changed: list[str] = []
    measurements = measurements or {}

    def written_here(d: Mapping[str, Any]) -> bool:
        return is_swindex_disagreement(d, "verification")

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
                written = {"summary": contradiction, "claims": [coordinate], "origin": SWINDEX, "step": "verification"}
                kept.append(written)
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
        changed.append(f"verdict: {verdict_of(result).text}")
    result["verdict"] = verdict
    return result, tuple(changed)


def touch(entry: Mapping[str, Any], before: Mapping[str, Any] | None, today: str) -> dict[str, Any]:
    """The one rule for ``modified``: it becomes ``today`` when, and only when, anything else in the entry changed."""
    result = dict(entry)
    if before is None or {k: v for k, v in result.items() if k != "modified"} != {
        k: v for k, v in before.items() if k != "modified"
    }:
        result["modified"] = today
    elif "modified" in before:
        result["modified"] = before["modified"]
    return result
