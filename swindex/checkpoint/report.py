"""What a check found: one record per weight, a verdict for each and for the checkpoint, and the exit status.

A verdict says what the weight's value here does to the model, as measured, not how far the number moved:

* The **observed scale** is the value here divided by the recorded value (dequantized for quantized files).
* With a **scale curve** on record (``impact.scale_curve``: perplexity measured by ``swindex verify`` with the
  weight multiplied by 0, 0.25, 0.5, 0.75, 0.9, 1.1, 1.5, 2 and 3), the curve, interpolated linearly (scale 1
  is the model as measured), predicts the perplexity change at the observed scale:
  **kept** under `KEPT_CHANGE` (5%), **degraded** from 5% to `LOST_RATIO` (2x), **lost** above. A scale past
  the curve's last point is predicted at least as bad as that point, and never better than degraded.
* Without a curve, documented **default bands** of the scale decide (`KEPT_BAND`, `LOST_BELOW`): kept within
  0.9..1.1, lost under 0.25, degraded elsewhere. They come from the one curve measured so far (SmolLM2-135M-
  Instruct's critical weight: x0.9 costs 1.2% perplexity, x0.75 4.8%, x0.5 22%, x0.25 56%, zero 4.24x, and
  x1.1 to x3 cost nothing), made stricter both ways: they never call kept a scale that curve calls degraded,
  and call lost from x0.25, where that curve reaches 2x only under about x0.21.
* **Zero**, a **sign flip** or a non-finite value is **lost** whatever the curve says.
* Without a recorded value, what can be told without one is still judged: zero, or no longer an outlier of
  its stored line (``|w|`` under `OUTLIER_K` times the line's median magnitude), is **lost**; otherwise the
  weight is **present**, with that ratio shown: it stands out as a super weight does, at unknown strength.

The checkpoint's verdict is the worst of its weights (lost, degraded, present, kept), and the exit status
says it to scripts: 0 every weight kept; 1 one degraded or lost; 2 could not check (an error reading the
checkpoint or choosing its base, or a weight only *present*: without a recorded value its strength cannot be
judged); 3 bad usage or an internal error. A crash never exits 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import shown
from ..layout import gguf_index
from ..records import Coordinate

KEPT_CHANGE = 0.05
"""Predicted perplexity change under which a weight is kept."""
LOST_RATIO = 2.0
"""Predicted perplexity ratio from which a weight is lost (the registry's 'critical' threshold for zeroing)."""
KEPT_BAND = (0.9, 1.1)
LOST_BELOW = 0.25
DEFAULT_BANDS: dict[str, Any] = {"kept": KEPT_BAND, "lost_below": LOST_BELOW}
"""Observed scales judged without a curve: kept inside ``kept``, lost under ``lost_below``, degraded elsewhere."""
OUTLIER_K = 3.0
"""A weight without a recorded value is lost when ``|w|`` is under this many times its line's median magnitude.

Measured on the registry's models loadable here (dequantized GGUF down projections, every row): the recorded
weights of SmolLM2-135M-Instruct stand 18.2x, 18.8x and 71.5x over their row's median magnitude, and the
largest weight of Qwen2.5-Coder-0.5B-Instruct's reported row (layer 21, row 62) 221x; the largest ordinary
weight of a row is typically 5.7x (SmolLM2) and 6.4x (Qwen) its median. Under 3x a weight sits inside the
bulk of ordinary weights of its row: it is no longer an outlier, whatever it was."""
VERDICTS = ("kept", "degraded", "lost", "present")
_SEVERITY = {"kept": 0, "present": 1, "degraded": 2, "lost": 3}
EXIT_STATUS = {"kept": 0, "present": 2, "degraded": 1, "lost": 1}
COULD_NOT_CHECK, BAD_USAGE = 2, 3
ROLES = ("super weight", "weight to keep")


@dataclass(frozen=True)
class Judgement:
    """A weight's verdict and the figures it rests on."""

    verdict: str
    reason: str
    judged_by: str  # "curve", "default bands", "row outlier", "zero", "sign" or "value"
    observed_scale: float | None = None
    predicted_ratio: float | None = None  # predicted perplexity / perplexity as measured
    line_ratio: float | None = None  # |w| / median |w| of its stored line


@dataclass(frozen=True)
class WeightCheck:
    """One weight of the entry, as found in the checkpoint.

    ``location`` is the weight's position as the entry records it (a Coordinate: layer, row, column, expert and the
    transformers index); ``tensor`` and ``index`` say where this checkpoint stores it, which may differ.
    """

    location: Coordinate  # as the entry records it
    role: str  # "super weight" or "weight to keep"
    tensor: str  # the tensor's name in this checkpoint
    index: tuple[int, ...]  # where the value sits in that tensor, in numpy's order (for GGUF, the reversed ne order)
    file: str
    stored_as: str  # dtype or GGUF quantization type
    recorded: float | None
    value: float
    judgement: Judgement
    quantized: bool = False
    block_scale: float | None = None  # the quantization step of the block holding it
    block_error: float | None = None  # (value - recorded) / block_scale
    largest_in_row: bool | None = None
    largest_in_column: bool | None = None  # transposed layouts store a column contiguously, not a row
    largest_in_block: bool | None = None

    coordinate = property(lambda self: str(self.location), doc="``tensor[i, j]`` as the entry writes it.")
    layer = property(lambda self: self.location.layer, doc="0-based layer index.")
    row = property(lambda self: self.location.row, doc="Output channel.")
    column = property(lambda self: self.location.column, doc="Input channel.")
    expert = property(lambda self: self.location.expert, doc="Expert index, None for dense layers.")
    index_hf = property(lambda self: self.location.index, doc="The entry's index: transformers' tensor order.")

    @property
    def index_gguf(self) -> tuple[int, ...]:
        """llama.cpp's order, fastest dimension first: (column, row[, expert])."""
        return gguf_index(self.row, self.column, self.expert)

    @property
    def verdict(self) -> str:
        return self.judgement.verdict

    @property
    def reason(self) -> str:
        return self.judgement.reason

    @property
    def sign(self) -> str:
        return "+" if self.value > 0 else "-" if self.value < 0 else "0"

    @property
    def relative_change(self) -> float | None:
        if self.recorded is None or self.recorded == 0:
            return None
        return (self.value - self.recorded) / abs(self.recorded)

    def to_dict(self) -> dict[str, Any]:
        """Every key every time (null when absent), so scripts can index without guarding."""
        j = self.judgement
        return {
            "coordinate": self.coordinate,
            "role": self.role,
            "layer": self.layer,
            "row": self.row,
            "column": self.column,
            "expert": self.expert,
            "index_hf": list(self.index_hf),
            "index_gguf": list(self.index_gguf),
            "tensor": self.tensor,
            "index": list(self.index),
            "file": self.file,
            "stored_as": self.stored_as,
            "recorded": self.recorded,
            "value": _finite(self.value),
            "sign": self.sign,
            "relative_change": _finite(self.relative_change),
            "observed_scale": _finite(j.observed_scale),
            "predicted_ratio": _finite(j.predicted_ratio),
            "predicted_change": _finite(j.predicted_ratio - 1) if j.predicted_ratio is not None else None,
            "line_ratio": _finite(j.line_ratio),
            "judged_by": j.judged_by,
            "verdict": j.verdict,
            "reason": j.reason,
            "quantized": self.quantized,
            "block_scale": _finite(self.block_scale),
            "block_error": _finite(self.block_error),
            "largest_in_row": self.largest_in_row,
            "largest_in_column": self.largest_in_column,
            "largest_in_block": self.largest_in_block,
        }

    def __str__(self) -> str:
        recorded = "no recorded value" if self.recorded is None else f"recorded {self.recorded:.6g}"
        here = f"{'dequantized' if self.quantized else 'here'} {self.value:.6g} ({shown(self.stored_as)})"
        facts = [recorded, here]
        j = self.judgement
        if j.observed_scale is not None:
            facts.append(f"scale x{j.observed_scale:.3g}")
        if j.predicted_ratio is not None:
            facts.append(f"predicted perplexity {j.predicted_ratio - 1:+.1%}")
        if j.line_ratio is not None:
            facts.append(f"{j.line_ratio:.3g}x its line's median |w|")
        if self.block_error is not None:
            facts.append(f"error {self.block_error:+.3g} x block scale {self.block_scale:.4g}")
        largest = [
            f"{name}: {'yes' if flag else 'no'}"
            for name, flag in (
                ("row", self.largest_in_row),
                ("column", self.largest_in_column),
                ("block", self.largest_in_block),
            )
            if flag is not None
        ]
        if largest:
            facts.append("largest in " + ", ".join(largest))
        facts.append(f"sign {self.sign}")
        read_from = f"{shown(self.tensor)}{list(self.index)}"
        where = f"  (HF index {list(self.index_hf)}, GGUF index {list(self.index_gguf)}; read from {read_from})"
        return (
            f"{self.verdict:8} {self.role}: {shown(self.coordinate)}{where}\n         "
            + "; ".join(facts)
            + (f"\n         {self.reason}" if self.reason else "")
        )


@dataclass(frozen=True)
class CheckReport:
    """The check of one checkpoint against one registry entry."""

    checkpoint: str
    format: str  # "safetensors" or "gguf"
    entry: str  # the entry's model id
    entry_rule: str  # which rule chose it: "given", "named", or one of swindex.checkpoint.infer.RULES
    entry_from: str  # the evidence in words
    weights: tuple[WeightCheck, ...]
    revision: str | None = None
    sha256: str | None = None  # when the file was hashed for the sha256 rule
    bytes_read: int = 0
    reads: int = 0
    seconds: float = 0.0  # reading the checkpoint: neither start-up nor finding the entry
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        if not self.weights:
            return "present"
        return max((w.verdict for w in self.weights), key=_SEVERITY.__getitem__)

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    @property
    def counts(self) -> dict[str, int]:
        return {v: sum(w.verdict == v for w in self.weights) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return report_dict(
            checkpoint=self.checkpoint,
            format=self.format,
            revision=self.revision,
            entry=self.entry,
            entry_rule=self.entry_rule,
            entry_from=self.entry_from,
            sha256=self.sha256,
            verdict=self.verdict,
            exit_status=self.exit_status,
            counts=self.counts,
            weights=[w.to_dict() for w in self.weights],
            bytes_read=self.bytes_read,
            reads=self.reads,
            seconds=self.seconds,
            notes=list(self.notes),
        )

    def to_json(self, indent: int | None = 2) -> str:
        """ASCII JSON: names from the file (U+202E, C1 controls, lone surrogates) arrive as escapes, never raw."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=True)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in self.counts.items() if n)
        lines = [
            f"{shown(self.checkpoint)} ({self.format}) against {self.entry} "
            f"(rule {self.entry_rule}: {shown(self.entry_from)})",
            *(str(w) for w in self.weights),
            *(shown(note) for note in self.notes),
            f"verdict: {self.verdict} ({counts or 'no weights'}); "
            f"read {_size(self.bytes_read)} in {self.reads} read(s), {self.seconds * 1000:.0f} ms",
        ]
        return "\n".join(lines)


REPORT_KEYS = (
    "checkpoint",
    "format",
    "revision",
    "entry",
    "entry_rule",
    "entry_from",
    "sha256",
    "verdict",
    "exit_status",
    "counts",
    "weights",
    "bytes_read",
    "reads",
    "seconds",
    "notes",
    "thresholds",
    "error",
)
"""The keys of every JSON report, on success and on error alike."""


def report_dict(**values: Any) -> dict[str, Any]:
    """A JSON report with every key of REPORT_KEYS (null when absent) and the thresholds verdicts use."""
    thresholds = {
        "kept_change": KEPT_CHANGE,
        "lost_ratio": LOST_RATIO,
        "default_bands": DEFAULT_BANDS,
        "outlier_k": OUTLIER_K,
    }
    return {key: values.get(key, thresholds if key == "thresholds" else None) for key in REPORT_KEYS}


def error_json(checkpoint: str, message: str, exit_status: int) -> str:
    """The JSON report of a check that could not be made: the same keys, the error in ``error``."""
    return json.dumps(
        report_dict(checkpoint=checkpoint, exit_status=exit_status, error=message, weights=[], notes=[]),
        indent=2,
        ensure_ascii=True,
    )


def judge(
    recorded: float | None, value: float, *, curve: Sequence[tuple[float, float]] | None = None, line: Any = None
) -> Judgement:
    """The verdict of one weight (see the module docstring), with its line ratio whenever its line was read."""
    from dataclasses import replace

    judgement = _judge(recorded, value, curve, line)
    if judgement.line_ratio is None and line is not None and math.isfinite(value):
        judgement = replace(judgement, line_ratio=line_ratio(value, line))
    return judgement


def _judge(recorded: float | None, value: float, curve: Sequence[tuple[float, float]] | None, line: Any) -> Judgement:
    if not math.isfinite(value):
        return Judgement("lost", f"the value here is {value}", "value")
    if value == 0:
        return Judgement("lost", "zeroed", "zero", 0.0 if recorded else None)
    if recorded is None or recorded == 0 or not math.isfinite(recorded):
        return _judge_without_value(value, line)
    scale = value / recorded
    if scale < 0:
        return Judgement("lost", "sign flipped", "sign", scale)
    if curve:
        predicted, beyond = predicted_ratio(curve, scale)
        verdict = "kept" if predicted < 1 + KEPT_CHANGE else "degraded" if predicted < LOST_RATIO else "lost"
        if beyond and verdict == "kept":
            verdict = "degraded"
        where = f" (past the measured curve, which ends at x{max(s for s, _ in curve):g})" if beyond else ""
        reason = f"scaled x{scale:.3g}: the recorded curve predicts perplexity {predicted - 1:+.1%}{where}"
        return Judgement(verdict, "" if verdict == "kept" and not beyond else reason, "curve", scale, predicted)
    low, high = KEPT_BAND
    if low <= scale <= high:
        return Judgement("kept", "", "default bands", scale)
    if scale < LOST_BELOW:
        return Judgement(
            "lost",
            f"scaled x{scale:.3g}, under x{LOST_BELOW} (no scale curve on record: default bands)",
            "default bands",
            scale,
        )
    return Judgement(
        "degraded",
        f"scaled x{scale:.3g}, outside x{low}..x{high} (no scale curve on record: default bands)",
        "default bands",
        scale,
    )


def predicted_ratio(curve: Sequence[tuple[float, float]], scale: float) -> tuple[float, bool]:
    """(perplexity ratio the curve predicts at ``scale``, whether ``scale`` lies past the curve's last point).

    The curve's points are joined by straight lines, through (1, 1): the model as measured. Past the last
    point the prediction is that point's (or 1 if lower is predicted there: never better than measured).
    """
    points = sorted({**{float(s): float(r) for s, r in curve}, 1.0: 1.0}.items())
    if scale > points[-1][0]:
        return max(points[-1][1], 1.0), True
    if scale < points[0][0]:
        return max(points[0][1], 1.0), True
    for (s0, r0), (s1, r1) in zip(points, points[1:]):
        if s0 <= scale <= s1:
            return r0 + (r1 - r0) * (scale - s0) / (s1 - s0) if s1 > s0 else r1, False
    return points[-1][1], False


def _judge_without_value(value: float, line: Any) -> Judgement:
    ratio = line_ratio(value, line) if line is not None else None
    if ratio is None:
        return Judgement(
            "present", "the entry records no value, and its line could not be read to judge it", "row outlier"
        )
    if ratio < OUTLIER_K:
        return Judgement(
            "lost",
            f"no longer an outlier: |w| is {ratio:.3g}x its line's median magnitude, under {OUTLIER_K:g}x",
            "row outlier",
            line_ratio=ratio,
        )
    return Judgement(
        "present",
        f"the entry records no value to compare with; it still stands {ratio:.3g}x over its line's median magnitude",
        "row outlier",
        line_ratio=ratio,
    )


def line_ratio(value: float, line: Any) -> float | None:
    """``|value|`` over the median magnitude of the stored line holding it (None for an all-zero line)."""
    import numpy as np

    magnitudes = np.abs(np.asarray(line, dtype=np.float64))
    magnitudes = magnitudes[np.isfinite(magnitudes)]
    median = float(np.median(magnitudes)) if magnitudes.size else 0.0
    return abs(value) / median if median > 0 else None


def weight_role(claim: Any) -> str:
    """'super weight' for the entry's super weights, 'weight to keep' for the other standing claims."""
    return ROLES[0] if getattr(claim, "is_super_weight", False) else ROLES[1]


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{int(count)} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"
