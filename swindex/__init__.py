"""swindex: the Super Weight Index.

``from swindex import lookup`` gives a model's super-weight coordinates with their evidence and sources.
Importing swindex is light: torch, transformers and mkdocs load only when detection, verification,
surgery, quantization or the site are used.
"""

from __future__ import annotations

from importlib import import_module

from .errors import (
    SwindexError,
    UnknownModelError,
    ValidationError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time: `import swindex` stays within the lookup's 30 ms
    from typing import Any


_LAZY = {
    # name: module that defines it, imported on first use (a lookup imports only what it needs)
    "lookup": "._lookup",
    "entries": "._lookup",
    "search": "._lookup",
    "registry_source": "._lookup",
    **{
        name: ".records"
        for name in ("Claim", "Coordinate", "Disagreement", "Entry", "Finding", "Impact", "Source", "Verdict")
    },
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
    # these need the `check` extra (numpy; gguf for GGUF files, huggingface_hub for repositories)
    "check": ".checkpoint",
    "CheckReport": ".checkpoint",
}

__all__ = ["SwindexError", "UnknownModelError", "ValidationError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on first use: importlib.metadata would double the import time
        from .version import version

        globals()[name] = version()
        return globals()[name]
    if name == "SuperWeight":  # schema 1's name for a claim; kept importable, not advertised
        import warnings

        warnings.warn("swindex.SuperWeight is deprecated: use swindex.Claim", DeprecationWarning, stacklevel=2)
        return __getattr__("Claim")
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'swindex' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
