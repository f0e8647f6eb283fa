"""Typed, immutable views of registry entries; the YAML dict stays the source of truth (``to_dict``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

SCHEMA_VERSION = 1

STATUSES = ("confirmed", "reported", "detected", "unverified", "disputed", "inert", "withdrawn")
ACTIVE_STATUSES = ("confirmed", "reported", "detected")
"""Statuses of claims a user can act on; the others are kept for the record and shown, not applied."""


def frozen(value: Any) -> Any:
    """A read-only deep view: mappings become MappingProxyType, lists tuples, so a cached entry cannot be edited by accident."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(item) for item in value)
    return value


def thawed(value: Any) -> Any:
    """Plain dicts and lists again (what ``frozen`` took), for YAML, JSON and callers that edit their copy."""
    if isinstance(value, Mapping):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thawed(item) for item in value]
    return value


def format_coordinate(tensor: str, index: tuple[int, ...] | list[int]) -> str:
    """The canonical text form of a coordinate, e.g. ``model.layers.2.mlp.down_proj.weight[3968, 7003]``."""
    return f"{tensor}[{', '.join(str(int(i)) for i in index)}]"


@dataclass(frozen=True)
class Source:
    """Who reported a claim, where, and in their own words."""

    citation: str
    kind: str
    evidence: str
    url: str | None = None
    quote: str | None = None
    date: str | None = None
    value: float | None = None
    effect: str | None = None
    measurements: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Source":
        return cls(
            citation=d["citation"],
            kind=d["kind"],
            evidence=d["evidence"],
            url=d.get("url"),
            quote=d.get("quote"),
            date=d.get("date"),
            value=d.get("value"),
            effect=d.get("effect"),
            measurements=frozen(d.get("measurements") or {}),
        )


@dataclass(frozen=True)
class SuperWeight:
    """One scalar super-weight claim: where it sits in the model, how sure we are, and why."""

    layer: int
    tensor: str
    row: int
    column: int
    expert: int | None
    index: tuple[int, ...]
    status: str
    sources: tuple[Source, ...]
    value: float | None = None
    value_dtype: str | None = None
    notes: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SuperWeight":
        return cls(
            layer=d["layer"],
            tensor=d["tensor"],
            row=d["row"],
            column=d["column"],
            expert=d.get("expert"),
            index=tuple(d["index"]),
            status=d["status"],
            sources=tuple(Source.from_dict(s) for s in d["sources"]),
            value=d.get("value"),
            value_dtype=d.get("value_dtype"),
            notes=d.get("notes"),
            evidence=frozen(d.get("evidence") or {}),
        )

    @property
    def coordinate(self) -> str:
        """``tensor[i, j]``: paste-able and unique within an entry."""
        return format_coordinate(self.tensor, self.index)

    @property
    def module(self) -> str:
        """Name of the module holding the tensor (the tensor name without its parameter suffix)."""
        return self.tensor.rsplit(".", 1)[0]

    @property
    def active(self) -> bool:
        """Whether the claim stands (confirmed, reported or detected) rather than being disputed, inert or withdrawn."""
        return self.status in ACTIVE_STATUSES

    def __str__(self) -> str:
        expert = f" expert {self.expert}" if self.expert is not None else ""
        value = f" value {self.value:g}" if self.value is not None else ""
        return f"layer {self.layer}{expert} row {self.row} column {self.column}  {self.coordinate}{value}  [{self.status}]"


@dataclass(frozen=True)
class Finding:
    """A report that is not a scalar coordinate: a whole row, or a whole expert."""

    kind: str
    layer: int | None
    status: str
    sources: tuple[Source, ...]
    module: str | None = None
    row: int | None = None
    expert: int | None = None
    notes: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Finding":
        return cls(
            kind=d["kind"],
            layer=d.get("layer"),
            status=d["status"],
            sources=tuple(Source.from_dict(s) for s in d["sources"]),
            module=d.get("module"),
            row=d.get("row"),
            expert=d.get("expert"),
            notes=d.get("notes"),
        )


@dataclass(frozen=True)
class Disagreement:
    """Sources that contradict each other about some coordinates, kept visible."""

    summary: str
    claims: tuple[str, ...]
    resolution: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Disagreement":
        return cls(summary=d["summary"], claims=tuple(d["claims"]), resolution=d.get("resolution"))


@dataclass(frozen=True)
class Entry:
    """One model's registry entry."""

    id: str
    architecture: str
    modified: str
    super_weights: tuple[SuperWeight, ...]
    aliases: tuple[str, ...] = ()
    family: str | None = None
    parameters: int | None = None
    revision: str | None = None
    dimensions: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    other_findings: tuple[Finding, ...] = ()
    disagreements: tuple[Disagreement, ...] = ()
    notes: str | None = None
    schema_version: int = SCHEMA_VERSION
    path: str | None = field(default=None, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | None = None) -> "Entry":
        """Build from a registry-format dict that already passed validation."""
        return cls(
            id=d["id"],
            architecture=d["architecture"],
            modified=d["modified"],
            super_weights=tuple(SuperWeight.from_dict(s) for s in d["super_weights"]),
            aliases=tuple(d.get("aliases") or ()),
            family=d.get("family"),
            parameters=d.get("parameters"),
            revision=d.get("revision"),
            dimensions=frozen(d.get("dimensions") or {}),
            other_findings=tuple(Finding.from_dict(f) for f in d.get("other_findings") or ()),
            disagreements=tuple(Disagreement.from_dict(x) for x in d.get("disagreements") or ()),
            notes=d.get("notes"),
            schema_version=d.get("schema_version", SCHEMA_VERSION),
            path=path,
            raw=frozen(d),
        )

    @property
    def evidence(self) -> Mapping[str, Any]:
        """Entry-level evidence: the latest detection run (per-layer maxima) and verification run."""
        return self.raw.get("evidence") or {}

    @property
    def active_super_weights(self) -> tuple[SuperWeight, ...]:
        """The claims that stand: confirmed, reported or detected, in registry order, each coordinate once."""
        seen: set[str] = set()
        result = []
        for sw in self.super_weights:
            if sw.active and sw.coordinate not in seen:
                seen.add(sw.coordinate)
                result.append(sw)
        return tuple(result)

    @property
    def organisation(self) -> str:
        return self.id.split("/", 1)[0] if "/" in self.id else ""

    def to_dict(self) -> dict[str, Any]:
        """The entry in the registry's own field names, as stored in its YAML file."""
        return thawed(self.raw)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def __str__(self) -> str:
        lines = [f"{self.id}  ({self.architecture}{', revision ' + self.revision[:12] if self.revision else ''})"]
        if not self.super_weights:
            lines.append("  no super weight recorded")
        for sw in self.super_weights:
            lines.append(f"  {sw}")
        for finding in self.other_findings:
            parts = [f"layer {finding.layer}" if finding.layer is not None else ""]
            parts.append(f"row {finding.row}" if finding.kind == "row" and finding.row is not None else "")
            parts.append(f"expert {finding.expert}" if finding.kind == "expert" and finding.expert is not None else "")
            parts.append((finding.module or "") if not any(parts) else "")
            where = " ".join(p for p in parts if p) or "see its sources"
            lines.append(f"  ({finding.kind}-level finding, not a coordinate) {where}  [{finding.status}]")
        for d in self.disagreements:
            lines.append(f"  disagreement: {d.summary}")
        return "\n".join(lines)
