"""The one JSON Schema every registry entry follows, loaded once from inside the package."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "entry.schema.json"


@lru_cache(maxsize=1)
def entry_schema() -> dict[str, Any]:
    """The entry schema (draft 2020-12) as shipped in the wheel."""
    return json.loads(resources.files("swindex.data").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def entry_validator() -> Any:
    """A compiled jsonschema validator for entries; jsonschema is imported only when validating.

    Integers are strict: JSON Schema would accept 2.0 for an integer, but a coordinate written as a float
    was almost always typed or generated wrongly, and indexing a tensor with it fails later.
    """
    import jsonschema

    schema = entry_schema()
    base = jsonschema.Draft202012Validator
    base.check_schema(schema)
    strict_integers = base.TYPE_CHECKER.redefine("integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=strict_integers)(schema)
