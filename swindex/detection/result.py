"""What a detection run found, as frozen records, and its registry entry (validated before it is returned)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DetectionError
from ..records import Coordinate, Located

_ID_PART = re.compile(r"[^A-Za-z0-9_.-]+")
METHOD = (
    "massive-spike search over FFN down projections, candidates removed in flight (Yu et al. 2024, arXiv "
    "2411.07191, generalised)"
)


@dataclass(frozen=True)
class Thresholds:
    """When a down projection's output spike is massive for this model, and which weights make it up.

    A spike (a projection's largest |output| in a pass) qualifies when it is at least ``min_output`` (the
    paper's absolute threshold), at least ``min_output_ratio`` times that projection's median |output| (layers
    without spikes peak at ~5-10x their median), and at least ``min_scale`` times the largest down-projection
    output the scan has seen: the model's own massive activation, which sets the scale (a real 1.5B model's
    outliers of 25-28, ~100x their median, sit far below its massive activation of 1,228). A weight is a
    *candidate* when its product with its input makes up at least ``min_share`` of a qualifying spike, with the
    spike's sign, whatever its size within its row: a super weight only 7x its row's median can make a spike
    2,000x the layer's median. Once one weight of a column has been removed at a projection, another weight
    of that column there must be at least ``min_column_ratio`` times the column's median |weight|: the rest of
    the column merely passes the same huge input on to other rows. The input is not thresholded, so a modest
    input times a large weight still counts (SmolLM2-1.7B layer 1: input 26.5, output 342).
    """

    min_output: float = 50.0
    min_output_ratio: float = 100.0
    min_scale: float = 0.1
    min_share: float = 0.25
    min_column_ratio: float = 10.0

    def as_measurements(self) -> dict[str, float]:
        return {
            "min_output": self.min_output,
            "min_output_ratio": self.min_output_ratio,
            "min_scale": self.min_scale,
            "min_share": self.min_share,
            "min_column_ratio": self.min_column_ratio,
        }


@dataclass(frozen=True)
class Peak:
    """The largest down-projection output the scan saw: the model's massive activation, its scale for what counts."""

    value: float
    layer: int
    channel: int
    token: int
    expert: int | None = None


@dataclass(frozen=True)
class LayerMaxima:
    """One down projection's largest |input| and |output|, as the scan first saw it (before removing anything there)."""

    layer: int
    tensor: str
    expert: int | None
    input_max: float
    input_channel: int
    input_token: int
    input_median: float
    output_max: float
    output_channel: int
    output_token: int
    output_median: float

    def to_dict(self) -> dict[str, Any]:
        """The schema's layer_maxima record."""
        return {
            "layer": self.layer,
            "input_max": _num(self.input_max),
            "input_channel": self.input_channel,
            "input_token": self.input_token,
            "output_max": _num(self.output_max),
            "output_channel": self.output_channel,
            "output_token": self.output_token,
            "input_median": _num(self.input_median),
            "output_median": _num(self.output_median),
            "expert": self.expert,
        }


@dataclass(frozen=True)
class DetectedWeight(Located):
    """A super-weight candidate the detector found, with the activations that gave it away.

    Where it sits is a Coordinate (``location``), as in the registry; ``layer``, ``tensor``, ``row``, ``column``,
    ``expert``, ``index`` and ``coordinate`` read it.
    """

    location: Coordinate
    value: float
    value_dtype: str
    iteration: int
    token: int
    input_activation: float
    output_activation: float
    contribution: float
    share: float
    output_ratio: float
    weight_ratio: float

    def to_dict(self, citation: str, date: str) -> dict[str, Any]:
        """The schema's claim record: status "detected",
        impact unmeasured (a candidate until verification measures it)."""
        return {
            **self.location.to_dict(),
            "value": float(self.value),
            "value_dtype": self.value_dtype,
            "status": "detected",
            "impact": {"classification": "unmeasured"},
            "sources": [
                {
                    "citation": citation,
                    "kind": "swindex",
                    "evidence": "detected",
                    "date": date,
                    "value": float(self.value),
                }
            ],
            "evidence": {
                "detection": {
                    "iteration": self.iteration,
                    "input_activation": _num(self.input_activation),
                    "output_activation": _num(self.output_activation),
                    "token": self.token,
                    "contribution": _num(self.contribution),
                    "share": _num(self.share),
                    "output_ratio": _num(self.output_ratio),
                    "weight_ratio": _num(self.weight_ratio),
                }
            },
        }

    def describe(self) -> str:
        """One line for people: where, how big, and the activations behind it."""
        expert = f" expert {self.expert}" if self.expert is not None else ""
        return (
            f"layer {self.layer}{expert}: {self.coordinate} = {self.value:.4g}; input {self.input_activation:.4g} -> "
            f"output {self.output_activation:.4g} at token {self.token} ({self.share:.0%} of it, "
            f"{self.output_ratio:.0f}x the layer's median output; weight {self.weight_ratio:.0f}x its row's median)"
        )


@dataclass(frozen=True)
class MassiveChannel:
    """The candidates that feed one hidden channel (their row): a model's massive activation lives in one or a few."""

    row: int
    candidates: tuple[DetectedWeight, ...]

    @property
    def largest_output(self) -> float:
        """The largest spike any of its candidates made (signed)."""
        return max((w.output_activation for w in self.candidates), key=abs)


@dataclass(frozen=True)
class DetectionResult:
    """Everything one detection run established about one model."""

    candidates: tuple[DetectedWeight, ...]
    layers: tuple[LayerMaxima, ...]
    source: str
    model_id: str | None
    architecture: str
    family: str | None
    parameters: int
    revision: str | None
    dimensions: dict[str, int | None]
    dtype: str
    device: str
    prompt: str | None
    input_ids: tuple[int, ...]
    thresholds: Thresholds
    passes: int
    layer_evaluations: int
    peak: Peak
    stop_reason: str
    date: str
    tool: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def channels(self) -> tuple[MassiveChannel, ...]:
        """The candidates grouped by the massive channel (row) they feed, largest spike first."""
        rows: dict[int, list[DetectedWeight]] = {}
        for weight in self.candidates:
            rows.setdefault(weight.row, []).append(weight)
        groups = [MassiveChannel(row, tuple(weights)) for row, weights in rows.items()]
        return tuple(sorted(groups, key=lambda g: -abs(g.largest_output)))

    @property
    def full_passes(self) -> float:
        """The work done, in full forward passes of the model: layer evaluations over the number of layers."""
        layers = self.dimensions.get("num_layers") or 1
        return self.layer_evaluations / layers

    def work(self) -> str:
        """The work in words, as the entry's notes and the summary give it."""
        return (
            f"{self.passes} pass(es), {self.layer_evaluations} layer evaluations = {self.full_passes:.2f} full passes "
            f"of {self.dimensions.get('num_layers')} layers"
        )

    def scale(self) -> str:
        """The model's scale in words: its largest down-projection output and the spike size that counts from it."""
        floor = max(self.thresholds.min_output, self.thresholds.min_scale * self.peak.value)
        expert = f" expert {self.peak.expert}," if self.peak.expert is not None else ""
        return (
            f"largest down-projection output {self.peak.value:.4g} (layer {self.peak.layer},{expert} channel "
            f"{self.peak.channel}, token {self.peak.token}); spikes count from {floor:.4g}"
        )

    def to_entry(self, model_id: str | None = None) -> dict[str, Any]:
        """The registry entry (a dict with the schema's field names), checked by swindex.validate."""
        from ..claims import derive_verdict
        from ..validate import validate_entry_dict

        entry_id = model_id or self.model_id or _id_from_source(self.source)
        citation = f"{self.tool} detect: {METHOD}"
        run: dict[str, Any] = {
            "tool": self.tool,
            "date": self.date,
            "method": METHOD[:200],
            "revision": self.revision,
            "dtype": self.dtype,
            "device": self.device,
            "prompt": self.prompt,
            "input_ids": list(self.input_ids),
            "thresholds": self.thresholds.as_measurements(),
            "iterations": self.passes,
            "layer_evaluations": self.layer_evaluations,
            "notes": "; ".join((f"stopped: {self.stop_reason}", f"work: {self.work()}", self.scale(), *self.notes)),
            "layers": [m.to_dict() for m in self.layers],
        }
        entry: dict[str, Any] = {
            "schema_version": 2,
            "id": entry_id,
            "architecture": self.architecture,
            "family": self.family,
            "parameters": self.parameters,
            "revision": self.revision,
            "dimensions": self.dimensions,
            "modified": self.date,
            "verdict": {},
            "claims": [w.to_dict(citation, self.date) for w in self.candidates],
            "evidence": {"detection": run},
        }
        entry["verdict"] = derive_verdict(entry)
        if self.family is None:
            del entry["family"]
        problems = validate_entry_dict(entry)
        if problems:
            raise DetectionError(
                "the detector built an invalid entry (a bug; please report it):\n" + "\n".join(map(str, problems))
            )
        return entry

    def summary(self) -> str:
        """A few human lines: what was scanned, the model's scale, and the candidates by the channel they feed."""
        head = (
            f"{self.model_id or self.source}: {len(self.candidates)} candidate(s) in {len(self.channels)} massive "
            f"channel(s) ({self.architecture}, {self.dtype} on {self.device}; stopped: {self.stop_reason})"
        )
        lines = [head, f"  work: {self.work()}", f"  scale: {self.scale()}"]
        for channel in self.channels:
            lines.append(
                f"  channel {channel.row}: {len(channel.candidates)} candidate(s), largest spike "
                f"{channel.largest_output:.4g}"
            )
            lines.extend(f"    {w.describe()}" for w in channel.candidates)
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _num(value: float) -> float:
    """A measured activation or ratio at the precision it carries (no 17-digit noise);
    stored weight values are kept exact."""
    return float(f"{value:.6g}")


def _id_from_source(source: str) -> str:
    """A registry id for a local directory: its name, cleaned to the schema's id alphabet."""
    name = _ID_PART.sub("-", Path(source).name).strip("-.") or "model"
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name))
    if not name[0].isalnum():
        name = "m" + name
    return name[:96]
