"""Tiny models whose quality depends on one planted super weight, built in a second, for verify and quantize tests.

A random model barely depends on any single weight, so the dependency is constructed the way real models
have it (an attention sink on the first token, keyed by the super activation's channel):

1. the BOS token's embedding carries a large marker in channels ``MARKERS``; nothing else writes there;
2. in layer ``layer``'s MLP, intermediate channel ``column`` reads the marker (so it fires only on BOS),
   and the planted down-projection weight ``[row, column]`` (the only non-zero in that column) turns the
   spike into a super activation in hidden channel ``row`` at BOS; nothing else writes channel ``row``;
3. in every later layer, each head's query bias is aligned with the key that channel ``row`` produces, so
   BOS scores far above every other token: an attention sink. BOS's value reads neither ``row`` nor the
   markers, so a sunk head writes almost nothing;
4. without the sink these heads (values scaled by ``DISRUPT``) attend normally and write into the
   residual stream, which moves the confident LM head's predictions: perplexity rises 100-fold or more.

Every planted weight other than the super weight itself stays within about 2.5 standard deviations of the
ordinary weights (std ``SIGMA``), so clipping outliers at a z-score of 3 leaves the mechanism intact, while
the super weight is 30 standard deviations out, as published super weights are. ``unplanted`` builds the
same random model without the mechanism. Sequences fed to these models must start with BOS and must not
contain it again (a second BOS would be a second sink).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

MARKERS = [0, 1, 2, 3, 4, 5, 6, 7]
MARKER_VALUE = 20.0
SINK_QUERY = 4.0
SINK_KEY = 0.45
SPIKE = 0.45
DISRUPT = 3.0
SIGMA = 0.2  # std of ordinary linear weights: large enough that each layer matters for the predictions


@dataclass(frozen=True)
class Planted:
    """A planted super weight: where it is and what it holds."""

    layer: int
    tensor: str
    row: int
    column: int
    index: tuple[int, int]
    value: float

    def as_dict(self, status: str = "detected") -> dict[str, Any]:
        """The claim in registry format (valid against entry.schema.json)."""
        return {
            "layer": self.layer,
            "tensor": self.tensor,
            "row": self.row,
            "column": self.column,
            "expert": None,
            "index": list(self.index),
            "value": self.value,
            "value_dtype": "float32",
            "status": status,
            "impact": {"classification": "unmeasured"},
            "sources": [
                {"citation": "tests/fixtures_dependent.py (planted)", "kind": "swindex", "evidence": "detected"}
            ],
        }


def _config(vocab: int, hidden: int, layers: int, heads: int, intermediate: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        attention_bias=True,  # a query bias is the token-independent half of the sink
        max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 1e8},  # slow rotation keeps the sink aligned
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )


def _random_model(seed: int, vocab: int, hidden: int, layers: int, heads: int, intermediate: int) -> Any:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(_config(vocab, hidden, layers, heads, intermediate)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                continue
            if name.endswith("bias"):
                param.zero_()
                continue
            std = 1.0 if "embed_tokens" in name else 0.5 if name.startswith("lm_head") else SIGMA
            param.copy_(torch.randn(param.shape, generator=g) * std)
    model.config.name_or_path = "swindex-tests/dependent-llama"
    return model


def dependent_llama(
    seed: int = 0,
    *,
    layer: int = 1,
    row: int = 9,
    column: int = 11,
    value: float = 6.0,
    vocab: int = 96,
    hidden: int = 64,
    layers: int = 6,
    heads: int = 4,
    intermediate: int = 128,
) -> tuple[Any, Planted]:
    """A Llama whose later layers use a first-token attention sink that only the planted weight creates."""
    import torch

    model = _random_model(seed, vocab, hidden, layers, heads, intermediate)
    bos = model.config.bos_token_id
    head_dim = hidden // heads
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        embed = model.model.embed_tokens.weight
        embed[:, MARKERS] = 0.0
        embed[bos, MARKERS] = MARKER_VALUE
        embed[:, row] = 0.0
        for block in model.model.layers:  # only the mechanism writes the marker and the super channel
            for out in (block.self_attn.o_proj.weight, block.mlp.down_proj.weight):
                out[MARKERS + [row]] = 0.0

        mlp = model.model.layers[layer].mlp
        mlp.gate_proj.weight[column, MARKERS] = SPIKE
        mlp.up_proj.weight[column, MARKERS] = SPIKE
        mlp.down_proj.weight[:, column] = 0.0
        mlp.down_proj.weight[row, column] = value

        # Rotary pairs (i, i + head_dim/2) for i >= 2 turn by under 0.01 rad per position at theta 1e8.
        aligned = [i for i in range(head_dim) if i % (head_dim // 2) >= 2]
        for later in model.model.layers[layer + 1 :]:
            attn = later.self_attn
            signs = torch.randint(0, 2, (heads, len(aligned)), generator=g).float() * 2 - 1
            signs = signs.to(attn.q_proj.weight.dtype)  # the model may be built in bfloat16 (the 1.5B benchmark)
            for h in range(heads):
                rows = [h * head_dim + i for i in aligned]
                attn.q_proj.bias[rows] = SINK_QUERY * signs[h]
                attn.k_proj.weight[rows, row] = SINK_KEY * signs[h]
            attn.v_proj.weight.mul_(DISRUPT)
            attn.v_proj.weight[:, MARKERS + [row]] = 0.0
    tensor = f"model.layers.{layer}.mlp.down_proj.weight"
    stored = float(model.get_parameter(tensor).detach()[row, column])
    return model, Planted(layer, tensor, row, column, (row, column), stored)


def unplanted(seed: int = 0, **dims: int) -> Any:
    """The same kind of random model without the mechanism: nothing in it should matter much alone."""
    defaults = {"vocab": 96, "hidden": 64, "layers": 6, "heads": 4, "intermediate": 128}
    defaults.update(dims)
    return _random_model(seed, **defaults)


def largest_weight(model: Any, tensor: str) -> Planted:
    """The largest-magnitude scalar of a down projection: what a naive detector would claim."""
    param = model.get_parameter(tensor).detach()
    flat = int(param.abs().argmax())
    row, column = divmod(flat, param.shape[1])
    layer = int(tensor.split(".")[2])
    return Planted(layer, tensor, row, column, (row, column), float(param[row, column]))


def entry_for(model: Any, *weights: Planted, model_id: str = "swindex-tests/dependent-llama") -> dict[str, Any]:
    """A valid registry entry dict claiming ``weights`` for ``model``."""
    cfg = model.config
    return {
        "schema_version": 2,
        "id": model_id,
        "architecture": type(model).__name__,
        "family": cfg.model_type,
        "revision": None,
        "modified": _dt.date.today().isoformat(),
        "dimensions": {
            "num_layers": cfg.num_hidden_layers,
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
        },
        "verdict": {"outcome": "not_measured"},
        "claims": [w.as_dict() for w in weights],
    }
