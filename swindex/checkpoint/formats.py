"""Which stored form a safetensors checkpoint's weights take, and the one place check turns to its reader.

Why here: the config files say how a checkpoint was quantized or adapted (config.json's quantization_config or
MLX's quantization, AutoGPTQ's quantize_config.json, AutoAWQ's quant_config.json, peft's adapter_config.json),
and the readers in `quantized` and `adapter` read one weight each. The small files are opened only when the
tensor names call for them (a ``qweight`` without a quantization_config, a ``lora_A``), so a plain checkpoint
reads nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from ..limits import MAX_SMALL_FILE_BYTES
from .adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, Adapter, read_lora
from .errors import CheckpointError
from .locate import Checkpoint, parse_json
from .quantized import Element, Find, Quantization, quantization_of, read_quantized

GPTQ_CONFIGS = ("quantize_config.json", "quant_config.json")  # AutoGPTQ's, then AutoAWQ's
WEIGHT_NAMES = ("weight", "qweight", "weight_packed")
"""The names a module's stored weight goes by: plain (and bitsandbytes, MLX, fp8), GPTQ/AWQ, compressed-tensors."""


@dataclass(frozen=True)
class StoredForm:
    """How a checkpoint stores its weights: quantized (and how), an adapter over a base, or neither (plain floats)."""

    quantization: Quantization | None = None
    adapter: Adapter | None = None


def stored_form(opened: Checkpoint, names: Collection[str]) -> StoredForm:
    """The checkpoint's quantization or adapter, from its config files; refuses a format check cannot read."""
    adapter = None
    if any(file.rsplit("/", 1)[-1] == ADAPTER_WEIGHTS for file in opened.files) or any(".lora_A." in n for n in names):
        config = _small_json(opened, ADAPTER_CONFIG)
        if config is None:
            raise CheckpointError(
                opened.location, f"holds LoRA tensors but no {ADAPTER_CONFIG} to say their scaling (lora_alpha, r)"
            )
        adapter = Adapter.from_config(config, f"{opened.location}: {ADAPTER_CONFIG}")
    quantization = (
        quantization_of(opened.config, "config.json", f"{opened.location}: config.json") if opened.config else None
    )
    if quantization is None and any(n.endswith(".qweight") for n in names):
        for file in GPTQ_CONFIGS:
            quantization = quantization_of(_small_json(opened, file), file, f"{opened.location}: {file}")
            if quantization is not None:
                break
    if quantization is not None and quantization.method == "fp8":
        quantization = None  # fine-grained fp8 (weight_scale_inv): the plain reader's tile scales
    return StoredForm(quantization, adapter)


def _small_json(opened: Checkpoint, name: str) -> Any:
    """A small JSON file beside the weights, or None when there is none."""
    try:
        source = opened.open_file(name)
    except CheckpointError:
        return None
    if source.size > MAX_SMALL_FILE_BYTES:
        raise CheckpointError(source.name, f"is {source.size:,} bytes; a config is never that large")
    return parse_json(source.read(0, source.size), source.name)


def read_stored(form: StoredForm, claim: Any, find: Find, match: Callable[[str], str | None]) -> Element | None:
    """The claim's weight dequantized (or adapted) from its stored form; None when it is stored as plain floats.

    ``match`` gives the checkpoint's name for a tensor the entry names (prefixes differ), or None.
    """
    if claim.expert is not None:
        return None  # experts are read by the plain reader, which refuses a packed dtype
    module = claim.tensor.removesuffix(".weight")
    if form.adapter is not None:
        return read_lora(form.adapter, module, find, claim.row, claim.column, claim.value, str(claim.coordinate))
    for stored in WEIGHT_NAMES:
        name = match(f"{module}.{stored}")
        if name is not None:
            return read_quantized(form.quantization, name.removesuffix(f".{stored}"), find, claim.row, claim.column)
    return None
