"""Checks that a registry entry is well formed: the JSON Schema first, then the rules no schema can express."""

from __future__ import annotations

import datetime
import difflib
import math
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .benefit import SCHEMES
from .claims import (
    FIRST_HAND_EVIDENCE,
    GROUNDING_EVIDENCE,
    IMPACT_BANDS,
    SWINDEX,
    SWINDEX_KIND,
    classify,
    coordinate_of,
    derive_verdict,
    figure_of,
    parties,
    status_from_sources,
    verdict_of,
)
from .errors import RegistryFileError, shown
from .layout import expected_index, format_coordinate, held_order, index_order
from .records import Source
from .schema import entry_schema, entry_validator
from .yamlio import field_name, load_yaml_with_lines

_HTML = re.compile(r"<\s*[A-Za-z!/?]")
_LAYER_IN_TENSOR = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")
_EXPERT_IN_TENSOR = re.compile(r"\.experts\.(\d+)\.")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f]"
)
MULTILINE_FIELDS = frozenset({"notes", "quote", "effect", "summary"})
RESERVED_NAMES = frozenset({"index", "readme"})
WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
)
"""Names Windows will not create as files or folders, whatever the extension: a checkout there would fail."""
_HTTPS_ONLY = "links must use https"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one entry, located as precisely as we can: file, line and field."""

    path: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{shown(self.path)}:{self.line}" if self.line else shown(self.path)
        return f"{where}: {shown(self.field) or '(entry)'}: {shown(self.message)}"


def _line_for(lines: Mapping[tuple[Any, ...], int], parts: tuple[Any, ...]) -> int | None:
    while True:
        if parts in lines:
            return lines[parts]
        if not parts:
            return None
        parts = parts[:-1]


def _non_finite(data: Any, where: tuple[Any, ...] = ()) -> Found:
    """Every NaN or infinity, wherever it is: JSON Schema's "number" admits them, and a NaN value would make
    every comparison with it false (so `swindex check` would call any weight kept). YAML refuses them on reading;
    this catches the JSON paths (a registry dump, `update`, an entry dict) too."""
    if isinstance(data, float) and not math.isfinite(data):
        yield (
            where,
            f"{data} is not a finite number; registry numbers are finite (leave a figure out when it is unknown)",
        )
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from _non_finite(value, (*where, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _non_finite(value, (*where, i))


def _strings(data: Any, where: tuple[Any, ...] = ()) -> Iterable[tuple[tuple[Any, ...], str]]:
    if isinstance(data, str):
        yield where, data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from _strings(value, (*where, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*where, i))


def _is_real_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _keys(data: Any, where: tuple[Any, ...] = ()) -> Iterable[tuple[tuple[Any, ...], str]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield (*where, key), key
            yield from _keys(value, (*where, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _keys(value, (*where, i))


def _field_of(where: tuple[Any, ...]) -> Any:
    """The name of the field a value belongs to (an alias's field is ``aliases``)."""
    for part in reversed(where):
        if isinstance(part, str):
            return part
    return None


def _text_problem(where: tuple[Any, ...], text: str) -> str | None:
    """Characters that would let a registry text mislead a reader or a terminal."""
    if match := _CONTROL.search(text):
        return f"control character U+{ord(match.group()):04X} is not allowed; registry text is printable"
    if match := _INVISIBLE.search(text):
        return (
            f"invisible or direction-changing character U+{ord(match.group()):04X} is not allowed: it can make text "
            "display as something it is not"
        )
    if "\n" in text and _field_of(where) not in MULTILINE_FIELDS:
        return "a line break is not allowed here (only in notes, quotes, effects and summaries)"
    return None


def _url_problem(url: str) -> str | None:
    if not url.startswith("https://"):
        return f"{_HTTPS_ONLY} (https://...)"
    if any(c.isspace() for c in url) or not url.isascii():
        return "a URL must be ASCII without spaces; percent-encode anything else"
    parts = urlsplit(url)
    if not parts.hostname or "@" in parts.netloc:
        return "a URL needs a host and no user name or password (nothing before '@')"
    return None


Found = Iterable[tuple[tuple[Any, ...], str]]


@dataclass(frozen=True)
class _Context:
    """What several rules need, worked out once per entry."""

    data: Mapping[str, Any]
    dims: Mapping[str, Any]
    coordinates: Mapping[str, int]
    disputed: frozenset[str]


def _text_rule(ctx: _Context) -> Found:
    """Registry text is plain, printable and unambiguous; URLs are https with a visible host; dates exist."""
    for where, text in _strings(ctx.data):
        if _HTML.search(text):
            yield where, "HTML markup is not allowed in registry text; write plain text (use words for < and >)"
        if where and where[-1] == "url" and (problem := _url_problem(text)):
            yield where, problem
        if problem := _text_problem(where, text):
            yield where, problem
        if where and where[-1] in ("date", "modified") and not _is_real_date(text):
            yield where, f"{text} is not a date in the calendar; write YYYY-MM-DD"
    for where, key in _keys(ctx.data):
        if problem := _text_problem((), key):
            yield where, f"field name {key!r}: {problem}"


def _alias_rule(ctx: _Context) -> Found:
    """Aliases read as what they match, and never repeat each other or the id."""
    seen: dict[str, int] = {}
    model_id = str(ctx.data.get("id", "")).casefold()
    for i, alias in enumerate(ctx.data.get("aliases") or []):
        if not alias.isascii() or not alias.isprintable() or alias != alias.strip() or "  " in alias:
            yield (
                ("aliases", i),
                f"alias {alias!r} must be plain ASCII without leading, trailing or doubled spaces, so it reads as "
                "what it matches",
            )
        key = alias.casefold()
        if key in seen or key == model_id:
            yield (
                ("aliases", i),
                f"alias {alias!r} repeats {'the id' if key == model_id else f'aliases[{seen[key]}]'} (case is ignored)",
            )
        seen.setdefault(key, i)


def _id_rule(ctx: _Context) -> Found:
    """An id becomes a folder and a file name: never one the site or Windows keeps for itself."""
    for part in str(ctx.data.get("id", "")).split("/"):
        if part.casefold() in RESERVED_NAMES:
            yield ("id",), f"{part!r} cannot be part of a model id: the site needs that name for its own pages"
        elif part.split(".")[0].casefold() in WINDOWS_RESERVED:
            yield (
                ("id",),
                f"{part!r} cannot be part of a model id: Windows reserves the name {part.split('.')[0]!r} (with any "
                "extension), so the registry could not be checked out there",
            )


def _coordinate_rule(ctx: _Context) -> Found:
    """Each claim's tensor, layer, expert and index agree with each other, with the layout (`swindex.layout`), and
    with the model's dimensions."""
    dims = ctx.dims
    if ctx.data.get("claims") and not dims:
        yield (
            ("dimensions",),
            "dimensions (num_layers, hidden_size, intermediate_size) are required when an entry has claims: they are "
            "what coordinates are checked against",
        )
    architecture = ctx.data.get("architecture") or ""
    seen: dict[str, int] = {}
    for i, claim in enumerate(ctx.data.get("claims") or []):
        at = ("claims", i)
        layer, tensor, row, column, expert, index = (
            claim.get(k) for k in ("layer", "tensor", "row", "column", "expert", "index")
        )
        match = _LAYER_IN_TENSOR.search(tensor)
        if match is None or int(match.group(1)) != layer:
            yield (
                (*at, "tensor"),
                f"tensor {tensor!r} does not belong to layer {layer}; the first number in the name must be the layer",
            )
        named_expert = _EXPERT_IN_TENSOR.search(tensor)
        if named_expert and int(named_expert.group(1)) != expert:
            yield (*at, "expert"), f"the tensor name says expert {named_expert.group(1)}, but expert is {expert}"
        if len(index) == 3:
            if expert is None or index[0] != expert:
                yield (*at, "index"), f"a 3-D index [expert, ...] needs expert = {index[0]}, found {expert}"
            if named_expert:
                yield (*at, "index"), f"{tensor} is one expert's own 2-D weight; index it [row, column]"
            pair = list(index[1:])
        else:
            if expert is not None and not named_expert:
                yield (
                    (*at, "index"),
                    f"expert {expert} in a fused experts tensor needs a 3-D index [expert, row, column]",
                )
            pair = list(index)
        expected = expected_index(row, column, index, architecture)
        if held_order(pair, row, column) is None:
            yield (*at, "index"), f"index {index} does not hold row {row} and column {column}"
        elif expected is not None and tuple(index) != expected:
            written = (
                "[column, row] (GPT-2's Conv1D and gpt-oss experts store it transposed)"
                if index_order(architecture) == "transposed"
                else "[row, column]"
            )
            yield (*at, "index"), f"a {architecture} down projection is indexed {written}: write {list(expected)}"
        coordinate = format_coordinate(tensor, index)
        if coordinate in seen:
            yield (
                at,
                f"duplicate coordinate {coordinate} (also claims[{seen[coordinate]}]); merge the sources into one "
                "claim",
            )
        seen.setdefault(coordinate, i)
        limits = (
            ("layer", layer, dims.get("num_layers")),
            ("row", row, dims.get("hidden_size")),
            (
                "column",
                column,
                dims.get("moe_intermediate_size")
                if expert is not None and dims.get("moe_intermediate_size")
                else dims.get("intermediate_size"),
            ),
            ("expert", expert, dims.get("num_experts")),
        )
        for name, value, limit in limits:
            if value is not None and limit and value >= limit:
                yield (*at, name), f"{name} {value} is outside the model (dimensions give {limit})"


def _findings_fit_rule(ctx: _Context) -> Found:
    """Detection maxima and row- or expert-level findings lie inside the model."""
    dims = ctx.dims
    detection = (ctx.data.get("evidence") or {}).get("detection") or {}
    for i, maxima in enumerate(detection.get("layers") or []):
        layer = maxima.get("layer") if isinstance(maxima, Mapping) else None
        if isinstance(layer, int) and dims.get("num_layers") and layer >= dims["num_layers"]:
            yield (
                ("evidence", "detection", "layers", i, "layer"),
                f"layer {layer} is outside the model (dimensions give {dims['num_layers']})",
            )
    for i, finding in enumerate(ctx.data.get("other_findings") or []):
        for name, limit in (
            ("layer", dims.get("num_layers")),
            ("row", dims.get("hidden_size")),
            ("expert", dims.get("num_experts")),
        ):
            value = finding.get(name)
            if value is not None and limit and value >= limit:
                yield ("other_findings", i, name), f"{name} {value} is outside the model (dimensions give {limit})"


def _disagreement_rule(ctx: _Context) -> Found:
    for i, disagreement in enumerate(ctx.data.get("disagreements") or []):
        for j, claim in enumerate(disagreement.get("claims") or []):
            if claim not in ctx.coordinates:
                yield (
                    ("disagreements", i, "claims", j),
                    f"{claim} is not one of this entry's claims (write it tensor[i, j] as in the claims list)",
                )


def _status_reason(sources: list[Source]) -> str:
    """Why the sources give the status they do, in words a contributor can check against the claim."""
    who = sorted(parties(sources))
    if len(who) >= 2:
        return f"{len(who)} independent parties reported, detected or ablated it ({'; '.join(w[:60] for w in who[:3])})"
    if not who:
        return "no source reported, detected or ablated it itself (copied, assumed, heuristic, unlabeled do not count)"
    if who == [SWINDEX]:
        return "only swindex's detector found it"
    if any(s.evidence in GROUNDING_EVIDENCE for s in sources):
        return f"one party ({who[0][:60]}) published or zeroed it; a second independent party would confirm it"
    return f"one party ({who[0][:60]}) listed it from a detector and nobody zeroed it"


def _status_rule(ctx: _Context) -> Found:
    """A status follows from its sources' evidence and parties (``swindex.claims.status_from_sources``).

    Parties are counted by ``party`` (else citation); every swindex run counts as one party, so two runs of
    our own detector never confirm a claim. Disputed and withdrawn are people's judgements, recorded as such.
    """
    for key in ("claims", "other_findings"):
        for i, item in enumerate(ctx.data.get(key) or []):
            at = (key, i)
            status, raw = item.get("status"), item.get("sources") or []
            sources = [Source.from_dict(s) for s in raw]
            name = coordinate_of(item) if key == "claims" else f"this {item.get('kind')} finding"
            if key == "claims" and item.get("value_dtype") is not None and item.get("value") is None:
                yield (*at, "value_dtype"), "value_dtype says what dtype the value was read in, but there is no value"
            if status == "disputed":
                if key == "claims" and coordinate_of(item) not in ctx.disputed:
                    yield (
                        (*at, "status"),
                        (
                            "a 'disputed' claim must be named in the entry's disagreements, which say who disagrees "
                            "and why"
                        ),
                    )
                continue
            if status == "withdrawn":
                continue
            expected = status_from_sources(sources)
            if status != expected:
                yield (
                    (*at, "status"),
                    (
                        f"{name}: its sources make it '{expected}', not '{status}': {_status_reason(sources)}; "
                        f"write status: {expected} (or 'disputed' with a disagreements item, 'withdrawn' if its "
                        "authors abandoned it)"
                    ),
                )
            if status == "confirmed":
                for j, source in enumerate(raw):
                    first_hand = source.get("kind") != SWINDEX_KIND and source.get("evidence") in FIRST_HAND_EVIDENCE
                    if first_hand and not source.get("url"):
                        yield (
                            (*at, "sources", j, "url"),
                            "a source that confirms a claim needs a url, for readers to check",
                        )


def _ablation_rule(ctx: _Context) -> Found:
    """A source that zeroed the weight alone and says what happened (``effect``) means its impact is measured."""
    for key in ("claims", "other_findings"):
        for i, item in enumerate(ctx.data.get(key) or []):
            if (item.get("impact") or {}).get("classification", "unmeasured") != "unmeasured":
                continue
            for j, source in enumerate(item.get("sources") or []):
                if source.get("evidence") == "ablation" and source.get("effect"):
                    name = coordinate_of(item) if key == "claims" else f"this {item.get('kind')} finding"
                    yield (
                        (key, i, "impact"),
                        (
                            f"{name}: sources[{j}] ({str(source.get('citation'))[:60]}) zeroed it and says what "
                            "happened (effect), so it is not unmeasured; write impact: {classification: <by the "
                            "thresholds>, measured_by: <that citation>, metric, original, zeroed, ratio}"
                        ),
                    )
                    break


def _impact_problems(
    impact: Mapping[str, Any], sources: list[Mapping[str, Any]]
) -> Iterable[tuple[tuple[Any, ...], str]]:
    classification = impact.get("classification")
    figures = [k for k in ("original", "zeroed", "ratio", "super_activation_zeroed", "similarity_shift") if k in impact]
    if classification == "unmeasured":
        if figures or impact.get("measured_by"):
            yield (
                ("classification",),
                f"an unmeasured impact has no measured_by or figures (found {', '.join(figures) or 'measured_by'}); "
                "classify it critical, significant or inert",
            )
        return
    measured_by = impact.get("measured_by")
    citations = {s.get("citation") for s in sources}
    if not measured_by:
        yield (
            ("measured_by",),
            f"a {classification} impact says who measured it: 'swindex' or the citation of one of the claim's sources",
        )
    elif measured_by != SWINDEX and measured_by not in citations:
        yield (
            ("measured_by",),
            f"{measured_by[:80]!r} is not the citation of one of this claim's sources; cite the source first, or "
            "write 'swindex' for swindex's own run",
        )


def _impact_rule(ctx: _Context) -> Found:
    """An impact says who measured it (swindex or one of the claim's sources); an unmeasured one carries no figures."""
    for key in ("claims", "other_findings"):
        for i, claim in enumerate(ctx.data.get(key) or []):
            if "impact" in claim:
                for where, message in _impact_problems(claim["impact"], claim.get("sources") or []):
                    yield (key, i, "impact", *where), message


def _figures_problems(impact: Mapping[str, Any]) -> Iterable[tuple[tuple[Any, ...], str]]:
    classification = impact.get("classification")
    metric, figure = impact.get("metric"), figure_of(impact)
    ratio, original, zeroed = impact.get("ratio"), impact.get("original"), impact.get("zeroed")
    figures = (ratio, original, zeroed)
    if metric != "embedding_shift" and all(isinstance(x, (int, float)) for x in figures) and original and ratio:
        if abs(zeroed / original - ratio) > 0.01 * abs(ratio):
            quotient = f"{zeroed:.4g} / {original:.4g} = {zeroed / original:.4g}"
            yield ("ratio",), f"ratio {ratio:.4g} is not zeroed / original ({quotient}); write that"
    if metric in IMPACT_BANDS and figure is not None:
        expected = classify(metric, figure)
        if expected != classification:
            band = IMPACT_BANDS[metric]
            bound = "at least" if band.higher_is_worse else "at most"
            limits = f"critical {bound} {band.critical:g}, significant {band.significant:g}"
            yield (
                ("classification",),
                (
                    f"the {metric} figure {figure:.4g} makes this weight {expected}, not {classification} (the "
                    f"thresholds: {limits}); write classification: {expected}"
                ),
            )


def _impact_figures_rule(ctx: _Context) -> Found:
    """A measured impact's class is what its own figures give under the documented thresholds (whoever measured it)."""
    for key in ("claims", "other_findings"):
        for i, item in enumerate(ctx.data.get(key) or []):
            impact = item.get("impact") or {}
            if impact.get("classification", "unmeasured") != "unmeasured":
                for where, message in _figures_problems(impact):
                    yield (key, i, "impact", *where), message


def _bound_rule(ctx: _Context) -> Found:
    """A bound that settled a class holds its ratio and lies wholly inside that class (swindex.verification.settle)."""
    for key in ("claims", "other_findings"):
        for i, claim in enumerate(ctx.data.get(key) or []):
            impact = claim.get("impact") or {}
            bound, ratio, metric = impact.get("bound"), impact.get("ratio"), impact.get("metric")
            if not isinstance(bound, Mapping) or metric not in IMPACT_BANDS or not isinstance(ratio, (int, float)):
                continue
            low, high = bound.get("low"), bound.get("high")
            if not (isinstance(low, (int, float)) and isinstance(high, (int, float))):
                continue
            if not low <= ratio <= high:
                yield (
                    (key, i, "impact", "bound"),
                    f"the bound [{low:.4g}, {high:.4g}] does not hold the ratio {ratio:.4g} it bounds",
                )
            elif not classify(metric, low) == classify(metric, high) == impact.get("classification"):
                yield (
                    (key, i, "impact", "bound"),
                    (
                        f"the bound [{low:.4g}, {high:.4g}] is not wholly inside the class "
                        f"{impact.get('classification')}; a class is settled only when it is, so measure on more of "
                        "the text"
                    ),
                )


def _verdict_rule(ctx: _Context) -> Found:
    """The verdict is what the claims add up to; the message says what to write."""
    expected = derive_verdict(ctx.data)
    found = dict(ctx.data.get("verdict") or {})
    if found != expected:
        written = ", ".join(f"{k}: {v}" for k, v in expected.items())
        yield (
            ("verdict",),
            f"the claims give the verdict {{{written}}} ({verdict_of(ctx.data).text}); write that (tools write it for "
            "you)",
        )


def _benefit_rule(ctx: _Context) -> Found:
    """A benefit row names a known scheme, its change is its two perplexities' ratio, and its run's figures add up."""
    table = (ctx.data.get("evidence") or {}).get("keep_benefit")
    if not isinstance(table, Mapping):
        return
    for i, row in enumerate(table.get("rows") or []):
        where = ("evidence", "keep_benefit", "rows", i)
        if not isinstance(row, Mapping):
            continue
        if row.get("scheme") not in SCHEMES:
            yield (
                (*where, "scheme"),
                f"unknown scheme {row.get('scheme')!r}; the schemes are {', '.join(SCHEMES)} (swindex.benefit.SCHEMES)",
            )
        figures = [
            v for v in (row.get(k) for k in ("quantized", "kept_perplexity", "change")) if isinstance(v, (int, float))
        ]
        if len(figures) < 3 or any(isinstance(v, bool) for v in figures):
            continue
        base, kept, change = (float(v) for v in figures)
        if base > 0 and abs(kept / base - 1 - change) > 1e-3 + 1e-3 * abs(change):
            yield (
                (*where, "change"),
                f"change {change} is not kept_perplexity / quantized - 1 = {kept / base - 1:.5f}; write the measured "
                "ratio",
            )


RULES = (
    _text_rule,
    _alias_rule,
    _id_rule,
    _coordinate_rule,
    _findings_fit_rule,
    _disagreement_rule,
    _status_rule,
    _ablation_rule,
    _impact_rule,
    _impact_figures_rule,
    _bound_rule,
    _verdict_rule,
    _benefit_rule,
)
"""The checks no JSON Schema can express, each a small function over one entry, run in this order."""


def _semantic_problems(data: Mapping[str, Any]) -> Found:
    coordinates: dict[str, int] = {}
    for i, claim in enumerate(data.get("claims") or []):
        coordinates.setdefault(coordinate_of(claim), i)
    disputed = frozenset(c for d in data.get("disagreements") or [] for c in d.get("claims") or [])
    ctx = _Context(data=data, dims=data.get("dimensions") or {}, coordinates=coordinates, disputed=disputed)
    for rule in RULES:
        yield from rule(ctx)


def _subschemas(schema: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """A schema and every schema it refers to or combines, for walking data alongside it."""
    yield schema
    if isinstance(ref := schema.get("$ref"), str) and ref.startswith("#/$defs/"):
        yield from _subschemas(entry_schema()["$defs"][ref.rsplit("/", 1)[1]])
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key) or []:
            yield from _subschemas(branch)


def _over_long(data: Any, schema: Mapping[str, Any], where: tuple[Any, ...] = ()) -> Found:
    """Lists longer than the schema allows, found before the schema validator visits (and reports on) every item.

    Only lists and mappings are walked, so the cost is a small part of validating: a file of 18,000
    sources is refused at once, in one line, instead of after its 18,000 items were checked.
    """
    found: dict[tuple[Any, ...], str] = {}
    for sub in _subschemas(schema):
        if isinstance(data, list):
            limit = sub.get("maxItems")
            if isinstance(limit, int) and len(data) > limit:
                found.setdefault(where, f"{len(data)} items: at most {limit} are allowed here")
            elif isinstance(items := sub.get("items"), Mapping):
                for i, item in enumerate(data):
                    if isinstance(item, (list, Mapping)):
                        for at, message in _over_long(item, items, (*where, i)):
                            found.setdefault(at, message)
        elif isinstance(data, Mapping):
            properties, extra = sub.get("properties") or {}, sub.get("additionalProperties")
            for key, value in data.items():
                child = properties.get(key, extra)
                if isinstance(value, (list, Mapping)) and isinstance(child, Mapping):
                    for at, message in _over_long(value, child, (*where, key)):
                        found.setdefault(at, message)
    yield from found.items()


def _unknown_keys(error: Any) -> Iterable[tuple[str, list[str]]]:
    """The keys an additionalProperties error is about, each with the field names allowed beside it."""
    allowed = sorted(error.schema.get("properties") or {})
    patterns = [re.compile(p) for p in error.schema.get("patternProperties") or {}]
    for key in error.instance:
        if isinstance(key, str) and key not in allowed and not any(p.search(key) for p in patterns):
            yield key, allowed


def _schema_problems(data: Mapping[str, Any], where: str, lines: Mapping[tuple[Any, ...], int]) -> list[Problem]:
    """The schema's errors, each at its field's own line, in words a contributor can act on."""
    found: list[tuple[list[str], Problem]] = []
    suggested: set[tuple[tuple[Any, ...], str]] = set()
    errors = list(entry_validator().iter_errors(data))
    for error in errors:
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            for key, allowed in _unknown_keys(error):
                parts = (*error.absolute_path, key)
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) or difflib.get_close_matches(
                    key.casefold(), allowed, n=1, cutoff=0.6
                )
                if close:
                    suggested.add((tuple(error.absolute_path), close[0]))
                    message = f"unknown field {key!r}: did you mean {close[0]!r}?"
                else:
                    listed = ", ".join(allowed) if len(allowed) <= 12 else f"{', '.join(allowed[:12])}, ..."
                    message = f"unknown field {key!r}; the fields allowed here are {listed}"
                found.append(
                    (list(map(str, parts)), Problem(where, field_name(parts), message, _line_for(lines, parts)))
                )
    for error in errors:
        parts = tuple(error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties":
            continue
        if error.validator == "required" and isinstance(error.instance, Mapping):
            missing = [name for name in error.validator_value if name not in error.instance]
            if all((parts, name) in suggested for name in missing):
                continue  # the misspelt key's own line already says what to write
        if parts == ("id",) and error.validator in ("pattern", "not"):
            message = (
                f"{error.instance!r} is not a model id: write org/name (letters, digits, '-', '_', '.'; no '..', no "
                "leading '/')"
            )
        elif parts and parts[-1] == "url" and error.validator == "pattern" and isinstance(error.instance, str):
            url = error.instance if len(error.instance) <= 100 else error.instance[:100] + "..."
            fix = (
                "write https:// (every site the registry cites serves it)"
                if url.startswith("http:")
                else "no spaces, quotes or angle brackets"
            )
            message = f"{url!r}: {_HTTPS_ONLY}; {fix}"
        elif len(message) > 300:
            message = message[:300] + "..."
        found.append((list(map(str, parts)), Problem(where, field_name(parts), message, _line_for(lines, parts))))
    return [problem for _, problem in sorted(found, key=lambda pair: pair[0])]


def validate_entry_dict(
    data: Any, path: str | Path | None = None, lines: Mapping[tuple[Any, ...], int] | None = None
) -> list["Problem"]:
    """Every problem with one entry: schema violations first, then cross-field rules (only if the schema passes)."""
    where = str(path) if path is not None else "<entry>"
    lines = lines or {}
    if data is None:
        return [
            Problem(
                where,
                "",
                "the file is empty: an entry is a mapping of fields (start from an existing entry or CONTRIBUTING.md)",
                1 if path is not None else None,
            )
        ]
    if not isinstance(data, Mapping):
        return [
            Problem(
                where, "", f"an entry must be a mapping of fields, found {type(data).__name__}", 1 if lines else None
            )
        ]
    for bounded in (
        lambda: _over_long(data, entry_schema()),
        lambda: _non_finite(data),
    ):  # over-long first: never walk a huge list
        problems = [Problem(where, field_name(parts), message, _line_for(lines, parts)) for parts, message in bounded()]
        if problems:
            return problems
    problems = _schema_problems(data, where, lines)
    if problems:
        return problems
    for parts, message in _semantic_problems(data):
        problems.append(Problem(where, field_name(parts), message, _line_for(lines, parts)))
    return problems


def expected_id(path: Path, root: Path) -> str | None:
    """The model id a file's location implies: registry/<org>/<name>.yaml -> org/name."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    if not relative.name:
        return None
    return relative.with_suffix("").as_posix()


@dataclass(frozen=True)
class _Tree:
    """What a registry directory holds, read without following links: its regular files and everything else."""

    files: tuple[Path, ...]
    problems: tuple[Problem, ...]


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _walk(root: Path) -> _Tree:
    """Regular files under root (sorted), and a problem for each link, pipe or device, and each folder name that
    differs from a sibling's only in case.

    Nothing is followed: a link to a file or folder outside the registry would make validation,
    the index and the site read whatever it points at.
    """
    files: list[Path] = []
    problems: list[Problem] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(str(directory), "", f"cannot read folder: {exc.strerror or exc}"))
            continue
        folders: dict[str, str] = {}
        for child in children:
            path = Path(child.path)
            mode = child.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                problems.append(
                    Problem(
                        str(path),
                        "",
                        "a symbolic link: the registry holds only plain files and folders (a link can point outside "
                        "it); put the file itself here",
                    )
                )
            elif stat.S_ISDIR(mode):
                key = _name_key(child.name)
                if key in folders:
                    problems.append(
                        Problem(
                            str(path),
                            "",
                            f"folder {child.name!r} differs from {folders[key]!r} beside it only in case: on Windows "
                            "and macOS they are one folder; use one spelling",
                        )
                    )
                folders.setdefault(key, child.name)
                pending.append(path)
            elif stat.S_ISREG(mode):
                files.append(path)
            else:
                problems.append(
                    Problem(
                        str(path),
                        "",
                        "not a regular file (a pipe, socket or device): the registry holds only plain files",
                    )
                )
    return _Tree(tuple(sorted(files)), tuple(sorted(problems, key=lambda p: p.path)))


def _is_entry_name(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") and not path.name.startswith(".")


def entry_files(root: str | Path) -> list[Path]:
    """Every entry file under a registry directory, in a stable order; links and special files are never entries."""
    return [p for p in _walk(Path(root)).files if _is_entry_name(p)]


def check_file(path: Path, root: Path | None = None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Load and validate one file; returns the data (None if unreadable) and its problems."""
    data, problems, _ = _check_file(path, root)
    return data, problems


def _check_file(
    path: Path, root: Path | None = None
) -> tuple[dict[str, Any] | None, list[Problem], Mapping[tuple[Any, ...], int]]:
    try:
        data, lines = load_yaml_with_lines(path)
    except RegistryFileError as exc:
        return None, [Problem(exc.path, exc.field, exc.reason, exc.line)], {}
    problems = validate_entry_dict(data, path, lines)
    if root is not None and isinstance(data, Mapping) and isinstance(data.get("id"), str):
        expected = expected_id(path, root)
        if expected is not None and expected != data["id"]:
            problems.append(
                Problem(
                    str(path),
                    "id",
                    f"id {data['id']!r} does not match the file's location, which implies {expected!r}; move the file "
                    f"to {root}/{data['id']}.yaml",
                    lines.get(("id",)),
                )
            )
    return (dict(data) if isinstance(data, Mapping) else None), problems, lines


def _distinct_ids(
    loaded: list[tuple[Path, Mapping[str, Any]]], lines: Mapping[Path, Mapping[tuple[Any, ...], int]]
) -> tuple[list[tuple[Path, Mapping[str, Any]]], list[Problem]]:
    """Files whose id another file already has get one problem, on the id, and no further cross-file checks (their
    aliases would all clash too)."""
    first: dict[str, tuple[Any, Path]] = {}
    kept, problems = [], []
    for path, data in loaded:
        model_id = data.get("id")
        key = model_id.casefold() if isinstance(model_id, str) else None
        if key is not None and key in first and first[key][1] != path:
            other_id, other_path = first[key]
            if other_id == model_id:
                message = (
                    f"{model_id!r} is already the id of {other_path}: a model has one entry, so edit that file "
                    "(another model needs an id of its own)"
                )
            else:
                message = (
                    f"{model_id!r} differs from the id {other_id!r} ({other_path}) only in case: ids ignore case, "
                    "and on Windows and macOS the two files are one; use one entry"
                )
            problems.append(Problem(str(path), "id", message, _line_for(lines.get(path, {}), ("id",))))
            continue
        if key is not None:
            first.setdefault(key, (model_id, path))
        kept.append((path, data))
    return kept, problems


def cross_file_problems(
    loaded: list[tuple[Path, Mapping[str, Any]]], lines: Mapping[Path, Mapping[tuple[Any, ...], int]] | None = None
) -> list[Problem]:
    """Ids and aliases must each name exactly one model across the whole registry (case-insensitively).

    The first file in ``loaded`` to use a name owns it, so list files already in the registry before the
    files under review: the problem is then reported on the file that introduced the clash, at its line.
    """
    owners: dict[str, tuple[str, Path]] = {}
    lines = lines or {}
    short_names: dict[str, set[str]] = {}
    reported: set[tuple[Path, tuple[Any, ...]]] = set()
    loaded, problems = _distinct_ids(loaded, lines)
    for _, data in loaded:
        if isinstance(data.get("id"), str):
            short_names.setdefault(data["id"].rsplit("/", 1)[-1].casefold(), set()).add(data["id"])
    for path, data in loaded:
        for i, alias in enumerate(data.get("aliases") or []):
            others = (
                sorted(short_names.get(alias.casefold(), set()) - {data.get("id")}) if isinstance(alias, str) else []
            )
            if others:
                reported.add((path, ("aliases", i)))
                problems.append(
                    Problem(
                        str(path),
                        f"aliases[{i}]",
                        f"{alias!r} is the name of {others[0]}: a lookup of that name (or of a local folder called "
                        "so) would find this model instead",
                        _line_for(lines.get(path, {}), ("aliases", i)),
                    )
                )
        names = [(("id",), data.get("id"))] + [(("aliases", i), a) for i, a in enumerate(data.get("aliases") or [])]
        local: set[str] = set()
        for parts, name in names:
            if not isinstance(name, str):
                continue
            key = name.casefold()
            if key in local:
                continue
            local.add(key)
            field = field_name(parts)
            if key in owners and owners[key][1] != path and (path, parts) not in reported:
                other_field, other_path = owners[key]
                problems.append(
                    Problem(
                        str(path),
                        field,
                        f"{name!r} already names another model ({other_path}, {other_field}); ids and aliases must be "
                        "unique",
                        _line_for(lines.get(path, {}), parts),
                    )
                )
            else:
                owners.setdefault(key, (field, path))
    return problems


def validate_paths(paths: Iterable[str | Path], registry: str | Path | None = None) -> list[Problem]:
    """Validate files and directories; cross-file uniqueness is checked over the registry and the given files
    together."""
    root = Path(registry) if registry is not None else None
    targets: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_symlink():
            problems.append(
                Problem(
                    str(p),
                    "",
                    "a symbolic link: registry entries are plain files; validate (and commit) the file itself",
                )
            )
        elif p.is_dir():
            targets.extend(entry_files(p))
        elif p.is_file():
            targets.append(p)
        elif p.exists():
            problems.append(Problem(str(p), "", "not a regular file (a pipe, socket or device)"))
        else:
            problems.append(Problem(str(p), "", "no such file or directory"))
    reviewed: list[tuple[Path, Mapping[str, Any]]] = []
    lines: dict[Path, Mapping[tuple[Any, ...], int]] = {}
    seen: set[Path] = set()
    for path in targets:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        file_root = root if root is not None and expected_id(path, root) is not None else None
        data, file_problems, lines[path] = _check_file(path, file_root)
        problems.extend(file_problems)
        if path.suffix != ".yaml":
            problems.append(Problem(str(path), "", "registry files end in .yaml"))
        if data is not None:
            reviewed.append((path, data))
    others: list[tuple[Path, Mapping[str, Any]]] = []
    if root is not None and root.is_dir():
        for path in entry_files(root):
            if path.resolve() not in seen:
                data, _ = check_file(path)
                if data is not None:
                    others.append((path, data))
    problems.extend(cross_file_problems(others + reviewed, lines))
    return problems


def stray_files(root: str | Path) -> list[Problem]:
    """Anything under a registry that is not an entry (other files, links, pipes, folders named alike but for case):
    it would be skipped or misread, so it is an error."""
    tree = _walk(Path(root))
    problems = list(tree.problems)
    for path in (p for p in tree.files if not _is_entry_name(p)):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            continue  # an atomic write in progress, or a killed one's: ignored by git, removed by the next builder run
        if path.name.startswith("."):
            message = "hidden file in the registry; entries are never hidden: rename or remove it"
        else:
            message = "not an entry: the registry holds only <org>/<name>.yaml files; rename it to .yaml or move it out"
        problems.append(Problem(str(path), "", message))
    return problems


def validate_registry(root: str | Path) -> list[Problem]:
    """Every problem in a registry directory (an empty list means it is valid)."""
    root = Path(root)
    if root.is_symlink():
        return [Problem(str(root), "", "the registry directory is a symbolic link; validate the directory itself")]
    if not root.is_dir():
        return [Problem(str(root), "", "registry directory not found")]
    return stray_files(root) + validate_paths([root], registry=root)
