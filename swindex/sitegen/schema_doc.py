"""The schema page's content: one table per object in the JSON Schema, from the schema's own descriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECTION_TITLES = {
    "entry": "Entry (one file)",
    "verdict": "verdict",
    "claim": "claims[]",
    "impact": "claims[].impact",
    "source": "sources[]",
    "weight_detection": "claims[].evidence.detection",
    "finding": "other_findings[]",
    "disagreement": "disagreements[]",
    "entry_evidence": "evidence",
    "detection_run": "evidence.detection",
    "layer_maxima": "evidence.detection.layers[]",
    "verification_run": "evidence.verification",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    description: str
    fields: tuple[Field, ...]


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def describe_type(node: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """A short type phrase for a schema node: 'list of source', 'integer or null', 'one of: a, b'."""
    if "$ref" in node:
        name = _ref_name(node["$ref"])
        target = defs.get(name, {})
        if target.get("type") == "object" or "properties" in target:
            return f"object ({SECTION_TITLES.get(name, name)})"
        return describe_type(target, defs) if target else name
    if "const" in node:
        return f"always {node['const']!r}"
    if "enum" in node:
        return "one of: " + ", ".join(str(v) for v in node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " or ".join(describe_type(option, defs) for option in node[key])
    kind = node.get("type")
    if kind == "array":
        return "list of " + describe_type(node.get("items", {}), defs)
    if kind == "object" and "additionalProperties" in node and isinstance(node["additionalProperties"], Mapping):
        return "mapping of name to " + describe_type(node["additionalProperties"], defs)
    if isinstance(kind, list):
        return " or ".join(kind)
    text = kind or "any"
    if node.get("pattern") and kind == "string":
        if node["pattern"].startswith("^https://"):
            text = "https URL"
        elif "[0-9]{4}-" in node["pattern"]:
            text = "date (YYYY-MM-DD)"
        elif "[0-9a-f]{40}" in node["pattern"]:
            text = "commit sha (40 hex digits)"
    return text


def _description(node: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if node.get("description"):
        return str(node["description"])
    if "$ref" in node:
        return str(defs.get(_ref_name(node["$ref"]), {}).get("description", ""))
    if node.get("type") == "array" and "$ref" in node.get("items", {}):
        return str(defs.get(_ref_name(node["items"]["$ref"]), {}).get("description", ""))
    return ""


def _is_inline_object(node: Mapping[str, Any]) -> bool:
    return "$ref" not in node and isinstance(node.get("properties"), Mapping)


def _inline_items(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object a list holds when it is written inline (``items: {type: object, properties: ...}``)."""
    items = node.get("items") if node.get("type") == "array" else None
    return items if isinstance(items, Mapping) and _is_inline_object(items) else None


def _sections(key: str, title: str, node: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Section]:
    """A section for this object, followed by one for each object written inline inside it."""
    required = set(node.get("required", []))
    fields = []
    nested: list[Section] = []
    for name, child in node.get("properties", {}).items():
        if _is_inline_object(child):
            child_title = f"{title}.{name}" if key != "entry" else name
            fields.append(Field(name, f"object ({child_title})", name in required, _description(child, defs)))
            nested.extend(_sections(f"{key}-{name}", child_title, child, defs))
        elif (items := _inline_items(child)) is not None:
            child_title = f"{title}.{name}[]" if key != "entry" else f"{name}[]"
            fields.append(Field(name, f"list of object ({child_title})", name in required, _description(child, defs)))
            nested.extend(_sections(f"{key}-{name}", child_title, items, defs))
        else:
            fields.append(Field(name, describe_type(child, defs), name in required, _description(child, defs)))
    return [Section(key, title, str(node.get("description", "")), tuple(fields)), *nested]


def schema_sections(schema: Mapping[str, Any]) -> tuple[Section, ...]:
    """The entry first, then every object the entry refers to, in the order a reader meets them."""
    defs = schema.get("$defs", {})
    sections = _sections("entry", SECTION_TITLES["entry"], schema, defs)
    ordered = [k for k in SECTION_TITLES if k in defs] + [k for k in defs if k not in SECTION_TITLES]
    for key in ordered:
        node = defs[key]
        if _is_inline_object(node):
            sections.extend(_sections(key, SECTION_TITLES.get(key, key), node, defs))
    return tuple(sections)
