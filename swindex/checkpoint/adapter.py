"""A LoRA adapter (peft 0.21's layout) checked against its base: the change it makes to one weight.

Why it can be read cheaply: a LoRA adapter replaces W by W + scaling * B @ A, so the change at [row, column]
is ``scaling * B[row, :] . A[:, column]``: one row of B and one column of A, r values each. The weight the
adapted model uses is the base's recorded value plus that change. peft saves ``adapter_config.json`` (r,
lora_alpha, use_rslora, alpha_pattern, use_dora) and ``adapter_model.safetensors`` whose tensors are named
``base_model.model.<module>.lora_A.weight`` ([r, in]) and ``...lora_B.weight`` ([out, r]).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import shown
from .errors import CheckpointError
from .quantized import Element, Find, _check_element, _floats, _need, unsupported
from .safetensors_format import FLOAT_DTYPES, StoredTensor

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
"""What peft puts before a base model's module name in an adapter's tensor names."""


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter's settings, from its adapter_config.json."""

    alpha: float
    rank: int
    rslora: bool = False
    alpha_pattern: Mapping[str, Any] = field(default_factory=dict)
    base_model: str | None = None
    source: str = ADAPTER_CONFIG

    @classmethod
    def from_config(cls, config: Any, source: str = ADAPTER_CONFIG) -> "Adapter":
        """The settings check needs, refusing adapters whose change is not B @ A (DoRA, other peft methods)."""
        if not isinstance(config, Mapping):
            raise CheckpointError(source, "is not a JSON object")
        kind = config.get("peft_type", "LORA")
        if kind != "LORA":
            raise unsupported(source, f"peft {kind}")
        if config.get("use_dora"):
            raise unsupported(source, "DoRA (its change rescales each column by a norm of the whole base weight)")
        rank, alpha = config.get("r"), config.get("lora_alpha", config.get("r"))
        if type(rank) is not int or rank <= 0 or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
            raise CheckpointError(
                source, f"r {rank!r} and lora_alpha {alpha!r} are not a positive rank and a finite number"
            )
        pattern = config.get("alpha_pattern") or {}
        base = config.get("base_model_name_or_path")
        return cls(
            float(alpha),
            rank,
            bool(config.get("use_rslora")),
            dict(pattern) if isinstance(pattern, Mapping) else {},
            base if isinstance(base, str) else None,
            source,
        )

    def scaling(self, module: str, rank: int) -> float:
        """lora_alpha / r (rsLoRA: / sqrt(r)), with the module's own alpha from alpha_pattern when one matches
        (peft's rule)."""
        alpha = self.alpha
        for pattern, value in self.alpha_pattern.items():
            if isinstance(value, (int, float)) and re.match(rf"(.*\.)?({pattern})$", module):
                alpha = float(value)
                break
        return alpha / (math.sqrt(rank) if self.rslora else rank)


def adapter_module(module: str, find: Find) -> str | None:
    """The adapter's name for a base module (peft's prefix, or none), or None when the adapter leaves it alone."""
    for name in (f"{PEFT_PREFIX}{module}", module):
        if find(f"{name}.lora_A.weight") is not None:
            return name
    return None


def read_lora(
    adapter: Adapter, module: str, find: Find, row: int, column: int, base_value: float | None, coordinate: str
) -> Element | None:
    """The adapted weight: the base's recorded value plus scaling * B[row, :] . A[:, column] (zero where no LoRA
    targets it); None when the adapter saves the module's whole weight (peft's modules_to_save), which the plain
    reader reads."""
    import numpy as np

    name = adapter_module(module, find)
    if name is None and any(find(f"{prefix}{module}.weight") is not None for prefix in (PEFT_PREFIX, "")):
        return None
    if base_value is None:
        raise CheckpointError(
            adapter.source,
            f"an adapter holds only the change to {shown(coordinate)}; checking it needs the base's value, "
            "which its entry does not record (swindex detect records it)",
        )
    if name is None:
        return Element(
            base_value,
            "unchanged by the adapter (no LoRA on its module)",
            module,
            (row, column),
            adapter.source,
            (0, 0),
        )
    if find(f"{name}.lora_magnitude_vector") is not None or find(f"{name}.lora_magnitude_vector.weight") is not None:
        raise unsupported(adapter.source, "DoRA (its change rescales each column by a norm of the whole base weight)")
    lora_a = _need(find, f"{name}.lora_A.weight", FLOAT_DTYPES, 2)
    lora_b = _need(find, f"{name}.lora_B.weight", FLOAT_DTYPES, 2)
    rank = lora_a.shape[0]
    shape = (lora_b.shape[0], lora_a.shape[1])
    if lora_b.shape[1] != rank:
        raise CheckpointError(
            lora_b.source.name,
            f"{name}: lora_A {list(lora_a.shape)} and lora_B {list(lora_b.shape)} do not share a rank",
        )
    _check_element(f"{lora_b.source.name}: {name}", shape, row, column)
    b_row = _floats(lora_b, (row, 0), rank)
    a_column = _column(lora_a, column)
    scaling = adapter.scaling(module, rank)
    delta = scaling * float(np.dot(b_row, a_column))
    return Element(
        base_value + delta,
        f"LoRA r {rank} x {scaling:.4g} over the recorded base value (change {delta:+.4g})",
        lora_b.name,
        (row, 0),
        lora_b.source.name,
        shape,
    )


def _column(tensor: StoredTensor, column: int) -> Any:
    """Column ``column`` of a [r, in] tensor: r reads of one value each, never the rows around them."""
    import numpy as np

    return np.array([_floats(tensor, (k, column))[0] for k in range(tensor.shape[0])])
