"""Moving entries between schema versions without losing a claim.

Schema 1 kept provenance and impact in one ``status`` (``inert`` meant "zeroing it was reported
harmless") and swindex's measurement in ``evidence.impact``. Schema 2 splits them: ``status`` is
provenance, ``impact`` is the measured effect with who measured it, and the entry carries a
``verdict``. ``upgrade`` turns a schema-1 entry into schema 2 (used by ``validate --against`` on older
registries, and once on this registry); ``downgrade`` gives schema-1 readers the API they know.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .claims import SWINDEX, SWINDEX_KIND, classify, derive_verdict, status_from_sources
from .records import Source

_IMPACT_FIGURES = ("metric", "zeroed", "ratio", "super_activation", "super_activation_zeroed", "similarity_shift")
_V2_SOURCE_FIELDS = ("party",)
"""Source fields schema 2 added; schema-1 readers refuse unknown fields, so downgrade leaves them out."""
_V2_DISAGREEMENT_FIELDS = ("origin", "step")


def _provenance(sources: list[Mapping[str, Any]]) -> str:
    """confirmed, reported, detected or unverified: ``swindex.claims.status_from_sources`` on the typed sources."""
    return status_from_sources(Source.from_dict(s) for s in sources)


def _reported_harmless(sources: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Schema 1's published ``inert``: the source that measured the weight harmless, with its words."""
    ranked = sorted(
        (s for s in sources if s.get("kind") != SWINDEX_KIND),
        key=lambda s: (s.get("evidence") != "ablation", not s.get("effect")),
    )
    source = ranked[0] if ranked else sources[0]
    impact: dict[str, Any] = {"classification": "inert", "measured_by": source["citation"]}
    if source.get("effect"):
        impact["note"] = source["effect"]
    return impact


def _with_impact(claim: Mapping[str, Any], status: str, impact: dict[str, Any]) -> dict[str, Any]:
    """The claim's fields in their usual order, ``impact`` right after ``status``."""
    result: dict[str, Any] = {}
    for key, value in claim.items():
        if key == "status":
            result["status"] = status
            result["impact"] = impact
        elif key != "impact":
            result[key] = value
    return result


def upgrade_claim(original: Mapping[str, Any]) -> dict[str, Any]:
    """One schema-1 scalar claim (or finding) in schema 2."""
    claim = copy.deepcopy(dict(original))
    sources = list(claim.get("sources") or [])
    evidence = dict(claim.get("evidence") or {})
    measured = evidence.pop("impact", None)
    if evidence:
        claim["evidence"] = evidence
    else:
        claim.pop("evidence", None)
    status = str(claim.get("status"))
    if measured:
        impact: dict[str, Any] = {
            "classification": measured.get("classification")
            or classify(measured.get("metric", ""), measured.get("ratio")),
            "measured_by": SWINDEX,
        }
        impact.update({k: measured[k] for k in _IMPACT_FIGURES if k in measured})
    elif status == "inert":
        impact = _reported_harmless(sources)
    else:
        impact = {"classification": "unmeasured"}
    if status == "inert":
        status = _provenance(sources)
    return _with_impact(claim, status, impact)


def upgrade(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 entry in schema 2 (a schema-2 entry is returned unchanged, as a copy)."""
    if entry.get("schema_version") != 1:
        return copy.deepcopy(dict(entry))
    result: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "schema_version":
            result[key] = 2
        elif key == "super_weights":
            result["verdict"] = {}
            result["claims"] = [upgrade_claim(c) for c in value or []]
        elif key == "other_findings":
            result[key] = [upgrade_claim(f) if f.get("status") == "inert" else copy.deepcopy(f) for f in value or []]
        elif key == "disagreements":
            # schema 1 recorded no origin: each stays people's, never rewritten by tools
            result[key] = copy.deepcopy(value)
        else:
            result[key] = copy.deepcopy(value)
    result["verdict"] = derive_verdict(result)
    return result


def downgrade(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-2 entry as schema-1 readers expect it (for the /api/v1/ files kept for existing readers)."""
    result: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "schema_version":
            result[key] = 1
        elif key == "verdict":
            continue
        elif key == "claims":
            result["super_weights"] = [_downgrade_claim(c) for c in value]
        elif key == "other_findings":
            result[key] = [_downgrade_claim(f, scalar=False) for f in value]
        elif key == "disagreements":
            result[key] = [{k: v for k, v in d.items() if k not in _V2_DISAGREEMENT_FIELDS} for d in value]
        elif key == "evidence":
            result[key] = _v1_evidence(value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _v1_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Entry evidence with only the runs and run fields schema 1 published (its readers refuse unknown fields)."""
    from .schema import entry_schema_v1

    defs = entry_schema_v1()["$defs"]
    runs = defs["entry_evidence"]["properties"]
    result: dict[str, Any] = {}
    for name, run in evidence.items():
        ref = str((runs.get(name) or {}).get("$ref", "")).rsplit("/", 1)[-1]
        if ref in defs and isinstance(run, Mapping):
            allowed = defs[ref].get("properties") or {}
            result[name] = {k: copy.deepcopy(v) for k, v in run.items() if k in allowed}
    return result


def _downgrade_claim(claim: Mapping[str, Any], scalar: bool = True) -> dict[str, Any]:
    result = {k: copy.deepcopy(v) for k, v in claim.items() if k != "impact"}
    if "sources" in result:
        result["sources"] = [{k: v for k, v in s.items() if k not in _V2_SOURCE_FIELDS} for s in result["sources"]]
    impact = dict(claim.get("impact") or {})
    if impact.get("classification") == "inert" and impact.get("measured_by") != SWINDEX:
        result["status"] = "inert"
    elif impact.get("classification") == "inert" and result.get("status") == "detected":
        result["status"] = "inert"
    if scalar and impact.get("measured_by") == SWINDEX:
        v1_impact = {k: impact[k] for k in _IMPACT_FIGURES if k in impact}
        v1_impact["classification"] = impact["classification"]
        result["evidence"] = dict(result.get("evidence") or {}, impact=v1_impact)
    return result
