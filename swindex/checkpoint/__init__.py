"""Check a checkpoint (fine-tune, merge or quantization) for its base model's super weights, in milliseconds.

``check(PATH)`` reads only headers and the bytes of each super weight's row (or GGUF block, or packed word
and group), never the model: safetensors folders and files (float, GPTQ, AWQ, bitsandbytes, compressed-tensors,
MLX, LoRA adapters), GGUF files, and Hub repositories through range requests. Verdicts
and their thresholds are documented in `swindex.checkpoint.report`. Needs numpy (and gguf for GGUF files,
huggingface_hub for repositories): ``pip install "swindex[check]"``.
"""

from __future__ import annotations

from .checker import check, weights_to_check
from .errors import BaseModelError, CheckpointError, DimensionMismatchError, UnsupportedCheckpointError
from .report import KEPT_TOLERANCE, LOST_FRACTION, CheckReport, WeightCheck, judge

__all__ = [
    "KEPT_TOLERANCE",
    "LOST_FRACTION",
    "BaseModelError",
    "CheckReport",
    "CheckpointError",
    "DimensionMismatchError",
    "UnsupportedCheckpointError",
    "WeightCheck",
    "check",
    "judge",
    "weights_to_check",
]
