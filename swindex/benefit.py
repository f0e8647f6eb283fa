"""What keeping the weights to keep buys under each quantization scheme: the statistics, the record, the advice.

Why: holding a super weight out is advice swindex hands to quantization engineers, and on small models it
often buys nothing measurable under the schemes people run. Each real model's entry therefore carries a
measured table (``evidence.keep_benefit``): perplexity with everything quantized and with the module
kept, compared chunk by chunk on the same text. A change counts only when it exceeds twice its standard
error; every sentence swindex prints about keeping comes from that table through ``advice``.

This module is pure Python (no torch): the measuring harness is ``scripts/measure_benefit.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SwindexError, shown

__all__ = [
    "SCHEMES",
    "TOOL_SCHEMES",
    "Scheme",
    "PairedChange",
    "BenefitRow",
    "BenefitTable",
    "BenefitError",
    "paired_change",
    "chunk_nll_from_running_perplexity",
    "advice",
    "advice_for_tool",
    "human_bytes",
    "rtn_scheme",
]

SIGNIFICANCE = 2.0
"""A change is measurable when it exceeds this many standard errors (about a 95% two-sided interval)."""


class BenefitError(SwindexError):
    """A benefit measurement or table that cannot be used as given (too few chunks, unknown scheme, mismatched runs)."""


@dataclass(frozen=True)
class Scheme:
    """One quantization scheme a benefit row is measured under: its key, its words, the tool that runs it."""

    key: str
    label: str
    tool: str
    kind: str  # "weights": weights quantized; "activations": linear inputs quantized (weights too, for W8A8/FP8)


def _schemes(*rows: tuple[str, str, str, str]) -> dict[str, Scheme]:
    return {key: Scheme(key, label, tool, kind) for key, label, tool, kind in rows}


SCHEMES: Mapping[str, Scheme] = _schemes(
    ("rtn-w4-g32", "weights 4-bit RTN, blocks of 32", "swindex", "weights"),
    ("rtn-w4-g128", "weights 4-bit RTN, blocks of 128", "swindex", "weights"),
    ("rtn-w4-g512", "weights 4-bit RTN, blocks of 512", "swindex", "weights"),
    ("rtn-w4-channel", "weights 4-bit RTN, per channel", "swindex", "weights"),
    ("rtn-w4-tensor", "weights 4-bit RTN, per tensor", "swindex", "weights"),
    ("rtn-w8-tensor", "weights 8-bit RTN, per tensor", "swindex", "weights"),
    ("bnb-nf4", "bitsandbytes NF4", "bitsandbytes", "weights"),
    ("bnb-fp4", "bitsandbytes FP4", "bitsandbytes", "weights"),
    ("llama.cpp-q4_0", "llama.cpp Q4_0", "llama.cpp", "weights"),
    ("llama.cpp-q4_k_m", "llama.cpp Q4_K_M", "llama.cpp", "weights"),
    (
        "llmc-w8a8",
        "llm-compressor W8A8 (int8 weights per channel, activations per token)",
        "llm-compressor",
        "activations",
    ),
    (
        "llmc-fp8",
        "llm-compressor FP8 (weights and activations per tensor, static scales)",
        "llm-compressor",
        "activations",
    ),
    ("a-int8-tensor-dynamic", "activations INT8 per tensor, dynamic", "llm-compressor", "activations"),
    ("a-int8-tensor-static", "activations INT8 per tensor, static (calibrated)", "llm-compressor", "activations"),
    ("a-int8-token-dynamic", "activations INT8 per token, dynamic", "llm-compressor", "activations"),
    ("a-fp8-tensor-dynamic", "activations FP8 e4m3 per tensor, dynamic", "llm-compressor", "activations"),
    ("a-fp8-tensor-static", "activations FP8 e4m3 per tensor, static (calibrated)", "llm-compressor", "activations"),
)
"""Every scheme a table may hold, keyed as the registry stores them; ``tool`` is the quantizer that runs it."""

TOOL_SCHEMES: Mapping[str, tuple[str, ...]] = {
    tool: tuple(s.key for s in SCHEMES.values() if s.tool == tool)
    for tool in dict.fromkeys(s.tool for s in SCHEMES.values())
}
"""The schemes each tool's advice draws on (``swindex`` is ``swindex quantize``'s own round-to-nearest)."""


def rtn_scheme(bits: int, block_size: int | str | None) -> str | None:
    """The key of swindex's RTN scheme for a bit width and block size (``None``: whole tensor), when one is measured."""
    block = "tensor" if block_size is None else "channel" if block_size == "channel" else f"g{int(block_size)}"
    key = f"rtn-w{int(bits)}-{block}"
    return key if key in SCHEMES else None


WHY = ("weights_to_keep", "input_peak")
"""Why a module was kept in a row: it holds the entry's weights to keep, or its input is among the largest."""


@dataclass(frozen=True)
class PairedChange:
    """The paired per-chunk comparison of two runs on the same chunks: relative perplexity change and its error."""

    baseline: float  # perplexity of the first run (everything quantized)
    changed: float  # perplexity of the second run (the module kept)
    change: float  # changed / baseline - 1
    error: float  # standard error of ``change`` (delta method on the mean per-chunk log-ratio)
    chunks: int

    @property
    def measurable(self) -> bool:
        """Whether the change exceeds ``SIGNIFICANCE`` standard errors (a zero-error change of zero is not)."""
        return abs(self.change) > SIGNIFICANCE * self.error and self.change != 0


def paired_change(baseline_nll: Sequence[float], changed_nll: Sequence[float]) -> PairedChange:
    """Compare two runs chunk by chunk: each list holds the mean next-token NLL of the same equal-sized chunks.

    Pairing removes the variation between chunks (a hard passage is hard for both runs), so only the change
    the kept module makes is left in the error.
    """
    if len(baseline_nll) != len(changed_nll):
        raise BenefitError(
            f"the two runs scored different chunks ({len(baseline_nll)} and {len(changed_nll)}); pair the same chunks"
        )
    n = len(baseline_nll)
    if n < 2:
        raise BenefitError(f"a paired comparison needs at least 2 chunks, got {n}: measure more text")
    values = [(float(a), float(b)) for a, b in zip(baseline_nll, changed_nll)]
    if not all(math.isfinite(a) and math.isfinite(b) for a, b in values):
        raise BenefitError("a chunk's NLL is not finite (the quantized model diverged); the change cannot be measured")
    diffs = [b - a for a, b in values]
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    ratio = math.exp(mean)
    base = math.exp(sum(a for a, _ in values) / n)
    return PairedChange(
        baseline=base, changed=base * ratio, change=ratio - 1, error=ratio * sd / math.sqrt(n), chunks=n
    )


def chunk_nll_from_running_perplexity(running: Sequence[float]) -> list[float]:
    """Per-chunk mean NLL from the running perplexity llama-perplexity prints after each equal-sized chunk.

    After chunk k it prints exp(mean NLL of chunks 1..k), so chunk k's own NLL is k*log(p_k) - (k-1)*log(p_(k-1)).
    """
    logs = [math.log(float(p)) for p in running]
    return [logs[0]] + [(k + 1) * logs[k] - k * logs[k - 1] for k in range(1, len(logs))]


def human_bytes(count: int) -> str:
    """Bytes in the unit people read (KiB, MiB), for advice sentences."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value):,} bytes" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class BenefitRow:
    """One measured row: a scheme, the modules kept out of it and why, perplexity without and with, the change."""

    scheme: str
    kept: tuple[str, ...]
    why: str
    quantized: float
    kept_perplexity: float
    change: float
    error: float
    cost_bytes: int
    chunks: int
    tokens: int
    library: str | None = None
    note: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenefitRow":
        return cls(
            scheme=d["scheme"],
            kept=tuple(d["kept"]),
            why=d["why"],
            quantized=d["quantized"],
            kept_perplexity=d["kept_perplexity"],
            change=d["change"],
            error=d["error"],
            cost_bytes=d["cost_bytes"],
            chunks=d["chunks"],
            tokens=d["tokens"],
            library=d.get("library"),
            note=d.get("note"),
        )

    @classmethod
    def measured(
        cls,
        scheme: str,
        kept: Sequence[str],
        why: str,
        paired: PairedChange,
        *,
        cost_bytes: int,
        tokens: int,
        library: str | None = None,
        note: str | None = None,
    ) -> "BenefitRow":
        """The row for a paired comparison (``paired_change``), rounded as the registry stores it."""
        if scheme not in SCHEMES:
            raise BenefitError(f"unknown scheme {scheme!r}; the schemes are {', '.join(SCHEMES)}")
        return cls(
            scheme=scheme,
            kept=tuple(kept),
            why=why,
            quantized=round(paired.baseline, 4),
            kept_perplexity=round(paired.changed, 4),
            change=round(paired.change, 5),
            error=round(paired.error, 5),
            cost_bytes=int(cost_bytes),
            chunks=paired.chunks,
            tokens=int(tokens),
            library=library,
            note=note,
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "scheme": self.scheme,
            "kept": list(self.kept),
            "why": self.why,
            "quantized": self.quantized,
            "kept_perplexity": self.kept_perplexity,
            "change": self.change,
            "error": self.error,
            "cost_bytes": self.cost_bytes,
            "chunks": self.chunks,
            "tokens": self.tokens,
        }
        result.update({k: v for k, v in (("library", self.library), ("note", self.note)) if v is not None})
        return result

    @property
    def label(self) -> str:
        """The scheme in words."""
        known = SCHEMES.get(self.scheme)
        return known.label if known else shown(self.scheme)

    @property
    def measurable(self) -> bool:
        """Whether the change exceeds twice its standard error."""
        return abs(self.change) > SIGNIFICANCE * self.error and self.change != 0

    @property
    def helps(self) -> bool:
        """Keeping measurably lowers perplexity."""
        return self.measurable and self.change < 0

    @property
    def verdict(self) -> str:
        """``helps``, ``hurts`` or ``no measurable benefit``: what the table's last column says."""
        if not self.measurable:
            return "no measurable benefit"
        return "helps" if self.change < 0 else "hurts"

    @property
    def figures(self) -> str:
        """The change with its error, e.g. ``+0.9% ± 1.1%``."""
        return f"{self.change * 100:+.1f}% ± {self.error * 100:.1f}%"


@dataclass(frozen=True)
class BenefitTable:
    """An entry's ``evidence.keep_benefit``: the run's provenance and its rows."""

    date: str
    tool: str
    text: str
    tokens: int
    chunks: int
    seed: int
    rows: tuple[BenefitRow, ...]
    libraries: Mapping[str, str]
    calibration: str | None = None
    peaks: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenefitTable":
        return cls(
            date=d["date"],
            tool=d["tool"],
            text=d["text"],
            tokens=d["tokens"],
            chunks=d["chunks"],
            seed=d["seed"],
            rows=tuple(BenefitRow.from_dict(r) for r in d["rows"]),
            libraries=dict(d.get("libraries") or {}),
            calibration=d.get("calibration"),
            peaks=tuple(dict(p) for p in d.get("peaks") or ()),
        )

    def for_scheme(self, scheme: str) -> tuple[BenefitRow, ...]:
        """The rows measured under ``scheme``: keeping the weights to keep first, then the other sites."""
        rows = [r for r in self.rows if r.scheme == scheme]
        return tuple(sorted(rows, key=lambda r: r.why != "weights_to_keep"))

    def ordered(self) -> tuple[BenefitRow, ...]:
        """The rows for keeping the weights to keep, where keeping helps first (largest gain first), then the rest."""
        mine = [r for r in self.rows if r.why == "weights_to_keep"]
        return tuple(sorted(mine, key=lambda r: (not r.helps, r.change if r.helps else 0.0)))


def advice(row: BenefitRow) -> str:
    """The sentence swindex prints about keeping under one scheme, with the measured figures and the cost."""
    kept = ", ".join(f"`{shown(m)}`" for m in row.kept)
    if row.scheme in SCHEMES and SCHEMES[row.scheme].tool == "swindex":  # swindex's RTN holds scalars out, not modules
        kept = f"the weights to keep in {kept}"
    measured = f"{row.quantized:.2f} -> {row.kept_perplexity:.2f} on {row.tokens:,} tokens"
    cost = f"keeping costs {human_bytes(row.cost_bytes)}" if row.cost_bytes else "keeping costs no stored bytes"
    if row.helps:
        return (
            f"{row.label}: keeping {kept} lowers perplexity by {-row.change * 100:.1f}% ± {row.error * 100:.1f}% "
            f"({measured}); {cost}"
        )
    if row.measurable:
        return (
            f"{row.label}: keeping {kept} raises perplexity by {row.change * 100:.1f}% ± {row.error * 100:.1f}% "
            f"({measured}); {cost}"
        )
    return f"{row.label}: no measurable benefit from keeping {kept} ({row.figures}, {measured}); {cost}"


def advice_for_tool(table: BenefitTable | None, tool: str) -> list[str]:
    """Every measured sentence for ``tool``'s schemes (``TOOL_SCHEMES``), or one saying nothing was measured."""
    if tool not in TOOL_SCHEMES:
        raise BenefitError(
            f"no benefit schemes for tool {shown(tool)!r}; the tools measured are {', '.join(TOOL_SCHEMES)}"
        )
    rows = [] if table is None else [r for s in TOOL_SCHEMES[tool] for r in table.for_scheme(s)]
    if not rows:
        return [f"what keeping buys under {tool} has not been measured for this model"]
    return [
        advice(r)
        + ("" if r.why == "weights_to_keep" else " (its input carries a massive activation; no claim names it)")
        for r in rows
    ]
