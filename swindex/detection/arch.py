"""Where a model's FFN down projections are: found by structure, helped by a small table of known names.

Why structural: transformers has hundreds of architectures and remote code adds more; a name table alone
would reject most of them. A *layer list* is the longest ``nn.ModuleList`` of identical blocks that hold
linear layers (known list names win ties). Inside each block a *down projection* is

* a Linear or GPT-2 ``Conv1D`` whose leaf name is a known down-projection name (``down_proj``, ``c_proj``,
  ``fc2``, ``dense_4h_to_h``, ``fc_out``, ``w2``, ``wo``; ``output.dense`` in BERT-style encoders), outside
  any attention submodule, writing ``hidden_size`` features; or failing that, the single non-attention
  linear that maps a wider intermediate back to ``hidden_size``;
* or a fused Mixture-of-Experts module (transformers 5) holding a 3-D ``down_proj`` parameter
  ``[experts, hidden, intermediate]`` (``[experts, intermediate, hidden]`` when it says ``is_transposed``).

One layer may hold several (routed experts plus a shared expert). A model where none is found raises
`UnsupportedModelError` naming what was missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedModelError
from ..layout import DOWN_PROJECTION_NAMES, ENCODER_DOWN_PROJECTION, module_stores_transposed, stored_index

KNOWN_LAYER_LISTS = (
    "model.layers",
    "model.decoder.layers",
    "transformer.h",
    "gpt_neox.layers",
    "encoder.layer",
    "transformer.blocks",
    "model.language_model.layers",
    "language_model.model.layers",
    "layers",
    "h",
)
_ATTENTION = re.compile(r"(^|\.)[^.]*(attn|attention)[^.]*(\.|$)")
_EXPERT_IN_NAME = re.compile(r"(?:^|\.)experts\.(\d+)(?:\.|$)")
_SKIP_LISTS = re.compile(r"vision|visual|image|audio|speech|encoder_decoder|mtp")


@dataclass(frozen=True)
class DownProjection:
    """One FFN down projection: which layer, which parameter, and how its weight is laid out."""

    layer: int
    path: str
    tensor: str
    kind: str  # "linear", "conv1d" (weight stored [in, out]) or "experts" (fused 3-D parameter)
    in_features: int
    out_features: int
    expert: int | None = None  # a single expert's Linear in an unfused expert list
    num_experts: int | None = None
    transposed: bool = False  # fused experts stored [expert, in, out]
    module: Any = field(default=None, compare=False, repr=False)

    @property
    def stored_transposed(self) -> bool:
        """Whether the weight is stored [column, row] (Conv1D, transposed fused experts): read off the module."""
        return self.kind == "conv1d" or (self.kind == "experts" and self.transposed)

    def index(self, row: int, column: int, expert: int | None = None) -> tuple[int, ...]:
        """Where the scalar (row = output channel, column = input channel) sits in the stored tensor."""
        return stored_index(row, column, expert, transposed=self.stored_transposed, fused=self.kind == "experts")

    @property
    def routed(self) -> bool:
        return self.kind == "experts" or self.expert is not None


@dataclass(frozen=True)
class ModelLayout:
    """A model's layer list and every down projection in it, in forward order."""

    layers_path: str
    layers: Any = field(compare=False, repr=False)
    hidden_size: int
    sites: tuple[DownProjection, ...]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def dimensions(self) -> dict[str, int | None]:
        """The registry's `dimensions` block: sizes that coordinates must fit in."""
        dense = [s.in_features for s in self.sites if not s.routed]
        routed = [s.in_features for s in self.sites if s.routed]
        experts = [s.num_experts for s in self.sites if s.num_experts] or [
            s.expert + 1 for s in self.sites if s.expert is not None
        ]
        return {
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "intermediate_size": max(dense or routed),
            "num_experts": max(experts) if experts else None,
            "moe_intermediate_size": max(routed) if routed else None,
        }


def locate(model: Any) -> ModelLayout:
    """The layout of a transformers model, or UnsupportedModelError saying what could not be found."""
    name_of = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    path, layers = _layer_list(model)
    hidden = _hidden_size(model)
    sites: list[DownProjection] = []
    for i, layer in enumerate(layers):
        found = _down_projections(layer, f"{path}.{i}", i, hidden, name_of)
        if not found:
            linears = [f"{n} {_shape(m)}" for n, m in layer.named_modules() if _linear_kind(m)]
            raise UnsupportedModelError(
                f"{type(model).__name__}: no FFN down projection found in layer {i} ({path}.{i}, "
                f"{type(layer).__name__}); looked for a linear named {', '.join(sorted(DOWN_PROJECTION_NAMES))} or "
                f"{ENCODER_DOWN_PROJECTION} writing {hidden} features, or a fused experts module with a 3-D down_proj. "
                f"Linear layers there: {', '.join(linears) or 'none'}"
            )
        sites.extend(found)
    return ModelLayout(path, layers, hidden, tuple(sites))


def _layer_list(model: Any) -> tuple[str, Any]:
    import torch

    best: tuple[tuple[int, int], str, Any] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0 or _SKIP_LISTS.search(name):
            continue
        if len({type(m) for m in module}) != 1 or not any(
            _linear_kind(m) or _fused_experts(m) for m in module[0].modules()
        ):
            continue
        known = any(name == k or name.endswith("." + k) for k in KNOWN_LAYER_LISTS)
        rank = (len(module), int(known))
        if best is None or rank > best[0]:
            best = (rank, name, module)
    if best is None:
        raise UnsupportedModelError(
            f"{type(model).__name__}: no list of transformer layers found (an nn.ModuleList of identical blocks "
            f"containing linear layers, such as {', '.join(KNOWN_LAYER_LISTS[:4])})"
        )
    return best[1], best[2]


def _hidden_size(model: Any) -> int:
    config = getattr(model, "config", None)
    text = getattr(config, "get_text_config", lambda: config)() if config is not None else None
    for attribute in ("hidden_size", "n_embd", "d_model"):
        value = getattr(text, attribute, None)
        if isinstance(value, int):
            return value
    embeddings = model.get_input_embeddings()
    if embeddings is None:
        raise UnsupportedModelError(
            f"{type(model).__name__}: cannot tell the hidden size (no config.hidden_size and no input embeddings)"
        )
    return int(embeddings.weight.shape[-1])


def _linear_kind(module: Any) -> str | None:
    import torch

    if isinstance(module, torch.nn.Linear):
        return "linear"
    if module_stores_transposed(module) and hasattr(module, "nf"):
        return "conv1d"
    return None


def _features(module: Any, kind: str) -> tuple[int, int]:
    """(in, out) features; Conv1D stores its weight as [in, out]."""
    rows, columns = module.weight.shape
    return (rows, columns) if kind == "conv1d" else (columns, rows)


def _shape(module: Any) -> str:
    return "x".join(map(str, module.weight.shape))


def _fused_experts(module: Any) -> bool:
    import torch

    weight = getattr(module, "down_proj", None)
    return isinstance(weight, torch.nn.Parameter) and weight.dim() == 3


def _down_projections(
    layer: Any, prefix: str, index: int, hidden: int, name_of: dict[int, str]
) -> list[DownProjection]:
    named = [(n, m) for n, m in layer.named_modules() if n]
    found: list[DownProjection] = []
    claimed: set[str] = set()
    for name, module in named:
        if _fused_experts(module) and not _ATTENTION.search(name):
            weight = module.down_proj
            transposed = module_stores_transposed(module)
            experts, first, second = weight.shape
            inner, outer = (first, second) if transposed else (second, first)
            found.append(
                DownProjection(
                    index,
                    f"{prefix}.{name}",
                    name_of[id(weight)],
                    "experts",
                    inner,
                    outer,
                    None,
                    experts,
                    transposed,
                    module,
                )
            )
            claimed.add(name)
    for name, module in named:
        kind = _linear_kind(module)
        if kind is None or _ATTENTION.search(name) or any(name.startswith(c + ".") for c in claimed):
            continue
        leaf = name.rsplit(".", 1)[-1]
        inner, outer = _features(module, kind)
        if outer == hidden and (leaf in DOWN_PROJECTION_NAMES or name == ENCODER_DOWN_PROJECTION):
            found.append(_linear_site(index, prefix, name, module, kind, inner, outer, name_of))
    if found:
        return found
    fallback = []
    for name, module in named:
        kind = _linear_kind(module)
        if kind is None or _ATTENTION.search(name):
            continue
        inner, outer = _features(module, kind)
        if outer == hidden and inner > hidden:
            fallback.append(_linear_site(index, prefix, name, module, kind, inner, outer, name_of))
    experts = [s.expert for s in fallback]
    unambiguous = len(fallback) == 1 or (
        None not in experts and len(set(experts)) == len(experts)
    )  # one, or one per expert
    return fallback if unambiguous else []


def _linear_site(
    index: int, prefix: str, name: str, module: Any, kind: str, inner: int, outer: int, name_of: dict[int, str]
) -> DownProjection:
    match = _EXPERT_IN_NAME.search(name)
    return DownProjection(
        index,
        f"{prefix}.{name}",
        name_of[id(module.weight)],
        kind,
        inner,
        outer,
        int(match.group(1)) if match else None,
        None,
        False,
        module,
    )
