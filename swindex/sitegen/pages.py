"""What each generated page shows, worked out from the entries before any template runs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..records import STATUSES, Entry, format_coordinate
from .chart import Panel, activation_chart
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
    verdict_text: str = "not measured"
    super_weight_coordinates: tuple[str, ...] = ()

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
        parts = [self.id, self.org, self.name, *self.entry.get("aliases", []), self.entry.get("family") or "", self.entry.get("architecture") or ""]
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


def _weight_view(entry_id: str, number: int, sw: Mapping[str, Any], super_weight: int | None) -> WeightView:
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
    index_code = f"model.get_parameter({json.dumps(str(sw.get('tensor', '')))})[{', '.join(str(int(i)) for i in index)}]"
    return WeightView(number, sw, coordinate, lookup_code, index_code)


def model_view(entry: Entry, links: SiteLinks) -> ModelView:
    data = entry.to_dict()
    positions = {c.coordinate: k for k, c in enumerate(entry.super_weights)}
    weights = tuple(
        _weight_view(entry.id, i, sw, positions.get(format_coordinate(sw["tensor"], sw["index"]))) for i, sw in enumerate(data.get("claims") or [])
    )
    org, _, name = entry.id.rpartition("/")
    sources = [s for sw in data.get("claims") or [] for s in sw.get("sources") or []]
    sources += [s for f in data.get("other_findings") or [] for s in f.get("sources") or []]
    kinds: list[str] = []
    for source in sources:
        if source.get("kind") not in kinds:
            kinds.append(source.get("kind"))
    statuses = [sw.get("status") for sw in data.get("claims") or []] + [f.get("status") for f in data.get("other_findings") or []]
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
        chart=activation_chart((data.get("evidence") or {}).get("detection"), layers),
        edit_url=safe_url(f"{links.edit_prefix}{registry_path}") if links.edit_prefix else None,
        hub_url=safe_url(hub),
        registry_path=registry_path,
        verdict_text=entry.verdict.text,
        super_weight_coordinates=tuple(c.coordinate for c in entry.super_weights),
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
