"""Typed, immutable views of registry entries; the YAML dict stays the source of truth (``to_dict``)."""

from __future__ import annotations

from types import MappingProxyType

from ._record import Record, field, fields

TYPE_CHECKING = False
if TYPE_CHECKING:  # the rules, layout and benefit modules load on first use: a lookup builds records, nothing more
    from typing import Any, Mapping

    from .benefit import BenefitRow, BenefitTable

SCHEMA_VERSION = 2

STATUSES = ("confirmed", "reported", "detected", "unverified", "disputed", "withdrawn")
"""Provenance: where a claim came from and whether sources agree (impact is a separate fact)."""
IMPACTS = ("critical", "significant", "inert", "unmeasured")
"""What zeroing a weight measurably does (see swindex.claims for the thresholds)."""
OUTCOMES = ("super_weights", "no_critical_weight", "not_measured")


_MAPPINGS = (dict, MappingProxyType)
"""What registry data holds as mappings (parsed files, and frozen views of them); collections.abc is not imported."""


def frozen(value: Any) -> Any:
    """A read-only deep view: mappings become MappingProxyType, lists tuples, so a cached entry cannot be edited by
    accident."""
    if isinstance(value, _MAPPINGS):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(item) for item in value)
    return value


def thawed(value: Any) -> Any:
    """Plain dicts and lists again (what ``frozen`` took), for YAML, JSON and callers that edit their copy."""
    if isinstance(value, _MAPPINGS):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thawed(item) for item in value]
    return value


class Source(Record):
    """Who reported a claim, where, and in their own words."""

    citation: str
    kind: str
    evidence: str
    url: str | None = None
    quote: str | None = None
    date: str | None = None
    value: float | None = None
    effect: str | None = None
    measurements: Mapping[str, Any] = field(default_factory=dict, compare=False)
    party: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Source":
        return cls(
            party=d.get("party"),
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


class Coordinate(Record):
    """Where one scalar sits: the layer, the tensor, its output row and input column, the expert, and the stored index.

    ``row`` and ``column`` are the weight's logical position ([output, input] of the down projection);
    ``index`` is how the stored tensor is indexed, which differs for transposed layouts (see swindex.layout).
    """

    layer: int
    tensor: str
    row: int
    column: int
    expert: int | None
    index: tuple[int, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Coordinate":
        return cls(
            layer=d["layer"],
            tensor=d["tensor"],
            row=d["row"],
            column=d["column"],
            expert=d.get("expert"),
            index=tuple(d["index"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "tensor": self.tensor,
            "row": self.row,
            "column": self.column,
            "expert": self.expert,
            "index": list(self.index),
        }

    @property
    def module(self) -> str:
        """Name of the module holding the tensor (the tensor name without its parameter suffix)."""
        return self.tensor.rsplit(".", 1)[0]

    def __str__(self) -> str:
        from .layout import format_coordinate

        return format_coordinate(self.tensor, self.index)


class RatioBound(Record):
    """A confidence bound on a measured figure (swindex verification: the whole text's perplexity ratio)."""

    low: float
    high: float
    confidence: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RatioBound":
        return cls(float(d["low"]), float(d["high"]), float(d["confidence"]))

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "confidence": self.confidence}

    def __str__(self) -> str:
        return f"{self.confidence:.1%} bound [{self.low:.4g}, {self.high:.4g}]"


class Impact(Record):
    """What zeroing one weight measurably does, and who measured it (``swindex`` or a source's citation)."""

    classification: str = "unmeasured"
    measured_by: str | None = None
    metric: str | None = None
    original: float | None = None
    zeroed: float | None = None
    ratio: float | None = None
    super_activation: float | None = None
    super_activation_zeroed: float | None = None
    similarity_shift: float | None = None
    tokens: int | None = None  # predicted tokens the measurement used (swindex stops once the class is settled)
    bound: RatioBound | None = None  # the confidence bound on ``ratio`` that settled the class
    date: str | None = None
    note: str | None = None
    scale_curve: tuple[tuple[float, float], ...] | None = (
        None  # (scale, metric / original): the weight multiplied by scale
    )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Impact":
        d = d or {}
        known: dict[str, Any] = {f.name: d.get(f.name) for f in fields(cls) if f.name in d}
        if known.get("scale_curve") is not None:
            known["scale_curve"] = tuple((float(p["scale"]), float(p["ratio"])) for p in known["scale_curve"])
        if isinstance(known.get("bound"), _MAPPINGS):
            known["bound"] = RatioBound.from_dict(known["bound"])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        result = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if self.scale_curve is not None:
            result["scale_curve"] = [{"scale": s, "ratio": r} for s, r in self.scale_curve]
        if self.bound is not None:
            result["bound"] = self.bound.to_dict()
        return result

    @property
    def measured(self) -> bool:
        return self.classification != "unmeasured"

    def __str__(self) -> str:
        if not self.measured:
            return "unmeasured"
        if self.metric == "perplexity" and self.ratio is not None and self.bound is not None:
            # settled on part of the text: the ratio is an estimate, and its bound is what the class rests on
            tokens = f" after {self.tokens} tokens" if self.tokens is not None else ""
            return f"{self.classification} (perplexity ~x{self.ratio:.3g}, {self.bound}{tokens})"
        if self.metric == "perplexity" and self.ratio is not None:
            return f"{self.classification} (perplexity x{self.ratio:.3g})"
        if self.metric == "embedding_shift" and self.ratio is not None:
            return f"{self.classification} (embedding shift {self.ratio:.3g})"
        return self.classification


class Located:
    """What holds a weight's position reads it through its ``location``: the one type for a position is Coordinate.

    Claims and detected candidates read layer, tensor, row, column, expert and index from it, with one meaning; a
    checked weight (``swindex.checkpoint.WeightCheck``) carries the same Coordinate beside the tensor and index of the
    checkpoint it was read from.
    """

    location: Coordinate

    layer = property(lambda self: self.location.layer, doc="0-based layer index.")
    tensor = property(lambda self: self.location.tensor, doc="Full parameter name.")
    row = property(lambda self: self.location.row, doc="Output channel (the super activation's hidden channel).")
    column = property(lambda self: self.location.column, doc="Input channel (the intermediate channel feeding it).")
    expert = property(lambda self: self.location.expert, doc="Expert index, None for dense layers.")
    index = property(lambda self: self.location.index, doc="Index into the stored tensor.")
    module = property(lambda self: self.location.module, doc="Name of the module holding the tensor.")

    @property
    def coordinate(self) -> str:
        """``tensor[i, j]``: paste-able and unique within an entry (``location`` is the typed form)."""
        return str(self.location)


class Claim(Located, Record):
    """One scalar claim: where it sits (coordinate), where it came from (status, sources) and what zeroing it does
    (impact)."""

    location: Coordinate
    status: str
    impact: Impact
    sources: tuple[Source, ...]
    value: float | None = None
    value_dtype: str | None = None
    notes: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Claim":
        return cls(
            location=Coordinate.from_dict(d),
            status=d["status"],
            impact=Impact.from_dict(d.get("impact")),
            sources=tuple(Source.from_dict(s) for s in d["sources"]),
            value=d.get("value"),
            value_dtype=d.get("value_dtype"),
            notes=d.get("notes"),
            evidence=frozen(d.get("evidence") or {}),
        )

    @property
    def standing(self) -> bool:
        """Whether the claim's provenance stands (confirmed, reported or detected) rather than being unverified,
        disputed or withdrawn."""
        from .claims import is_standing

        return is_standing(self)

    @property
    def is_super_weight(self) -> bool:
        """A super weight: standing and measured critical, or published and not yet measured (``swindex.claims``)."""
        from .claims import is_super_weight

        return is_super_weight(self)

    @property
    def active(self) -> bool:
        """Deprecated spelling of ``is_super_weight`` (schema 1 called standing claims active)."""
        return self.is_super_weight

    def __str__(self) -> str:
        expert = f" expert {self.expert}" if self.expert is not None else ""
        value = f" value {self.value:g}" if self.value is not None else ""
        where = f"layer {self.layer}{expert} row {self.row} column {self.column}"
        return f"{where}  {self.coordinate}{value}  [{self.status}; {self.impact}]"


SuperWeight = Claim
"""The name schema 1 used for a claim; kept so existing code keeps working."""


class Verdict(Record):
    """What an entry's claims add up to: N super weights, no single critical weight, or not measured."""

    outcome: str = "not_measured"
    super_weights: int = 0
    candidates: int | None = None
    joint_ratio: float | None = None
    metric: str | None = None
    measured_by: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Verdict":
        d = d or {}
        known: dict[str, Any] = {f.name: d.get(f.name) for f in fields(cls) if d.get(f.name) is not None}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        result = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if self.outcome != "super_weights" and not self.super_weights:
            result.pop("super_weights", None)
        return result

    @property
    def text(self) -> str:
        """The verdict in words, as every front end prints it."""
        if self.outcome == "super_weights":
            return f"{self.super_weights} super weight{'' if self.super_weights == 1 else 's'}"
        if self.outcome == "no_critical_weight":
            parts = (
                [f"{self.candidates} candidate{'' if self.candidates == 1 else 's'} measured"]
                if self.candidates is not None
                else []
            )
            if self.joint_ratio is not None:
                parts.append(
                    f"jointly x{self.joint_ratio:.3g}"
                    if self.metric in (None, "perplexity")
                    else f"jointly an embedding shift of {self.joint_ratio:.3g}"
                )
            return "no single weight is critical" + (f" ({'; '.join(parts)})" if parts else "")
        return "not measured"

    def __str__(self) -> str:
        return self.text


class Finding(Record):
    """A report that is not a scalar coordinate: a whole row, or a whole expert."""

    kind: str
    layer: int | None
    status: str
    sources: tuple[Source, ...]
    module: str | None = None
    row: int | None = None
    expert: int | None = None
    notes: str | None = None
    impact: Impact = Impact()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Finding":
        return cls(
            kind=d["kind"],
            layer=d.get("layer"),
            status=d["status"],
            impact=Impact.from_dict(d.get("impact")),
            sources=tuple(Source.from_dict(s) for s in d["sources"]),
            module=d.get("module"),
            row=d.get("row"),
            expert=d.get("expert"),
            notes=d.get("notes"),
        )


class Disagreement(Record):
    """Sources that contradict each other about some coordinates, kept visible."""

    summary: str
    claims: tuple[str, ...]
    resolution: str | None = None
    origin: str = "people"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Disagreement":
        return cls(
            summary=d["summary"],
            claims=tuple(d["claims"]),
            resolution=d.get("resolution"),
            origin=d.get("origin") or "people",
        )


class Artifact(Record):
    """The exact file a model was measured from: a quantized copy's figures describe that copy, not its base model."""

    file: str
    sha256: str
    format: str
    quantization: str | None = None
    #: the Hub repository and commit the file comes from, when known (a Hub cache path, or given by the caller)
    repository: str | None = None
    revision: str | None = None
    #: how ``repository`` is known when nobody recorded where the file came from: "byte_size" (a file of that
    #: repository has exactly this size), "sha256" (its published checksum matches); None when it was recorded
    repository_inferred_from: str | None = None

    def to_dict(self) -> dict[str, str]:
        """The registry's `artifact` object (unknown fields left out)."""
        return {spec.name: value for spec in fields(self) if (value := getattr(self, spec.name)) is not None}

    def describe(self) -> str:
        """One line for people: file, format and quantization, checksum and origin."""
        kind = " ".join(x for x in (self.format.upper(), self.quantization) if x)
        inferred = (
            f" (inferred from the {self.repository_inferred_from.replace('_', ' ')})"
            if self.repository_inferred_from
            else ""
        )
        origin = (
            f"; {self.repository}" + (f"@{self.revision[:12]}" if self.revision else "") + inferred
            if self.repository
            else ""
        )
        return f"{self.file} ({kind}, sha256 {self.sha256[:16]}...{origin})"


def with_artifact(
    entry: Mapping[str, Any],
    artifact: Artifact | Mapping[str, Any] | None,
    runs: tuple[str, ...] = ("detection", "verification"),
) -> dict[str, Any]:
    """A copy of an entry whose detection/verification run evidence (those present) records the artifact measured."""
    import copy

    result = copy.deepcopy(dict(entry))
    if artifact is None:
        return result
    record = artifact.to_dict() if isinstance(artifact, Artifact) else dict(artifact)
    evidence = result.get("evidence")
    if isinstance(evidence, dict):
        for run in runs:
            if isinstance(evidence.get(run), dict):
                evidence[run]["artifact"] = dict(record)
    return result


class Entry(Record):
    """One model's registry entry."""

    id: str
    architecture: str
    modified: str
    claims: tuple[Claim, ...]
    verdict: Verdict = Verdict()
    aliases: tuple[str, ...] = ()
    family: str | None = None
    parameters: int | None = None
    revision: str | None = None
    dimensions: Mapping[str, Any] = field(default_factory=dict, compare=False)
    other_findings: tuple[Finding, ...] = ()
    disagreements: tuple[Disagreement, ...] = ()
    notes: str | None = None
    schema_version: int = SCHEMA_VERSION
    path: str | None = field(default=None, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | None = None) -> "Entry":
        """Build from a registry-format dict that already passed validation."""
        return cls(
            id=d["id"],
            architecture=d["architecture"],
            modified=d["modified"],
            claims=tuple(Claim.from_dict(s) for s in d["claims"]),
            verdict=Verdict.from_dict(d.get("verdict")),
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
    def benefit(self) -> BenefitTable | None:
        """What keeping buys, measured per quantization scheme (``evidence.keep_benefit``); None when not measured."""
        from .benefit import BenefitTable

        table = self.evidence.get("keep_benefit")
        return BenefitTable.from_dict(table) if table else None

    def keep_benefit(self, scheme: str) -> BenefitRow | None:
        """The measured row for keeping the weights to keep under ``scheme`` (a key of swindex.benefit.SCHEMES).

        None when this model was not measured under it; the other sites measured as controls are in
        ``entry.benefit.for_scheme(scheme)``.
        """
        from .benefit import SCHEMES, BenefitError

        if scheme not in SCHEMES:
            raise BenefitError(f"unknown quantization scheme {scheme!r}; the schemes are {', '.join(SCHEMES)}")
        table = self.benefit
        rows = [r for r in table.for_scheme(scheme) if r.why == "weights_to_keep"] if table else []
        return rows[0] if rows else None

    @property
    def super_weights(self) -> tuple[Claim, ...]:
        """The super weights, what a user should zero or keep: standing claims measured critical (or published and
        not yet measured).

        Each coordinate once, in registry order; ``claims`` holds everything else for the record.
        """
        from .claims import super_weights

        return super_weights(self.claims)

    @property
    def weights_to_keep(self) -> tuple[Claim, ...]:
        """What quantization should hold out: every standing claim not measured harmless.

        That is the super weights, those measured significant and candidates nobody measured yet: holding
        out a scalar costs nothing, losing a super weight costs the model.
        """
        from .claims import weights_to_keep

        return weights_to_keep(self.claims)

    def keep_for(self, tool: str, **options: Any) -> Any:
        """The weights to keep as a quantizer takes them (``swindex.keep.keep_for``): llama.cpp, bitsandbytes,
        llm-compressor, autoround, gptqmodel, autoawq, json or csv. Returns a ``swindex.keep.Export``."""
        from .keep import keep_for

        return keep_for(self, tool, **options)

    @property
    def organisation(self) -> str:
        return self.id.split("/", 1)[0] if "/" in self.id else ""

    def to_dict(self) -> dict[str, Any]:
        """The entry in the registry's own field names, as stored in its YAML file."""
        return thawed(self.raw)

    def to_json(self, indent: int | None = 2) -> str:
        """The entry as the JSON API publishes it (``public_dict``)."""
        import json

        return json.dumps(self.public_dict(), indent=indent, ensure_ascii=False)

    def public_dict(self) -> dict[str, Any]:
        """The registry fields plus what Python derives, under the same names: ``super_weights`` (their
        coordinates, keys into ``claims``), ``verdict.text`` and, when measured, ``keep_benefit`` (each scheme's
        verdict and advice sentence, where keeping helps first)."""
        from .benefit import TOOL_SCHEMES, advice

        result = self.to_dict()
        result["verdict"] = dict(result.get("verdict") or {}, text=self.verdict.text)
        result["super_weights"] = [c.coordinate for c in self.super_weights]
        table = self.benefit
        if table is not None:
            tools = {s: t for t, keys in TOOL_SCHEMES.items() for s in keys}
            result["keep_benefit"] = [
                {
                    "scheme": r.scheme,
                    "label": r.label,
                    "tool": tools.get(r.scheme),
                    "kept": list(r.kept),
                    "why": r.why,
                    "verdict": r.verdict,
                    "advice": advice(r),
                }
                for r in table.ordered()
            ]
        return result

    @property
    def layers(self) -> tuple[int, ...]:
        """The layers holding super weights."""
        return tuple(sorted({c.layer for c in self.super_weights}))

    def __str__(self) -> str:
        lines = [f"{self.id}  ({self.architecture}{', revision ' + self.revision[:12] if self.revision else ''})"]
        marked = (
            " (* marks them; the other claims are on record)"
            if self.super_weights and len(self.claims) > len(self.super_weights)
            else ""
        )
        lines.append(f"  verdict: {self.verdict.text}{marked}")
        for claim in self.claims:
            lines.append(f"  {'*' if claim.is_super_weight else ' '} {claim}")
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


def __getattr__(name: str) -> Any:
    """Names this module once re-exported, loaded on first use so that building records imports nothing more."""
    if name == "format_coordinate":
        from .layout import format_coordinate

        return format_coordinate
    if name == "STANDING_STATUSES":
        from .claims import STANDING_STATUSES

        return STANDING_STATUSES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
