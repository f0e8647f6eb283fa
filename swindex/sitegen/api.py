"""The static JSON API: an index, one document per model, a full dump and the schema, each stamped.

Version 2 (``api/v2/``) speaks swindex's Python names: each entry is ``Entry.public_dict()`` (the registry
fields plus ``super_weights`` and ``verdict.text``), and every link is absolute, under the site's
``site_url``. Version 1 (``api/v1/``) is the same data converted by ``swindex.migrate.downgrade`` into the
schema-1 shapes its readers know (relative links, as before), kept until ``API_V1_UNTIL``.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..claims import STANDING_STATUSES
from ..migrate import downgrade
from ..records import OUTCOMES, SCHEMA_VERSION
from ..schema import entry_schema_v1
from .pages import ModelView, derived_counts
from .urls import API_ROOT, API_V1_ROOT, absolute, api_model_path, relative

DERIVED_FIELDS = ("super_weights", "keep_benefit")
"""Top-level fields the API adds to an entry (besides ``verdict.text``); ``stored_entry`` removes them."""

V1_STANDING = STANDING_STATUSES
"""Statuses schema 1's ``standing`` counted: the same three that stand today (`swindex.claims`, the rule's home)."""


def v1_statuses() -> tuple[str, ...]:
    """Schema 1's statuses in its order (``inert`` among them), from the schema-1 file the v1 API publishes."""
    return tuple(entry_schema_v1()["$defs"]["status"]["enum"])


def _stamp(generated: str, version: int = SCHEMA_VERSION) -> dict[str, Any]:
    return {"schema_version": version, "generated": generated}


def stored_entry(public: Mapping[str, Any]) -> dict[str, Any]:
    """An API entry back in the registry's stored fields (what a registry file holds and the schema checks)."""
    entry = {k: copy.deepcopy(v) for k, v in public.items() if k not in DERIVED_FIELDS}
    if isinstance(entry.get("verdict"), Mapping):
        entry["verdict"] = {k: v for k, v in entry["verdict"].items() if k != "text"}
    return entry


def totals(views: Sequence[ModelView]) -> dict[str, Any]:
    """The counts the home page shows: models by verdict outcome, super weights, claims, derived checkpoints."""
    outcomes = Counter(v.verdict.outcome for v in views)
    return {
        "models": len(views),
        "outcomes": {outcome: outcomes[outcome] for outcome in OUTCOMES},
        "super_weights": sum(v.active_count for v in views),
        "claims": sum(v.claim_count for v in views),
        "derived": derived_totals(views),
    }


def derived_totals(views: Sequence[ModelView]) -> dict[str, Any]:
    """Derived checkpoints checked across the registry, by outcome, and how many models had one lose its weights."""
    rows = [row for view in views for row in view.derived]
    return {
        "checkpoints": len(rows),
        "outcomes": derived_counts(rows),
        "models_with_lost": sum(1 for view in views if view.derived_counts.get("lost")),
    }


def _identity(view: ModelView, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that name a model in both API versions' index rows."""
    return {
        "id": view.id,
        "aliases": list(entry.get("aliases") or []),
        "organisation": view.org or None,
        "family": entry.get("family"),
        "architecture": entry.get("architecture"),
        "parameters": entry.get("parameters"),
        "size": view.size or None,
        "scanned": view.scanned,
    }


def model_summary(view: ModelView, site_url: str) -> dict[str, Any]:
    e = view.entry
    return {
        **_identity(view, e),
        "verdict": copy.deepcopy(dict(view.public.get("verdict") or {})),
        "super_weights": list(view.super_weight_coordinates),
        "layers": list(view.active_layers),
        "claims": view.claim_count,
        "statuses": list(view.statuses),
        "modified": e.get("modified"),
        "derived": view.derived_counts if view.derived else None,
        "url": absolute(site_url, view.api_path),
        "page": absolute(site_url, view.url),
    }


def _links(site_url: str) -> dict[str, str]:
    return {name: absolute(site_url, f"{API_ROOT}/{name}.json") for name in ("models", "all", "schema")}


def index_document(views: Sequence[ModelView], generated: str, site_url: str) -> dict[str, Any]:
    return {
        **_stamp(generated),
        "count": len(views),
        "totals": totals(views),
        "links": _links(site_url),
        "models": [model_summary(v, site_url) for v in views],
    }


def _item(view: ModelView, site_url: str) -> dict[str, Any]:
    return {
        "path": f"registry/{view.registry_path}",
        "url": absolute(site_url, view.api_path),
        "page": absolute(site_url, view.url),
        "entry": copy.deepcopy(dict(view.public)),
    }


def model_document(view: ModelView, generated: str, site_url: str) -> dict[str, Any]:
    """One model: its entry (``evidence.derived_checks`` holds each derived checkpoint) and the derived counts."""
    derived = view.derived_counts if view.derived else None
    return {**_stamp(generated), "id": view.id, **_item(view, site_url), "derived": derived}


def all_document(views: Sequence[ModelView], generated: str, site_url: str) -> dict[str, Any]:
    return {**_stamp(generated), "count": len(views), "entries": [_item(v, site_url) for v in views]}


def schema_document(schema: Mapping[str, Any], generated: str, version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The entry schema with the two stamps added as top-level annotations (JSON Schema ignores unknown keywords)."""
    document = copy.deepcopy(dict(schema))
    document.update(_stamp(generated, version))
    return document


# Version 1: schema-1 entries and the index fields its readers used.


def v1_entry(view: ModelView) -> dict[str, Any]:
    """The entry as a schema-1 reader expects it (statuses ``inert`` restored from the measured impact)."""
    return downgrade(view.entry)


def v1_summary(view: ModelView, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Schema 1's index row: ``super_weights`` counted every claim, ``standing`` the standing ones
    (`V1_STANDING`)."""
    claims = entry.get("super_weights") or []
    present = {c.get("status") for c in claims} | {f.get("status") for f in entry.get("other_findings") or []}
    standing = [c for c in claims if c.get("status") in V1_STANDING]
    return {
        **_identity(view, entry),
        "super_weights": len(claims),
        "standing": len(standing),
        "layers": sorted({c["layer"] for c in claims if isinstance(c.get("layer"), int)}),
        "standing_layers": sorted({c["layer"] for c in standing if isinstance(c.get("layer"), int)}),
        "statuses": [s for s in v1_statuses() if s in present],
        "modified": entry.get("modified"),
        "url": relative(f"{API_V1_ROOT}/", api_model_path(view.id, API_V1_ROOT)),
        "page": relative(f"{API_V1_ROOT}/", view.url),
    }


def v1_documents(views: Sequence[ModelView], generated: str, schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every api/v1/ document by its path under the site root."""
    entries = [(view, v1_entry(view)) for view in views]
    stamp = _stamp(generated, 1)
    documents = {
        f"{API_V1_ROOT}/models.json": {**stamp, "count": len(views), "models": [v1_summary(v, e) for v, e in entries]},
        f"{API_V1_ROOT}/all.json": {
            **stamp,
            "count": len(views),
            "entries": [{"path": f"registry/{v.registry_path}", "entry": e} for v, e in entries],
        },
        f"{API_V1_ROOT}/schema.json": schema_document(schema, generated, 1),
    }
    for view, entry in entries:
        documents[api_model_path(view.id, API_V1_ROOT)] = {
            **stamp,
            "id": view.id,
            "path": f"registry/{view.registry_path}",
            "entry": entry,
        }
    return documents


def v2_documents(
    views: Sequence[ModelView], generated: str, schema: Mapping[str, Any], site_url: str
) -> dict[str, dict[str, Any]]:
    """Every api/v2/ document by its path under the site root."""
    documents = {
        f"{API_ROOT}/models.json": index_document(views, generated, site_url),
        f"{API_ROOT}/all.json": all_document(views, generated, site_url),
        f"{API_ROOT}/schema.json": schema_document(schema, generated),
    }
    for view in views:
        documents[view.api_path] = model_document(view, generated, site_url)
    return documents


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"
