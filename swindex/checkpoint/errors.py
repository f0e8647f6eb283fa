"""What can stop a check: each error names the file or model and what is wrong with it."""

from __future__ import annotations

from ..errors import SwindexError, shown, shown_lines

SUPPORTED_FORMATS = (
    "float safetensors",
    "fp8 with block scales",
    "GGUF (legacy and K-quants)",
    "GPTQ",
    "AWQ",
    "bitsandbytes 4-bit (nf4, fp4) and 8-bit",
    "compressed-tensors (pack-quantized, float-quantized, naive-quantized)",
    "MLX affine",
    "LoRA adapters",
)
"""What check reads, named in the error for a format it does not."""


class CheckpointError(SwindexError):
    """A checkpoint cannot be read as what it claims to be (missing, truncated, corrupt or hostile).

    The file name and the message are escaped (`shown`): both can carry names read from a hostile file."""

    def __init__(self, where: object, message: str) -> None:
        self.where = str(where)
        self.reason = message
        super().__init__(f"{shown(self.where)}: {shown(message)}")


class UnsupportedCheckpointError(CheckpointError):
    """The checkpoint is well formed but stores the weight in a way check cannot read
    (packed integers, an unknown quant type)."""


def unsupported_format(where: object, what: str) -> UnsupportedCheckpointError:
    """The one-line refusal of a format check does not read, naming the ones it does."""
    formats = ", ".join(SUPPORTED_FORMATS)
    return UnsupportedCheckpointError(where, f"format {shown(what)} is not supported; check reads {formats}")


class BaseModelError(SwindexError):
    """Which registry entry a checkpoint derives from cannot be told,
    or is ambiguous (the message lists the candidates)."""

    def __init__(self, message: str, candidates: list[str] | None = None) -> None:
        self.candidates = list(candidates or [])
        super().__init__(shown_lines(message))


class DimensionMismatchError(SwindexError):
    """The checkpoint's shape contradicts the entry's dimensions: it is not a derivative of that model."""

    def __init__(self, message: str) -> None:
        super().__init__(shown(message))
