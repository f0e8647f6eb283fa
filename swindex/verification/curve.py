"""The scale curve of a critical weight: perplexity with the weight multiplied by each of the paper's factors.

Why: zeroing a weight says what losing it costs, not what a fine-tune or a quantizer that scales it costs.
`swindex check` turns the value it finds into an observed scale and reads the damage off this curve, so a
verdict rests on measured perplexity instead of a guess about how far a number may move.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..surgery import scaled

SCALES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.1, 1.5, 2.0, 3.0)
"""The factors each critical weight is multiplied by (Yu et al. 2024 scale the super weight the same way)."""


def scale_curve(
    evaluation: Any,
    target: Any,
    original: float,
    *,
    scales: Sequence[float] = SCALES,
    say: Callable[[str], None] = lambda message: None,
) -> tuple[tuple[float, float, float], ...]:
    """(scale, perplexity, perplexity / original) at each scale; the weight is restored bit for bit after each pass."""
    points = []
    for factor in scales:
        say(f"{target.coordinate} x{factor:g}")
        with scaled(evaluation.model, [target], float(factor)):
            perplexity = evaluation.passes()[0].perplexity
        if perplexity is not None and math.isfinite(perplexity) and original:
            points.append((float(factor), float(perplexity), float(perplexity) / original))
    return tuple(points)


def curve_records(points: Sequence[tuple[float, float, float]]) -> list[dict[str, float]]:
    """The curve in the registry's fields (``impact.scale_curve``): one {scale, value, ratio} per point."""
    return [{"scale": s, "value": v, "ratio": r} for s, v, r in points]
