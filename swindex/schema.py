"""The one JSON Schema every registry entry follows, loaded once from inside the package."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "entry.schema.json"
V1_SCHEMA_FILE = "entry.schema.v1.json"
"""Schema 1, as published at api/v1/schema.json: kept for the v1 API until its readers have moved."""


@lru_cache(maxsize=1)
def entry_schema() -> dict[str, Any]:
    """The entry schema (draft 2020-12) as shipped in the wheel."""
    return json.loads(resources.files("swindex.data").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def entry_schema_v1() -> dict[str, Any]:
    """Schema 1 as it was published (what ``swindex.migrate.downgrade`` must produce)."""
    return json.loads(resources.files("swindex.data").joinpath(V1_SCHEMA_FILE).read_text(encoding="utf-8"))


def _inline_refs(node: Any, defs: dict[str, Any], inside: tuple[str, ...] = ()) -> Any:
    """The schema with each ``#/$defs/...`` reference replaced by a copy of its target (recursive ones kept).

    The same rules, checked about twice as fast: jsonschema otherwise resolves a reference at every
    item of every list, which dominates validating a large file.
    """
    if isinstance(node, list):
        return [_inline_refs(item, defs, inside) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if (
        isinstance(ref, str)
        and ref.startswith("#/$defs/")
        and (name := ref.rsplit("/", 1)[1]) in defs
        and name not in inside
    ):
        target = _inline_refs(defs[name], defs, (*inside, name))
        rest = {k: _inline_refs(v, defs, inside) for k, v in node.items() if k != "$ref"}
        return {"allOf": [target], **rest} if rest else target
    return {k: (v if k == "$defs" else _inline_refs(v, defs, inside)) for k, v in node.items()}


@lru_cache(maxsize=1)
def entry_validator() -> Any:
    """A compiled jsonschema validator for entries; jsonschema is imported only when validating.

    Integers are strict: JSON Schema would accept 2.0 for an integer, but a coordinate written as a float
    was almost always typed or generated wrongly, and indexing a tensor with it fails later.
    """
    import jsonschema

    schema = _inline_refs(entry_schema(), entry_schema().get("$defs") or {})
    base = jsonschema.Draft202012Validator
    base.check_schema(schema)
    strict_integers = base.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(base, type_checker=strict_integers)(schema)
