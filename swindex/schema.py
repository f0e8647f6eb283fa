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
    """A compiled jsonschema validator for entries; jsonschema is imported only when validating."""
    import jsonschema

    schema = entry_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
