"""The static JSON API: an index, one document per model, a full dump and the schema, each stamped."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..records import SCHEMA_VERSION
from .pages import ModelView
from .urls import API_ROOT, relative


def _stamp(generated: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "generated": generated}


def model_summary(view: ModelView) -> dict[str, Any]:
    e = view.entry
    return {
        "id": view.id,
        "aliases": list(e.get("aliases") or []),
        "organisation": view.org or None,
        "family": e.get("family"),
        "architecture": e.get("architecture"),
        "parameters": e.get("parameters"),
        "size": view.size or None,
        "scanned": view.scanned,
        "verdict": dict(e.get("verdict") or {}, text=view.verdict_text),
        "super_weights": list(view.super_weight_coordinates),
        "layers": list(view.active_layers),
        "claims": len(view.weights),
        "statuses": list(view.statuses),
        "modified": e.get("modified"),
        "url": relative(f"{API_ROOT}/", view.api_path),
        "page": relative(f"{API_ROOT}/", view.url),
    }


def index_document(views: Sequence[ModelView], generated: str) -> dict[str, Any]:
    return {**_stamp(generated), "count": len(views), "models": [model_summary(v) for v in views]}


def model_document(view: ModelView, generated: str) -> dict[str, Any]:
    return {**_stamp(generated), "id": view.id, "path": f"registry/{view.registry_path}", "entry": copy.deepcopy(dict(view.entry))}


def all_document(views: Sequence[ModelView], generated: str) -> dict[str, Any]:
    return {
        **_stamp(generated),
        "count": len(views),
        "entries": [{"path": f"registry/{v.registry_path}", "entry": copy.deepcopy(dict(v.entry))} for v in views],
    }


def schema_document(schema: Mapping[str, Any], generated: str) -> dict[str, Any]:
    """The entry schema with the two stamps added as top-level annotations (JSON Schema ignores unknown keywords)."""
    document = copy.deepcopy(dict(schema))
    document.update(_stamp(generated))
    return document


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"
