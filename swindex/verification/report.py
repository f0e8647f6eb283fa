"""What `swindex verify` found, as a typed record that prints as JSON and writes itself into an entry.

Classification of one weight, from the metric with only that weight zeroed (thresholds below):

* perplexity (causal LMs), ratio = zeroed / original perplexity:
  ``critical`` when the ratio is at least 2 (perplexity at least doubles: the paper's Llama-7B goes from
  5.7 to several hundred), ``significant`` when at least 1.05 (a 5% rise, more than any ordinary weight of
  a trained model moves it), else ``inert``;
* embedding_shift (encoders), the mean cosine distance between each sentence's embedding before and
  after: ``critical`` from 0.1, ``significant`` from 0.01, else ``inert``.

``apply`` only adds evidence: the entry-level ``evidence.verification`` run and each measured claim's
``evidence.impact``; it never changes a claim's status or sources (the builder decides those), and it
sets ``modified`` to the date of the run.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..records import format_coordinate

THRESHOLDS = {
    "perplexity": {"critical": 2.0, "significant": 1.05},
    "embedding_shift": {"critical": 0.1, "significant": 0.01},
}
"""Classification thresholds per metric: ratio of perplexities, or the embedding shift itself."""


class FingerprintWarning(UserWarning):
    """A recorded weight value differs from the loaded one: probably another revision of the checkpoint."""


def classify(metric: str, ratio: float | None) -> str | None:
    """critical, significant or inert for a perplexity ratio or an embedding shift (None when unmeasured)."""
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return None
    limits = THRESHOLDS[metric]
    if ratio >= limits["critical"]:
        return "critical"
    if ratio >= limits["significant"]:
        return "significant"
    return "inert"


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
    """One claim as measured: its coordinate (as the entry names it) and what zeroing it did."""

    layer: int
    tensor: str
    row: int
    column: int
    expert: int | None
    index: tuple[int, ...]
    status: str | None
    recorded_value: float | None
    loaded_value: float
    zeroed: float | None
    ratio: float | None
    classification: str | None
    super_activation: float | None
    super_activation_zeroed: float | None
    similarity_shift: float | None = None

    @property
    def coordinate(self) -> str:
        return format_coordinate(self.tensor, self.index)

    def to_dict(self) -> dict[str, Any]:
        d = {k: _finite(v) for k, v in asdict(self).items()}
        d["index"] = list(self.index)
        d["coordinate"] = self.coordinate
        return d

    def impact(self, metric: str) -> dict[str, Any]:
        """The schema's weight_impact object (non-finite figures left out)."""
        fields = {
            "metric": metric,
            "zeroed": self.zeroed,
            "ratio": self.ratio,
            "super_activation": self.super_activation,
            "super_activation_zeroed": self.super_activation_zeroed,
            "similarity_shift": self.similarity_shift,
            "classification": self.classification,
        }
        return {k: v for k, v in fields.items() if _finite(v) is not None}


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
        return {"token": self.token, "text": self.text, "original": self.original, "zeroed": self.zeroed, "ratio": _finite(self.ratio)}


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
    thresholds: dict[str, float] = field(default_factory=dict)

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
            "super_weights": [w.to_dict() for w in self.weights],
            "control_weights": list(self.control_weights),
            "stopwords": [s.to_dict() for s in self.stopwords],
            "fingerprint": self.fingerprint.to_dict(),
            "thresholds": dict(self.thresholds),
            "notes": list(self.notes),
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
            "similarity_shift": self.similarity_shift,
            "control_weights": list(self.control_weights),
            "fingerprint": self.fingerprint.to_dict(),
        }
        if self.stopwords:
            run["stopword_shift"] = {f"token_{s.token}": s.ratio for s in self.stopwords if _finite(s.ratio) is not None}
        if self.notes:
            run["notes"] = " ".join(self.notes)[:20000]
        if self.dtype not in ("float32", "bfloat16", "float16"):
            run.pop("dtype")
        return {k: v for k, v in run.items() if _finite(v) is not None or k == "revision"}

    def apply(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``entry`` (registry dict) with this run's evidence added; ``entry`` is not changed."""
        result = copy.deepcopy(dict(entry))
        evidence = dict(result.get("evidence") or {})
        evidence["verification"] = self.verification_run()
        result["evidence"] = evidence
        by_coordinate = {(w.tensor, tuple(w.index)): w for w in self.weights}
        for claim in result.get("super_weights") or []:
            measured = by_coordinate.get((claim.get("tensor"), tuple(claim.get("index") or ())))
            if measured is None:
                continue
            claim_evidence = dict(claim.get("evidence") or {})
            claim_evidence["impact"] = measured.impact(self.metric)
            claim["evidence"] = claim_evidence
        result["modified"] = self.date
        return result

    def __str__(self) -> str:
        unit = "perplexity" if self.metric == "perplexity" else "embedding shift"
        fmt = (lambda v: "-" if v is None else f"{v:.4g}")
        lines = [
            f"{self.entry_id or self.model}: {unit} on {self.text} ({self.sequences} sequences, {self.tokens} tokens, {self.dtype}, {self.device})",
            f"  original {fmt(self.original)}   all zeroed {fmt(self.all_zeroed)}   control {fmt(self.control)}   "
            f"all zeroed, super activation restored {fmt(self.restored_activation)}",
        ]
        for w in self.weights:
            act = ""
            if w.super_activation is not None:
                act = f"   super activation {w.super_activation:.4g} -> {fmt(w.super_activation_zeroed)}"
            change = f"(x{fmt(w.ratio)})" if self.metric == "perplexity" else "(cosine distance)"
            lines.append(f"  {w.coordinate}: zeroed {fmt(w.zeroed)} {change} {w.classification or '-'}{act}")
        if self.stopwords:
            shown = ", ".join(f"{s.text if s.text is not None else s.token!r} x{fmt(s.ratio)}" for s in self.stopwords)
            lines.append(f"  common-token probability with all zeroed: {shown}")
        fp = self.fingerprint
        lines.append(f"  fingerprint: {'matches' if fp.matches else 'MISMATCH'} ({fp.checked} value(s) checked)")
        lines.extend(f"    {m}" for m in fp.mismatches)
        if fp.hint:
            lines.append(f"    {fp.hint}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
