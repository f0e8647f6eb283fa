"""Dtype and device policy: which dtype and device a model runs in, the one name of a dtype, the one memory budget.

Why one module: detect, verify, quantize and the builder must name a dtype the same way (the registry records it)
and plan memory the same way (a model judged to fit by one rule and not by another gets offloaded by surprise).
Light: torch and psutil are imported only inside the functions that need them.

Rules:

* ``dtype="auto"``: on CPU, float32 when the float32 weights fit the memory budget, else bfloat16; on CUDA, the
  checkpoint's own dtype, except that a float16 checkpoint of a family known to overflow in float16 (Gemma, T5,
  ...) is loaded in bfloat16. An explicit dtype is honoured; `fallback_dtype` names what to retry with when
  float16 overflows anyway (detect and verify check activations for inf/nan).
* ``device="auto"``: CUDA when available, else CPU.
* The memory budget is the CPU entry of the caller's ``max_memory`` when given (accelerate honours it as the
  cap), else `MEMORY_SHARE` of the memory available now; on a CUDA device, that share of its free memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import DetectionError

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
"""The dtypes swindex loads and records (the schema's ``dtype`` enum), with the bytes one parameter takes."""

#: model_type values whose activations are known to overflow float16 (inf/nan), so "auto" avoids it.
FLOAT16_UNSAFE_FAMILIES = frozenset(
    {"gemma", "gemma2", "gemma3", "gemma3_text", "gemma3n", "t5", "mt5", "umt5", "switch_transformers"}
)

MEMORY_SHARE = 0.7
"""Share of the available memory swindex plans to fill; the rest is left to activations and to the system."""


def dtype_name(dtype: Any) -> str:
    """The plain name of a torch dtype or its text ("float32" for ``torch.float32``), the one way swindex spells it."""
    return str(dtype).removeprefix("torch.")


def supported_dtype(dtype: Any) -> str:
    """`dtype_name` of a dtype the registry can record (`DTYPE_BYTES`); any other is an error saying what to do."""
    name = dtype_name(dtype)
    if name not in DTYPE_BYTES:
        raise DetectionError(f"unsupported parameter dtype {name}; load the model in float32, bfloat16 or float16")
    return name


def torch_dtype(name: str) -> Any:
    """The torch dtype for one of our dtype names."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def checkpoint_dtype(config: Any) -> str | None:
    """The dtype the checkpoint was saved in, from its config, when it is one we support."""
    raw = getattr(config, "dtype", None)
    if raw is None:
        return None
    name = dtype_name(raw)
    return name if name in DTYPE_BYTES else None


def resolve_device(device: str = "auto") -> str:
    """ "cpu" or "cuda" for a requested device; asking for CUDA without one is an error, not a silent CPU run."""
    import torch

    if device not in DEVICES:
        raise DetectionError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DetectionError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
    return device


def fallback_dtype(dtype: str, device: str) -> str | None:
    """What to retry with after float16 overflowed: bfloat16 keeps float32's range at half the memory."""
    if dtype != "float16":
        return None
    return "bfloat16" if device == "cuda" else "float32"


def available_memory(device: str = "cpu") -> int:
    """Bytes free now: CPU memory (psutil), or the free memory of the current CUDA device."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil  # type: ignore[import-untyped, unused-ignore]

    return int(psutil.virtual_memory().available)


def memory_budget(device: str = "cpu", max_memory: Mapping[Any, Any] | None = None) -> int:
    """Bytes swindex may plan to fill on ``device``: the caller's cap for it in ``max_memory`` (an int or accelerate's
    "10GiB" text, as ``from_pretrained`` takes it) when given, else `MEMORY_SHARE` of what is available now."""
    key = "cpu" if device == "cpu" else 0
    cap = None if max_memory is None else max_memory.get(key, max_memory.get(device))
    if cap is not None:
        return _size_in_bytes(cap)
    return int(MEMORY_SHARE * available_memory(device))


def _size_in_bytes(size: Any) -> int:
    """An accelerate memory size (an int, or text such as "10GiB" or "500MB") in bytes; anything else is an error."""
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    if isinstance(size, str):
        from accelerate.utils import convert_file_size_to_int  # type: ignore[import-untyped, unused-ignore]

        try:
            return int(convert_file_size_to_int(size))
        except ValueError:
            pass
    raise DetectionError(f"max_memory size {size!r} is not a byte count or a size such as '10GiB'")


def choose_dtype(
    config: Any,
    requested: str,
    device: str,
    parameters: int | None = None,
    max_memory: Mapping[Any, Any] | None = None,
) -> tuple[str, list[str]]:
    """The dtype to load in and the notes explaining any choice made for the user."""
    if requested not in DTYPES:
        raise DetectionError(f"unknown dtype {requested!r}; use one of {', '.join(DTYPES)}")
    family = getattr(config, "model_type", None)
    notes: list[str] = []
    if requested != "auto":
        if requested == "float16" and family in FLOAT16_UNSAFE_FAMILIES:
            notes.append(f"{family} models are known to overflow in float16; will fall back if activations overflow")
        return requested, notes
    saved = checkpoint_dtype(config) or "float32"
    if device == "cpu":
        if parameters is None or parameters * DTYPE_BYTES["float32"] <= memory_budget("cpu", max_memory):
            return "float32", notes
        notes.append("float32 weights would not fit in memory; loaded in bfloat16")
        return "bfloat16", notes
    if saved == "float16" and family in FLOAT16_UNSAFE_FAMILIES:
        notes.append(f"{family} overflows in float16; loaded in bfloat16 instead of the checkpoint's float16")
        return "bfloat16", notes
    return saved, notes
