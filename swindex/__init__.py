"""swindex: the Super Weight Index.

``from swindex import lookup`` gives a model's super-weight coordinates with their evidence and sources.
Importing swindex is light: torch, transformers and mkdocs load only when detection, verification,
surgery, quantization or the site are used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (
    SwindexError,
    UnknownModelError,
    ValidationError,
)
from .lookup import entries, lookup, registry_source, search
from .records import Entry, SuperWeight

__version__ = "0.1.0"

_LAZY = {
    # name: module that defines it, imported on first use (these need the `detect` extra)
    "detect": ".detection",
    "DetectionResult": ".detection",
    "load_model": ".loading",
    "verify": ".verification",
    "VerificationReport": ".verification",
    "zeroed": ".surgery",
    "scaled": ".surgery",
    "restore": ".surgery",
    "quantize_model": ".quantize",
    "quantized": ".quantize",
}

__all__ = [
    "Entry",
    "SuperWeight",
    "SwindexError",
    "UnknownModelError",
    "ValidationError",
    "entries",
    "lookup",
    "registry_source",
    "search",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'swindex' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
