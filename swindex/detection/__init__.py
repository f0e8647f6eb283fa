"""swindex.detection: find every super weight of a transformers model (the method: see swindex.detection.scan).

Importing this package is light; torch and transformers load when `detect` runs.
"""

from __future__ import annotations

from .scan import DEFAULT_LENGTH, DEFAULT_PROMPT, MAX_ITERATIONS, default_input_ids, detect, resolve_input_ids
from .result import DetectedWeight, DetectionResult, LayerMaxima, Thresholds

__all__ = [
    "DEFAULT_LENGTH",
    "DEFAULT_PROMPT",
    "MAX_ITERATIONS",
    "DetectedWeight",
    "DetectionResult",
    "LayerMaxima",
    "Thresholds",
    "default_input_ids",
    "detect",
    "resolve_input_ids",
]
