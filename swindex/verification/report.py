"""What `swindex verify` found, as a typed record that prints as JSON and writes itself into an entry.

Classification of one weight, from the metric with only that weight zeroed (``swindex.claims.classify``,
thresholds in ``swindex.claims.IMPACT_THRESHOLDS``):

* perplexity (causal LMs), ratio = zeroed / original perplexity:
  ``critical`` when the ratio is at least 2 (perplexity at least doubles: the paper's Llama-7B goes from
  5.7 to several hundred), ``significant`` when at least 1.05 (a 5% rise, more than any ordinary weight of
  a trained model moves it), else ``inert``;
* embedding_shift (encoders), the mean cosine distance between each sentence's embedding before and
  after: ``critical`` from 0.1, ``significant`` from 0.01, else ``inert``.

``apply`` records the run (``evidence.verification``), each measured claim's ``impact`` and the entry's
``verdict`` (``swindex.claims.reconcile``); `swindex.verification.apply.record` adds the artifact, the
``modified`` rule and validation on top.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from collections.abc import Mapping
from typing import Any

from ..claims import IMPACT_THRESHOLDS
from ..records import Coordinate, RatioBound

THRESHOLDS = IMPACT_THRESHOLDS
"""Classification thresholds per metric (one home: swindex.claims)."""


class FingerprintWarning(UserWarning):
    """A recorded weight value differs from the loaded one: probably another revision of the checkpoint."""


def _finite(value: Any) -> Any:
    """JSON/YAML-safe number: non-finite floats become None (and are left out of entries)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Fingerprint:
    """Recorded values against the loaded weights."""

    matches: bool
    checked: int
    mismatches: tuple[str, ...] = ()
    hint: str | None = None  # what the mismatches probably mean, kept apart from the per-weight lines

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"matches": self.matches, "checked": self.checked, "mismatches": list(self.mismatches)}
        if self.hint:
            result["hint"] = self.hint
        return result


@dataclass(frozen=True)
class WeightResult:
    """One claim as measured: where it is (as the entry names it) and what zeroing it did."""

    location: Coordinate
    status: str | None
    recorded_value: float | None
    loaded_value: float
    zeroed: float | None
    ratio: float | None
    classification: str  # critical, significant, inert, or unmeasured (no finite figure)
    super_activation: float | None
    super_activation_zeroed: float | None
    similarity_shift: float | None = None
    scale_curve: tuple[tuple[float, float, float], ...] | None = None  # (scale, metric, ratio): see verification.curve
    tokens: int | None = None  # predicted tokens measured with this weight zeroed (fewer than the run's once settled)
    bound: RatioBound | None = None  # the confidence bound on the whole text's ratio that settled the class

    layer = property(lambda self: self.location.layer)
    tensor = property(lambda self: self.location.tensor)
    row = property(lambda self: self.location.row)
    column = property(lambda self: self.location.column)
    expert = property(lambda self: self.location.expert)
    index = property(lambda self: self.location.index)

    @property
    def coordinate(self) -> str:
        """``tensor[i, j]``, the claim's key within its entry."""
        return str(self.location)

    def to_dict(self) -> dict[str, Any]:
        measured = {k: _finite(v) for k, v in asdict(self).items() if k not in ("location", "bound")}
        bound = self.bound.to_dict() if self.bound is not None and _finite(self.bound.high) is not None else None
        return {**self.location.to_dict(), **measured, "bound": bound, "coordinate": self.coordinate}

    def impact(self, metric: str, original: float | None = None, date: str | None = None) -> dict[str, Any]:
        """The schema's impact object as swindex measured it (``measured_by`` is added where it is adopted)."""
        fields = {
            "classification": self.classification,
            "metric": metric,
            "original": original if metric == "perplexity" else None,
            "zeroed": self.zeroed,
            "ratio": self.ratio,
            "super_activation": self.super_activation,
            "super_activation_zeroed": self.super_activation_zeroed,
            "similarity_shift": self.similarity_shift,
            "tokens": self.tokens,
            "bound": self.bound.to_dict() if self.bound is not None and _finite(self.bound.high) is not None else None,
            "date": date,
        }
        impact = {k: v for k, v in fields.items() if _finite(v) is not None}
        if self.scale_curve:
            from .curve import curve_records

            impact["scale_curve"] = curve_records(self.scale_curve)
        return impact


@dataclass(frozen=True)
class Stopword:
    """Mean next-token probability of one common token, before and with every claimed weight zeroed."""

    token: int
    text: str | None
    original: float
    zeroed: float

    @property
    def ratio(self) -> float | None:
        return self.zeroed / self.original if self.original > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "text": self.text,
            "original": self.original,
            "zeroed": self.zeroed,
            "ratio": _finite(self.ratio),
        }


@dataclass(frozen=True)
class SettledFigure:
    """A joint figure measured sequence by sequence until its ratio's class was settled: what it took and its bound."""

    tokens: int
    bound: RatioBound

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "bound": self.bound.to_dict()}


@dataclass(frozen=True)
class VerificationReport:
    """Everything one verification run measured; ``to_json`` for people and scripts, ``apply`` for entries."""

    model: str | None
    entry_id: str | None
    revision: str | None
    dtype: str
    device: str
    date: str
    tool: str
    metric: str  # "perplexity" or "embedding_shift"
    text: str
    sequences: int
    tokens: int
    original: float | None
    all_zeroed: float | None
    control: float | None
    restored_activation: float | None
    weights: tuple[WeightResult, ...]
    control_weights: tuple[str, ...]
    fingerprint: Fingerprint
    stopwords: tuple[Stopword, ...] = ()
    similarity_shift: float | None = None  # encoders, all zeroed
    notes: tuple[str, ...] = ()
    thresholds: dict[str, Any] = field(default_factory=dict)
    method: str = ""  # which way the passes ran (fast, with the shortcuts taken, or plain, and why)
    settled: dict[str, SettledFigure] = field(default_factory=dict)  # all_zeroed / restored_activation / control

    @property
    def tokens_predicted(self) -> int:
        """Tokens a whole-text pass predicts (each sequence's first token is context only)."""
        return self.tokens - self.sequences if self.metric == "perplexity" else self.tokens

    def figures(self) -> dict[str, Any]:
        """original / all_zeroed / control / restored_activation / per_weight in the run's metric."""
        return {
            "original": _finite(self.original),
            "all_zeroed": _finite(self.all_zeroed),
            "control": _finite(self.control),
            "restored_activation": _finite(self.restored_activation),
            "per_weight": {w.coordinate: _finite(w.zeroed) for w in self.weights},
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `swindex verify --json` prints."""
        figures = self.figures()
        return {
            "model": self.model,
            "entry": self.entry_id,
            "revision": self.revision,
            "dtype": self.dtype,
            "device": self.device,
            "date": self.date,
            "tool": self.tool,
            "metric": self.metric,
            "text": self.text,
            "sequences": self.sequences,
            "tokens": self.tokens,
            "perplexity": figures if self.metric == "perplexity" else None,
            "embedding_shift": figures if self.metric == "embedding_shift" else None,
            "similarity_shift": _finite(self.similarity_shift),
            "claims": [w.to_dict() for w in self.weights],
            "control_weights": list(self.control_weights),
            "stopwords": [s.to_dict() for s in self.stopwords],
            "fingerprint": self.fingerprint.to_dict(),
            "thresholds": dict(self.thresholds),
            "notes": list(self.notes),
            "method": self.method,
            "settled": {name: figure.to_dict() for name, figure in self.settled.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def verification_run(self) -> dict[str, Any]:
        """The schema's verification_run object."""
        run: dict[str, Any] = {
            "tool": self.tool,
            "date": self.date,
            "revision": self.revision,
            "dtype": self.dtype,
            "metric": self.metric,
            "text": self.text[:200],
            "tokens": self.tokens,
            "original": self.original,
            "all_zeroed": self.all_zeroed,
            "control": self.control,
            "restored_activation": self.restored_activation,
            "settled": self._settled_run() or None,
            "similarity_shift": self.similarity_shift,
            "control_weights": list(self.control_weights),
            "fingerprint": self.fingerprint.to_dict(),
        }
        if self.stopwords:
            run["stopword_shift"] = {
                f"token_{s.token}": s.ratio for s in self.stopwords if _finite(s.ratio) is not None
            }
        if self.notes:
            run["notes"] = " ".join(self.notes)[:20000]
        if self.dtype not in ("float32", "bfloat16", "float16"):
            run.pop("dtype")
        return {k: v for k, v in run.items() if _finite(v) is not None or k == "revision"}

    def _settled_run(self) -> dict[str, Any]:
        """The settled figures the run records: those whose figure and bound are finite."""
        figures = {"all_zeroed": self.all_zeroed, "restored_activation": self.restored_activation}
        figures["control"] = self.control
        return {
            name: figure.to_dict()
            for name, figure in self.settled.items()
            if _finite(figures.get(name)) is not None and _finite(figure.bound.high) is not None
        }

    def measurements(self) -> dict[str, dict[str, Any]]:
        """Each measured claim's impact, by coordinate (what ``swindex.claims.reconcile`` adopts)."""
        original = _finite(self.original)
        return {
            w.coordinate: w.impact(self.metric, original, self.date)
            for w in self.weights
            if w.classification != "unmeasured"
        }

    def apply(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``entry`` (registry dict) with this run's evidence, measured impacts and verdict;
        ``entry`` is not changed.

        Impacts follow ``swindex.claims.reconcile``: swindex's measurement is adopted where no source
        measured the claim, a contradiction with a source's measurement becomes a disagreement, and the
        verdict is derived again. ``modified`` is left to the caller (`swindex.verification.apply.record`).
        """
        return self.applied(entry)[0]

    def applied(self, entry: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """``apply``, and what it changed in words (impacts, disagreements, the verdict)."""
        from ..claims import reconcile

        result = copy.deepcopy(dict(entry))
        evidence = dict(result.get("evidence") or {})
        evidence["verification"] = self.verification_run()
        result["evidence"] = evidence
        return reconcile(result, self.measurements())

    def __str__(self) -> str:
        unit = "perplexity" if self.metric == "perplexity" else "embedding shift"

        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.4g}"

        lines = [
            f"{self.entry_id or self.model}: {unit} on {self.text} ({self.sequences} sequences, {self.tokens} tokens, "
            f"{self.dtype}, {self.device})",
            f"  original {fmt(self.original)}   all zeroed {fmt(self.all_zeroed)}   control {fmt(self.control)}   "
            f"all zeroed, super activation restored {fmt(self.restored_activation)}",
        ]
        for name, figure in self.settled.items():
            if figure.tokens < self.tokens_predicted:
                label = name.replace("_", " ")
                lines.append(
                    f"  {label}: an estimate, settled after {figure.tokens} of {self.tokens_predicted} tokens, "
                    f"ratio {figure.bound}"
                )
        for w in self.weights:
            act = ""
            if w.super_activation is not None:
                act = f"   super activation {w.super_activation:.4g} -> {fmt(w.super_activation_zeroed)}"
            change = f"(x{fmt(w.ratio)})" if self.metric == "perplexity" else "(cosine distance)"
            settled = ""
            if w.bound is not None and w.tokens is not None and w.tokens < self.tokens_predicted:
                settled = f"   settled after {w.tokens} of {self.tokens_predicted} tokens, {w.bound}"
            lines.append(f"  {w.coordinate}: zeroed {fmt(w.zeroed)} {change} {w.classification}{act}{settled}")
        if self.stopwords:
            shown = ", ".join(f"{s.text if s.text is not None else s.token!r} x{fmt(s.ratio)}" for s in self.stopwords)
            lines.append(f"  common-token probability with all zeroed: {shown}")
        fp = self.fingerprint
        lines.append(f"  fingerprint: {'matches' if fp.matches else 'MISMATCH'} ({fp.checked} value(s) checked)")
        lines.extend(f"    {m}" for m in fp.mismatches)
        if fp.hint:
            lines.append(f"    {fp.hint}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.method:
            lines.append(f"  method: {self.method}")
        return "\n".join(lines)
