"""swindex.detection: find a transformers model's super-weight candidates (the method: see swindex.detection.scan).

Importing this package is light; torch and transformers load when `detect` runs.
"""

from __future__ import annotations

from .scan import (
    DEFAULT_LENGTH,
    DEFAULT_PROMPT,
    MAX_CANDIDATES,
    MAX_PASSES,
    default_input_ids,
    detect,
    detect_loaded,
    resolve_input_ids,
)
from .result import DetectedWeight, DetectionResult, LayerMaxima, MassiveChannel, Peak, Thresholds

__all__ = [
    "DEFAULT_LENGTH",
    "DEFAULT_PROMPT",
    "MAX_CANDIDATES",
    "MAX_PASSES",
    "DetectedWeight",
    "DetectionResult",
    "LayerMaxima",
    "MassiveChannel",
    "Peak",
    "Thresholds",
    "default_input_ids",
    "detect",
    "detect_loaded",
    "resolve_input_ids",
]
