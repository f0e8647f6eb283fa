"""What a check found: one record per weight, a verdict for each and for the checkpoint, and the exit status.

Verdicts compare the value in the checkpoint (dequantized for quantized files) with the value the entry
records for the original model:

* **kept**: same sign, and within `KEPT_TOLERANCE` (5%) of the recorded value. Rounding to bfloat16 or
  float16 moves a weight by under 0.4%, and GGUF formats keep the largest value of a block to within the
  rounding of the block's scale, so a kept weight reads as kept through any of them.
* **lost**: zeroed, its sign flipped, or shrunk under `LOST_FRACTION` (10%) of the recorded value: clipped
  into the bulk of ordinary weights, where it no longer produces a super activation.
* **changed**: anything between: the weight is there, at a different strength (say, scaled by a fine-tune).
* **unknown**: the entry records no value to compare with.

The checkpoint's verdict is the worst of its weights (lost, then changed, then unknown, then kept), and the
exit status says it to scripts: 0 when every weight was kept, 1 when one changed or was lost, 2 when the
check could not tell (an unknown weight, or an error before any weight was read).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..layout import gguf_index

KEPT_TOLERANCE = 0.05
LOST_FRACTION = 0.10
VERDICTS = ("kept", "changed", "lost", "unknown")
_SEVERITY = {"kept": 0, "unknown": 1, "changed": 2, "lost": 3}
EXIT_STATUS = {"kept": 0, "changed": 1, "lost": 1, "unknown": 2}


@dataclass(frozen=True)
class WeightCheck:
    """One weight of the entry, as found in the checkpoint."""

    coordinate: str  # as the entry writes it
    layer: int
    row: int
    column: int
    expert: int | None
    tensor: str  # the tensor's name in this checkpoint
    index: tuple[int, ...]  # where the value sits in that tensor, in numpy's order (for GGUF, the reversed ne order)
    file: str
    stored_as: str  # dtype or GGUF quantization type
    recorded: float | None
    value: float
    quantized: bool = False
    block_scale: float | None = None  # the quantization step of the block holding it
    block_error: float | None = None  # (value - recorded) / block_scale
    largest_in_row: bool | None = None
    largest_in_column: bool | None = None  # transposed layouts store a column contiguously, not a row
    largest_in_block: bool | None = None
    verdict: str = "unknown"
    reason: str = ""

    @property
    def sign(self) -> str:
        return "+" if self.value > 0 else "-" if self.value < 0 else "0"

    @property
    def relative_change(self) -> float | None:
        if self.recorded is None or self.recorded == 0:
            return None
        return (self.value - self.recorded) / abs(self.recorded)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["index"] = list(self.index)
        data["sign"] = self.sign
        data["relative_change"] = self.relative_change
        return data

    def __str__(self) -> str:
        recorded = "no recorded value" if self.recorded is None else f"recorded {self.recorded:.6g}"
        here = f"{'dequantized' if self.quantized else 'here'} {self.value:.6g} ({self.stored_as})"
        facts = [recorded, here]
        if self.block_error is not None:
            facts.append(f"error {self.block_error:+.3g} x block scale {self.block_scale:.4g}")
        largest = [f"{name}: {'yes' if flag else 'no'}" for name, flag in (("row", self.largest_in_row), ("column", self.largest_in_column), ("block", self.largest_in_block)) if flag is not None]
        if largest:
            facts.append("largest in " + ", ".join(largest))
        facts.append(f"sign {self.sign}")
        where = "" if self.tensor == self.coordinate.split("[", 1)[0] else f"  (here {self.tensor}{list(self.index)})"
        if self.tensor.startswith("blk."):  # as llama.cpp and `swindex detect` write GGUF indices: fastest dimension first
            ggml = gguf_index(self.row, self.column, self.expert if len(self.index) == 3 else None)
            where = f"  (here {self.tensor}[{', '.join(map(str, ggml))}], llama.cpp's order)"
        return f"{self.verdict:8} {self.coordinate}{where}\n         " + "; ".join(facts) + (f"\n         {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class CheckReport:
    """The check of one checkpoint against one registry entry."""

    checkpoint: str
    format: str  # "safetensors" or "gguf"
    entry: str  # the entry's model id
    entry_from: str  # how the entry was chosen
    weights: tuple[WeightCheck, ...]
    bytes_read: int = 0
    reads: int = 0
    seconds: float = 0.0  # reading the checkpoint: neither start-up nor finding the entry
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        if not self.weights:
            return "unknown"
        return max((w.verdict for w in self.weights), key=_SEVERITY.__getitem__)

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    @property
    def counts(self) -> dict[str, int]:
        return {v: sum(w.verdict == v for w in self.weights) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint, "format": self.format, "entry": self.entry, "entry_from": self.entry_from,
            "verdict": self.verdict, "exit_status": self.exit_status, "counts": self.counts,
            "weights": [w.to_dict() for w in self.weights],
            "bytes_read": self.bytes_read, "reads": self.reads, "seconds": self.seconds, "notes": list(self.notes),
            "thresholds": {"kept_tolerance": KEPT_TOLERANCE, "lost_fraction": LOST_FRACTION},
        }

    def to_json(self, indent: int | None = 2) -> str:
        """ASCII JSON: names from the file (U+202E, C1 controls, lone surrogates) arrive as escapes, never raw."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=True)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in self.counts.items() if n)
        lines = [
            f"{self.checkpoint} ({self.format}) against {self.entry} ({self.entry_from})",
            *(str(w) for w in self.weights),
            *self.notes,
            f"verdict: {self.verdict} ({counts or 'no weights'}); read {_size(self.bytes_read)} in {self.reads} read(s), {self.seconds * 1000:.0f} ms",
        ]
        return "\n".join(lines)


def judge(recorded: float | None, value: float) -> tuple[str, str]:
    """(verdict, reason) for one weight; see the module docstring for the thresholds."""
    if not math.isfinite(value):
        return "lost", f"the value here is {value}"
    if recorded is None or recorded == 0:
        return "unknown", "the entry records no value to compare with"
    ratio = value / recorded
    if value == 0:
        return "lost", "zeroed"
    if ratio < 0:
        return "lost", "sign flipped"
    if ratio < LOST_FRACTION:
        return "lost", f"shrunk to {ratio:.1%} of the recorded value: clipped into the bulk"
    change = abs(value - recorded) / abs(recorded)
    if change > KEPT_TOLERANCE:
        return "changed", f"scaled by x{ratio:.3g} ({(ratio - 1):+.1%}; kept means within {KEPT_TOLERANCE:.0%})"
    return "kept", ""


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"
