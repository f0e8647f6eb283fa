"""What a detection run found, as frozen records, and its registry entry (validated before it is returned)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DetectionError
from ..records import format_coordinate

_ID_PART = re.compile(r"[^A-Za-z0-9_.-]+")
METHOD = "activation-spike iteration over FFN down projections (Yu et al. 2024, arXiv 2411.07191, generalised)"


@dataclass(frozen=True)
class Thresholds:
    """When a down projection's output counts as a super activation, and a weight as its cause.

    A pass flags the largest |output| of a down projection when it is at least ``min_output`` (absolute)
    and at least ``min_output_ratio`` times that projection's median |output| in the same pass (relative:
    Gaussian-like outputs of untrained or spike-free layers peak at ~5-10x their median). A weight is a
    super weight when its product with its input at that token makes up at least ``min_share`` of the
    spike, with the spike's sign, and when the weight itself is at least ``min_weight_ratio`` times the
    median |weight| of its row: an ordinary weight that merely passes on a huge input (the other rows of
    a super weight's column, once it is removed) is not a super weight. The input is not thresholded, so
    a modest input times a large weight still counts (SmolLM2-1.7B layer 1: input 26.5, output 342).
    """

    min_output: float = 20.0
    min_output_ratio: float = 100.0
    min_share: float = 0.25
    min_weight_ratio: float = 10.0

    def as_measurements(self) -> dict[str, float]:
        return {
            "min_output": self.min_output, "min_output_ratio": self.min_output_ratio,
            "min_share": self.min_share, "min_weight_ratio": self.min_weight_ratio,
        }


@dataclass(frozen=True)
class LayerMaxima:
    """One down projection's largest |input| and |output| in the first pass (the paper's Figure 3)."""

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
            "input_max": _num(self.input_max), "input_channel": self.input_channel, "input_token": self.input_token,
            "output_max": _num(self.output_max), "output_channel": self.output_channel, "output_token": self.output_token,
            "input_median": _num(self.input_median), "output_median": _num(self.output_median),
            "expert": self.expert,
        }


@dataclass(frozen=True)
class DetectedWeight:
    """A super weight the detector found, with the activations that gave it away."""

    layer: int
    tensor: str
    row: int
    column: int
    expert: int | None
    index: tuple[int, ...]
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

    @property
    def coordinate(self) -> str:
        """``tensor[i, j]``, as the registry writes coordinates."""
        return format_coordinate(self.tensor, self.index)

    def to_dict(self, citation: str, date: str) -> dict[str, Any]:
        """The schema's super_weight record, status "detected"."""
        return {
            "layer": self.layer,
            "tensor": self.tensor,
            "row": self.row,
            "column": self.column,
            "expert": self.expert,
            "index": list(self.index),
            "value": float(self.value),
            "value_dtype": self.value_dtype,
            "status": "detected",
            "sources": [{"citation": citation, "kind": "swindex", "evidence": "detected", "date": date, "value": float(self.value)}],
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


@dataclass(frozen=True)
class DetectionResult:
    """Everything one detection run established about one model."""

    super_weights: tuple[DetectedWeight, ...]
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
    iterations: int
    stop_reason: str
    date: str
    tool: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_entry(self, model_id: str | None = None) -> dict[str, Any]:
        """The registry entry (a dict with the schema's field names), checked by swindex.validate."""
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
            "iterations": self.iterations,
            "notes": "; ".join((f"stopped: {self.stop_reason}", *self.notes)),
            "layers": [m.to_dict() for m in self.layers],
        }
        entry: dict[str, Any] = {
            "schema_version": 1,
            "id": entry_id,
            "architecture": self.architecture,
            "family": self.family,
            "parameters": self.parameters,
            "revision": self.revision,
            "dimensions": self.dimensions,
            "modified": self.date,
            "super_weights": [w.to_dict(citation, self.date) for w in self.super_weights],
            "evidence": {"detection": run},
        }
        if self.family is None:
            del entry["family"]
        problems = validate_entry_dict(entry)
        if problems:
            raise DetectionError("the detector built an invalid entry (a bug; please report it):\n" + "\n".join(map(str, problems)))
        return entry

    def summary(self) -> str:
        """A few human lines: what was scanned and what was found."""
        head = (
            f"{self.model_id or self.source}: {len(self.super_weights)} super weight(s) in {self.iterations} pass(es) "
            f"({self.architecture}, {self.dtype} on {self.device}; stopped: {self.stop_reason})"
        )
        lines = [head]
        for w in self.super_weights:
            expert = f" expert {w.expert}" if w.expert is not None else ""
            lines.append(
                f"  layer {w.layer}{expert}: {w.coordinate} = {w.value:.4g}; input {w.input_activation:.4g} -> output "
                f"{w.output_activation:.4g} at token {w.token} ({w.share:.0%} of it, {w.output_ratio:.0f}x the layer's median output; "
                f"weight {w.weight_ratio:.0f}x its row's median)"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _num(value: float) -> float:
    """A measured activation or ratio at the precision it carries (no 17-digit noise); stored weight values are kept exact."""
    return float(f"{value:.6g}")


def _id_from_source(source: str) -> str:
    """A registry id for a local directory: its name, cleaned to the schema's id alphabet."""
    name = _ID_PART.sub("-", Path(source).name).strip("-.") or "model"
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name))
    if not name[0].isalnum():
        name = "m" + name
    return name[:96]
