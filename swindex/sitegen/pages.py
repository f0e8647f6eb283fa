"""What each generated page shows, worked out from the entries before any template runs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..benefit import BenefitRow, BenefitTable, advice
from ..layout import format_coordinate
from ..records import STATUSES, Claim, Entry, Impact, Verdict
from .chart import Panel, activation_chart, layer_measurements, source_chart
from .urls import api_model_path, page_url, safe_url

EXAMPLE_ID = "huggyllama/llama-7b"


@dataclass(frozen=True)
class SiteLinks:
    """Where the site points outside itself: the repository (edit links) and, optionally, the model Hub."""

    repo_url: str | None
    edit_prefix: str | None  # repo_url/edit/<branch>/<registry_path>/
    hub_endpoint: str | None


@dataclass(frozen=True)
class WeightView:
    number: int  # position in entry.claims
    data: Mapping[str, Any]
    coordinate: str
    lookup_code: str
    index_code: str
    impact: Impact = Impact()
    is_super_weight: bool = False  # in entry.super_weights: what lookup hands out
    keep: bool = False  # in entry.weights_to_keep: what quantization should hold out


@dataclass(frozen=True)
class SourceChart:
    """Per-layer activations a source published (its ``measurements``, see chart.LAYER_MEASUREMENT),
    charted under its citation."""

    citation: str
    url: str | None
    panels: tuple[Panel, ...]


COULD_NOT_CHECK = "could not check"
"""The derived table's column for checkpoints without a verdict (skipped, unreadable, or nothing to compare)."""


@dataclass(frozen=True)
class DerivedRow:
    """One derived checkpoint on its base model's page, from ``evidence.derived_checks``."""

    id: str
    kind: str | None
    file: str | None
    outcome: str  # the check's verdict, or COULD_NOT_CHECK
    why: str  # what it kept, or why it could not be checked
    date: str
    revision: str | None
    url: str | None


def derived_rows(data: Mapping[str, Any], hub_endpoint: str | None) -> tuple[DerivedRow, ...]:
    """The derived checks of an entry, lost first, then changed, then could-not-check, then kept; by id within each."""
    rows = []
    for check in (data.get("evidence") or {}).get("derived_checks") or []:
        verdict = check.get("verdict")
        outcome = verdict if verdict and verdict != "unknown" else COULD_NOT_CHECK
        if outcome == COULD_NOT_CHECK:
            parts = (check.get("skipped"), check.get("reason"))
            why = ": ".join(str(part) for part in parts if part) or "not readable, or nothing to compare with"
        else:
            why = f"{check.get('kept', 0)} of {check.get('weights', 0)} weights kept"
        url = f"{hub_endpoint.rstrip('/')}/{check['id']}" if hub_endpoint else None
        rows.append(
            DerivedRow(
                id=check["id"],
                kind=check.get("kind"),
                file=check.get("file"),
                outcome=outcome,
                why=why,
                date=check.get("date", ""),
                revision=check.get("revision"),
                url=safe_url(url),
            )
        )
    rank = {"lost": 0, COULD_NOT_CHECK: 2, "kept": 3}
    return tuple(sorted(rows, key=lambda r: (rank.get(r.outcome, 1), r.id.casefold(), r.file or "")))


def derived_counts(rows: Sequence[DerivedRow]) -> dict[str, int]:
    """Checkpoints by outcome, in the table's column order: kept, the verdicts between, lost, could not check."""
    found: dict[str, int] = {}
    for row in rows:
        found[row.outcome] = found.get(row.outcome, 0) + 1
    order = ["kept", *sorted(set(found) - {"kept", "lost", COULD_NOT_CHECK}), "lost", COULD_NOT_CHECK]
    return {outcome: found.get(outcome, 0) for outcome in order}


@dataclass(frozen=True)
class KeepSnippet:
    """One quantizer's export of the weights to keep (``Entry.keep_for``), as the model page shows it."""

    tool: str
    language: str
    text: str
    version: str
    notes: tuple[str, ...]


def keep_snippets(entry: Entry) -> tuple[KeepSnippet, ...]:
    """Every quantizer's snippet for the entry's weights to keep; none when it has nothing to keep."""
    from ..keep import FORMATS

    if not entry.weights_to_keep:
        return ()
    exports = (entry.keep_for(tool) for tool in FORMATS)
    return tuple(KeepSnippet(e.tool, e.language, e.text, e.version, e.notes) for e in exports)


@dataclass(frozen=True)
class ModelView:
    """Everything a model page and its table row need."""

    entry: Mapping[str, Any]
    id: str
    org: str
    name: str
    url: str
    api_path: str
    weights: tuple[WeightView, ...]
    statuses: tuple[str, ...]
    layers: tuple[int, ...]
    active_count: int
    active_layers: tuple[int, ...]
    source_kinds: tuple[str, ...]
    chart: tuple[Panel, ...]
    edit_url: str | None
    hub_url: str | None
    registry_path: str | None
    verdict: Verdict = Verdict()
    super_weight_coordinates: tuple[str, ...] = ()
    public: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source_charts: tuple[SourceChart, ...] = ()
    derived: tuple[DerivedRow, ...] = ()
    keep: tuple[KeepSnippet, ...] = ()
    benefit: BenefitTable | None = None

    @property
    def derived_counts(self) -> dict[str, int]:
        return derived_counts(self.derived)

    @property
    def benefit_rows(self) -> tuple[tuple[BenefitRow, str], ...]:
        """Each scheme's row for keeping the weights to keep, where keeping helps first, with its advice sentence."""
        return tuple((r, advice(r)) for r in self.benefit.ordered()) if self.benefit else ()

    @property
    def benefit_controls(self) -> tuple[BenefitRow, ...]:
        """Rows keeping another module whose input peaks high (sites activation quantization must protect)."""
        return tuple(r for r in self.benefit.rows if r.why != "weights_to_keep") if self.benefit else ()

    @property
    def verdict_rank(self) -> float:
        """The models table's sort key for the verdict: super weights by their count, above no single critical weight,
        above not measured."""
        if self.verdict.outcome == "super_weights":
            return self.active_count
        return -0.5 if self.verdict.outcome == "no_critical_weight" else -1

    @property
    def verdict_text(self) -> str:
        """The verdict in the words `swindex list` and the JSON API use."""
        return self.verdict.text

    @property
    def matter(self) -> tuple[WeightView, ...]:
        """The weights that matter: each super weight once, in registry order (what lookup().super_weights holds)."""
        seen: set[str] = set()
        result = []
        for w in self.weights:
            if w.is_super_weight and w.coordinate not in seen:
                seen.add(w.coordinate)
                result.append(w)
        return tuple(result)

    @property
    def also_keep(self) -> tuple[WeightView, ...]:
        """Weights to keep that are not super weights (standing claims measured significant), each once."""
        matter = {w.coordinate for w in self.matter}
        seen: set[str] = set()
        result = []
        for w in self.weights:
            if w.keep and w.coordinate not in matter and w.coordinate not in seen:
                seen.add(w.coordinate)
                result.append(w)
        return tuple(result)

    @property
    def claim_count(self) -> int:
        return len(self.weights)

    @property
    def scanned(self) -> bool:
        """Whether swindex's detector has run on this model (the entry carries its detection evidence)."""
        return bool((self.entry.get("evidence") or {}).get("detection"))

    @property
    def size(self) -> str:
        """The parameter count, or the size the model's name states (e.g. 7B) when the entry has none."""
        return format_parameters(self.entry.get("parameters")) or size_from_name(self.name)[0]

    @property
    def size_value(self) -> float:
        """A number to sort sizes by."""
        parameters = self.entry.get("parameters")
        if isinstance(parameters, int) and not isinstance(parameters, bool):
            return float(parameters)
        return size_from_name(self.name)[1]

    @property
    def size_from_name(self) -> bool:
        return not format_parameters(self.entry.get("parameters")) and bool(self.size)

    @property
    def search_text(self) -> str:
        """Every name the table filter should match: id, aliases, organisation, family, architecture."""
        parts = [
            self.id,
            self.org,
            self.name,
            *self.entry.get("aliases", []),
            self.entry.get("family") or "",
            self.entry.get("architecture") or "",
        ]
        return " ".join(str(p) for p in parts if p).lower()


_NAME_SIZE = re.compile(r"(?<![\w.])(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?![a-z0-9])", re.IGNORECASE)


def size_from_name(name: str) -> tuple[str, float]:
    """The size a model name states, as text and as a number: 'Mixtral-8x7B' -> ('8x7B', 5.6e10); none -> ('', 0)."""
    match = _NAME_SIZE.search(name)
    if match is None:
        return "", 0.0
    experts, amount, unit = match.groups()
    value = float(amount) * (1e9 if unit.lower() == "b" else 1e6) * (int(experts) if experts else 1)
    return f"{experts + 'x' if experts else ''}{amount}{unit.upper()}", value


def format_parameters(parameters: Any) -> str:
    """7241732096 -> '7.2B'; unknown -> ''."""
    if isinstance(parameters, bool) or not isinstance(parameters, int) or parameters <= 0:
        return ""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if parameters >= scale:
            return f"{parameters / scale:.3g}{suffix}"
    return str(parameters)


def _ordered_statuses(values: Sequence[str]) -> tuple[str, ...]:
    present = set(values)
    return tuple(s for s in STATUSES if s in present) + tuple(sorted(present - set(STATUSES)))


def _weight_view(
    entry_id: str,
    number: int,
    sw: Mapping[str, Any],
    super_weight: int | None,
    claim: Claim | None = None,
    keep: bool = False,
) -> WeightView:
    index = sw.get("index") or []
    coordinate = format_coordinate(sw.get("tensor", ""), index)
    where = f"layer {sw.get('layer')}, row {sw.get('row')}, column {sw.get('column')}"
    if sw.get("expert") is not None:
        where += f", expert {sw.get('expert')}"
    if super_weight is not None:
        pick = f"sw = lookup({json.dumps(entry_id)}).super_weights[{super_weight}]\n"
    else:
        pick = f"sw = lookup({json.dumps(entry_id)}).claims[{number}]  # on record, not a super weight\n"
    lookup_code = f"from swindex import lookup\n# {where}\n{pick}value = model.get_parameter(sw.tensor)[sw.index]"
    index_code = (
        f"model.get_parameter({json.dumps(str(sw.get('tensor', '')))})[{', '.join(str(int(i)) for i in index)}]"
    )
    impact = (
        claim.impact
        if claim is not None
        else Impact.from_dict(sw.get("impact") if isinstance(sw.get("impact"), Mapping) else None)
    )
    return WeightView(number, sw, coordinate, lookup_code, index_code, impact, super_weight is not None, keep)


def _source_charts(data: Mapping[str, Any], marked: Sequence[int]) -> tuple[SourceChart, ...]:
    """One chart per distinct source that publishes per-layer activations
    (the same source on several claims charts once)."""
    seen: set[tuple[Any, ...]] = set()
    charts = []
    items = [*(data.get("claims") or []), *(data.get("other_findings") or [])]
    for source in (s for item in items for s in item.get("sources") or []):
        rows = layer_measurements(source.get("measurements"))
        key = (source.get("citation"), source.get("url"), json.dumps(rows, sort_keys=True, default=str))
        if len(rows) < 2 or key in seen:
            continue
        seen.add(key)
        panels = source_chart(source.get("measurements"), marked, f"sw-source-{len(charts) + 1}-")
        if panels:
            charts.append(SourceChart(str(source.get("citation") or "a source"), source.get("url"), panels))
    return tuple(charts)


def model_view(entry: Entry, links: SiteLinks) -> ModelView:
    data = entry.to_dict()
    positions = {c.coordinate: k for k, c in enumerate(entry.super_weights)}
    keep = {c.coordinate for c in entry.weights_to_keep}
    weights = tuple(
        _weight_view(
            entry.id,
            i,
            sw,
            positions.get(claim.coordinate) if claim.is_super_weight else None,
            claim,
            claim.coordinate in keep
            and (claim.is_super_weight or (claim.standing and claim.impact.classification == "significant")),
        )
        for i, (sw, claim) in enumerate(zip(data.get("claims") or [], entry.claims))
    )
    org, _, name = entry.id.rpartition("/")
    sources = [s for sw in data.get("claims") or [] for s in sw.get("sources") or []]
    sources += [s for f in data.get("other_findings") or [] for s in f.get("sources") or []]
    kinds: list[str] = []
    for source in sources:
        if source.get("kind") not in kinds:
            kinds.append(source.get("kind"))
    statuses = [sw.get("status") for sw in data.get("claims") or []] + [
        f.get("status") for f in data.get("other_findings") or []
    ]
    layers = tuple(sorted({sw.get("layer") for sw in data.get("claims") or [] if isinstance(sw.get("layer"), int)}))
    registry_path = entry.path or f"{entry.id}.yaml"
    hub = f"{links.hub_endpoint.rstrip('/')}/{entry.id}" if links.hub_endpoint else None
    return ModelView(
        entry=data,
        id=entry.id,
        org=org,
        name=name,
        url=page_url(entry.id),
        api_path=api_model_path(entry.id),
        weights=weights,
        statuses=_ordered_statuses([s for s in statuses if isinstance(s, str)]),
        layers=layers,
        active_count=len(entry.super_weights),
        active_layers=entry.layers,
        source_kinds=tuple(k for k in kinds if isinstance(k, str)),
        chart=activation_chart((data.get("evidence") or {}).get("detection"), entry.layers),
        edit_url=safe_url(f"{links.edit_prefix}{registry_path}") if links.edit_prefix else None,
        hub_url=safe_url(hub),
        registry_path=registry_path,
        verdict=entry.verdict,
        super_weight_coordinates=tuple(c.coordinate for c in entry.super_weights),
        public=entry.public_dict(),
        source_charts=_source_charts(data, entry.layers),
        derived=derived_rows(data, links.hub_endpoint),
        keep=keep_snippets(entry),
        benefit=entry.benefit,
    )


def example_id(views: Sequence[ModelView]) -> str:
    """The id the home page's one-line example uses: the paper's Llama-7B when present."""
    for view in views:
        if view.id == EXAMPLE_ID and view.weights:
            return view.id
    for view in views:
        if view.weights:
            return view.id
    return EXAMPLE_ID
