"""Check a checkpoint (fine-tune, merge or quantization) for its base model's super weights, in milliseconds.

``check(PATH)`` reads only headers and the bytes of each super weight's row (or GGUF block, or packed word and group),
never the model: safetensors folders and files (float, GPTQ, AWQ, bitsandbytes, compressed-tensors, MLX, LoRA adapters),
GGUF files, and Hub repositories through range requests. Verdicts and their thresholds are documented in
`swindex.checkpoint.report`, base inference in `swindex.checkpoint.infer`. Needs numpy (and gguf for GGUF files,
huggingface_hub for repositories): ``pip install "swindex[check]"``.
"""

from __future__ import annotations

from .checker import check, infer_base, weights_to_check
from .errors import BaseModelError, CheckpointError, DimensionMismatchError, UnsupportedCheckpointError
from .infer import Inference
from .report import DEFAULT_BANDS, KEPT_CHANGE, LOST_RATIO, OUTLIER_K, CheckReport, Judgement, WeightCheck, judge

__all__ = [
    "DEFAULT_BANDS",
    "KEPT_CHANGE",
    "LOST_RATIO",
    "OUTLIER_K",
    "BaseModelError",
    "CheckReport",
    "CheckpointError",
    "DimensionMismatchError",
    "Inference",
    "Judgement",
    "UnsupportedCheckpointError",
    "WeightCheck",
    "check",
    "infer_base",
    "judge",
    "weights_to_check",
]
