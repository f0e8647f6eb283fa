"""Tiny random transformers models with planted super weights, and their unplanted twins.

Why: the detector, verify, surgery and the builder need models with super weights at known coordinates, and
nothing can be downloaded in tests. `build_planted(family, plants, seed)` builds a randomly initialised model
of one architecture family and plants each `Plant` so that a real super activation arises in the forward
pass, the way it does in trained models:

* Scaffold (twins get it too): the first token (the config's BOS id) embeds as ``BOS_SCALE * e_d`` on a
  private hidden dimension ``d = BOS_DIM``, so after any norm the first token's FFN input is ~sqrt(hidden)
  on ``d`` in every layer, whatever spikes earlier layers add. A massive residual activation that no down
  projection produces is exactly what a detector must not report, so twins double as a false-positive test.
* A plant at (layer, row, column[, expert]) makes intermediate channel ``column`` read only dimension ``d``
  (gate and up rows, or the one up row with a bias threshold for non-gated MLPs), scaled so that the
  first token's down-projection input at ``column`` is ``plant.input``; then sets the down-projection
  weight at (row, column) to ``plant.weight``. The output spike at (token 0, row) is ~input * weight.
* Mixture-of-Experts plants also make the router send the first token to ``plant.expert``.

`save_planted(model, path)` writes a loadable directory (config + safetensors, no tokenizer). Families: see `FAMILIES`.
This module never imports swindex.detection, so it can test it (only swindex.records' coordinate format).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swindex.layout import format_coordinate

BOS_DIM = 3
BOS_SCALE = 1000.0
HIDDEN = 64
INTERMEDIATE = 128
LAYERS = 4
VOCAB = 256
#: token ids after BOS that the plants are calibrated on; the detector's own default sequence also starts with BOS.
PROBE_IDS = (17, 42, 99, 7, 63, 128, 5, 201, 33, 77, 150)


@dataclass(frozen=True)
class Plant:
    """Where to plant a super weight and how big: input is the first token's down-projection input at column."""

    layer: int
    row: int
    column: int
    expert: int | None = None
    input: float = 40.0
    weight: float = -8.0


@dataclass(frozen=True)
class PlantedWeight:
    """A planted super weight as the registry names it, with the activations measured after planting."""

    layer: int
    tensor: str
    row: int
    column: int
    expert: int | None
    index: tuple[int, ...]
    value: float
    input_activation: float
    output_activation: float

    @property
    def coordinate(self) -> str:
        return format_coordinate(self.tensor, self.index)


@dataclass(frozen=True)
class FamilySpec:
    """How to build a tiny model of one family and where its FFN sits inside a layer."""

    config: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    up: tuple[str, ...] = ("mlp.gate_proj", "mlp.up_proj")
    down: str = "mlp.down_proj"
    gated: bool = True
    conv1d: bool = False
    experts: str | None = None
    router: str | None = None
    bos_scale: float = BOS_SCALE  # OLMo-2 feeds the raw residual to its FFN (no pre-norm): keep it at norm scale


_GPT = {"n_embd": HIDDEN, "n_layer": LAYERS, "n_head": 4, "n_inner": INTERMEDIATE, "n_positions": 128}
_MOE = {"experts": "mlp.experts", "router": "mlp.gate"}

FAMILIES: dict[str, FamilySpec] = {
    "llama": FamilySpec("LlamaConfig", "LlamaForCausalLM"),
    "mistral": FamilySpec("MistralConfig", "MistralForCausalLM"),
    "qwen2": FamilySpec("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": FamilySpec("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
    "gemma": FamilySpec("GemmaConfig", "GemmaForCausalLM", {"head_dim": 16}),
    "gemma2": FamilySpec("Gemma2Config", "Gemma2ForCausalLM", {"head_dim": 16}),
    "gemma3": FamilySpec("Gemma3TextConfig", "Gemma3ForCausalLM", {"head_dim": 16}),
    "phi": FamilySpec("PhiConfig", "PhiForCausalLM", up=("mlp.fc1",), down="mlp.fc2", gated=False),
    "phi3": FamilySpec("Phi3Config", "Phi3ForCausalLM", up=("mlp.gate_up_proj",)),
    "olmo": FamilySpec("OlmoConfig", "OlmoForCausalLM"),
    "olmo2": FamilySpec("Olmo2Config", "Olmo2ForCausalLM", bos_scale=8.0),
    "gpt2": FamilySpec(
        "GPT2Config", "GPT2LMHeadModel", _GPT, up=("mlp.c_fc",), down="mlp.c_proj", gated=False, conv1d=True
    ),
    "gpt_neox": FamilySpec(
        "GPTNeoXConfig", "GPTNeoXForCausalLM", up=("mlp.dense_h_to_4h",), down="mlp.dense_4h_to_h", gated=False
    ),
    "gptj": FamilySpec(
        "GPTJConfig", "GPTJForCausalLM", {**_GPT, "rotary_dim": 8}, up=("mlp.fc_in",), down="mlp.fc_out", gated=False
    ),
    "falcon": FamilySpec(
        "FalconConfig",
        "FalconForCausalLM",
        {"ffn_hidden_size": INTERMEDIATE, "bias": True},
        up=("mlp.dense_h_to_4h",),
        down="mlp.dense_4h_to_h",
        gated=False,
    ),
    "opt": FamilySpec(
        "OPTConfig",
        "OPTForCausalLM",
        {"ffn_dim": INTERMEDIATE, "word_embed_proj_dim": HIDDEN},
        up=("fc1",),
        down="fc2",
        gated=False,
    ),
    "bloom": FamilySpec(
        "BloomConfig",
        "BloomForCausalLM",
        {"n_layer": LAYERS, "n_head": 4},
        up=("mlp.dense_h_to_4h",),
        down="mlp.dense_4h_to_h",
        gated=False,
    ),
    "stablelm": FamilySpec("StableLmConfig", "StableLmForCausalLM"),
    "starcoder2": FamilySpec(
        "Starcoder2Config", "Starcoder2ForCausalLM", up=("mlp.c_fc",), down="mlp.c_proj", gated=False
    ),
    "bert": FamilySpec("BertConfig", "BertModel", up=("intermediate.dense",), down="output.dense", gated=False),
    "roberta": FamilySpec(
        "RobertaConfig",
        "RobertaModel",
        {"bos_token_id": 0, "pad_token_id": 1},
        up=("intermediate.dense",),
        down="output.dense",
        gated=False,
    ),
    "mixtral": FamilySpec(
        "MixtralConfig", "MixtralForCausalLM", {"num_local_experts": 4, "num_experts_per_tok": 2}, **_MOE
    ),
    "qwen2_moe": FamilySpec(
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        {
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 64,
        },
        **_MOE,
    ),
    "qwen3_moe": FamilySpec(
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "head_dim": 16},
        **_MOE,
    ),
    "deepseek_v3": FamilySpec(
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        {
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            "n_group": 1,
            "topk_group": 1,
            "q_lora_rank": None,
            "kv_lora_rank": 16,
            "qk_rope_head_dim": 8,
            "qk_nope_head_dim": 8,
            "v_head_dim": 16,
        },
        **_MOE,
    ),
}
MOE_FAMILIES = tuple(name for name, spec in FAMILIES.items() if spec.experts)
DENSE_FAMILIES = tuple(name for name in FAMILIES if name not in MOE_FAMILIES)


def tiny_config(family: str, **overrides: Any) -> Any:
    """A small config (hidden 64, 4 layers, vocab 256, BOS id 1) of one family."""
    import transformers

    spec = _spec(family)
    options: dict[str, Any] = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    options.update(spec.options)
    if "num_layers" in overrides:
        layers = overrides.pop("num_layers")
        options["n_layer" if "n_layer" in options else "num_hidden_layers"] = layers
    options.update(overrides)
    config = getattr(transformers, spec.config)(**options)
    config.architectures = [spec.model]
    return config


def build_planted(
    family: str, plants: Any = None, seed: int = 0, dtype: Any = None, **config_overrides: Any
) -> tuple[Any, tuple[PlantedWeight, ...]]:
    """A random model of `family` with `plants` planted (None: one default plant, (): an unplanted twin)."""
    import torch
    import transformers

    spec = _spec(family)
    if plants is None:
        plants = (Plant(layer=1, row=5, column=7, expert=0 if spec.experts else None),)
    config = tiny_config(family, **config_overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, spec.model)(config).eval()
    with torch.no_grad():
        _install_scaffold(model, config, spec.bos_scale)
        for plant in sorted(plants, key=lambda p: p.layer):
            _plant(model, spec, config, plant)
    if dtype is not None:
        model = model.to(dtype)
    planted = tuple(_describe(model, spec, config, plant) for plant in plants)
    return model, planted


def save_planted(model: Any, path: str | Path) -> Path:
    """Save a planted model as a local model directory (config.json + model.safetensors)."""
    path = Path(path)
    model.save_pretrained(path)
    return path


def layers_of(model: Any) -> Any:
    """The model's list of transformer blocks."""
    import torch

    best = None
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and (best is None or len(module) > len(best)):
            best = module
    return best


def probe_ids(config: Any) -> Any:
    """A batch of one sequence: the config's BOS id, then `PROBE_IDS`."""
    import torch

    return torch.tensor([(config.bos_token_id, *PROBE_IDS)])


def _spec(family: str) -> FamilySpec:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}") from None


def _install_scaffold(model: Any, config: Any, scale: float) -> None:
    embedding = model.get_input_embeddings().weight
    embedding[config.bos_token_id].zero_()
    embedding[config.bos_token_id, BOS_DIM] = scale


def _module_at(model: Any, layer: int, name: str) -> Any:
    return layers_of(model)[layer].get_submodule(name)


def _ffn_input(model: Any, spec: FamilySpec, config: Any, layer: int) -> Any:
    """The first token's input to the layer's FFN (after its norm), measured with a hook."""
    target = _module_at(
        model, layer, spec.experts if spec.experts and _is_moe_layer(model, spec, layer) else spec.up[0]
    )
    seen = {}

    def grab(_module: Any, args: tuple) -> None:
        x = args[0]
        seen["x"] = (x.reshape(-1, x.shape[-1]) if x.dim() > 2 else x)[0].detach().float().clone()

    handle = target.register_forward_pre_hook(grab)
    try:
        model(input_ids=probe_ids(model.config))
    finally:
        handle.remove()
    return seen["x"]


def _is_moe_layer(model: Any, spec: FamilySpec, layer: int) -> bool:
    try:
        _module_at(model, layer, spec.experts)
        return True
    except AttributeError:
        return False


def _down_input(model: Any, spec: FamilySpec, layer: int, column: int) -> float:
    seen = {}

    def grab(_module: Any, args: tuple) -> None:
        seen["v"] = float(args[0].reshape(-1, args[0].shape[-1])[0, column])

    handle = _module_at(model, layer, spec.down).register_forward_pre_hook(grab)
    try:
        model(input_ids=probe_ids(model.config))
    finally:
        handle.remove()
    return seen["v"]


def _plant(model: Any, spec: FamilySpec, config: Any, plant: Plant) -> None:
    x0 = _ffn_input(model, spec, config, plant.layer)
    signal = float(x0[BOS_DIM])
    if abs(signal) < 2.0:
        raise RuntimeError(
            f"{spec.model} layer {plant.layer}: the first token's FFN input on dimension {BOS_DIM} is only {signal:.3g}"
        )
    sign = math.copysign(1.0, signal)
    if spec.experts and _is_moe_layer(model, spec, plant.layer):
        if plant.expert is None:
            raise ValueError(
                f"layer {plant.layer} of {spec.model} is a Mixture-of-Experts layer: give the plant an expert"
            )
        _plant_expert(model, spec, plant, x0, sign)
        return
    if plant.expert is not None:
        raise ValueError(f"layer {plant.layer} of {spec.model} is dense: a plant there takes no expert")

    def set_scale(scale: float) -> None:
        for name in spec.up:
            module = _module_at(model, plant.layer, name)
            weight = module.weight
            rows = (
                (plant.column, plant.column + weight.shape[1 if spec.conv1d else 0] // 2)
                if name.endswith("gate_up_proj")
                else (plant.column,)
            )
            for row in rows:
                vector = weight[:, row] if spec.conv1d else weight[row]
                vector.zero_()
                vector[BOS_DIM] = sign * scale
                if not spec.gated and getattr(module, "bias", None) is not None:
                    module.bias[row] = -scale * abs(signal) / 2

    scale = _calibrate(set_scale, lambda: _down_input(model, spec, plant.layer, plant.column), plant.input)
    set_scale(scale)
    down = _module_at(model, plant.layer, spec.down).weight
    if spec.conv1d:
        down[plant.column, plant.row] = plant.weight
    else:
        down[plant.row, plant.column] = plant.weight


def _plant_expert(model: Any, spec: FamilySpec, plant: Plant, x0: Any, sign: float) -> None:
    import torch

    experts = _module_at(model, plant.layer, spec.experts)
    router = _module_at(model, plant.layer, spec.router)
    router.weight[plant.expert].zero_()
    router.weight[plant.expert, BOS_DIM] = sign * 20.0
    half = experts.gate_up_proj.shape[1] // 2

    def set_scale(scale: float) -> None:
        for row in (plant.column, half + plant.column):
            experts.gate_up_proj[plant.expert, row].zero_()
            experts.gate_up_proj[plant.expert, row, BOS_DIM] = sign * scale

    def measure() -> float:
        h = experts._apply_gate(torch.nn.functional.linear(x0, experts.gate_up_proj[plant.expert].float()))
        return float(h[plant.column])

    scale = _calibrate(set_scale, measure, plant.input)
    set_scale(scale)
    experts.down_proj[plant.expert, plant.row, plant.column] = plant.weight


def _calibrate(set_scale: Any, measure: Any, target: float) -> float:
    """The scale that makes the measured activation hit target, fitting a power law (gated MLPs are ~quadratic)."""
    scale, value = 1.0, None
    for _ in range(6):
        set_scale(scale)
        value = measure()
        if value > 0 and abs(value - target) <= 0.01 * target:
            return scale
        set_scale(scale * 1.25)
        higher = measure()
        power = math.log(higher / value, 1.25) if value > 0 and higher > value else 1.0
        scale = scale * (target / value) ** (1.0 / max(power, 0.5)) if value > 0 else scale * 4.0
    return scale


def _describe(model: Any, spec: FamilySpec, config: Any, plant: Plant) -> PlantedWeight:
    import torch

    layers = layers_of(model)
    names = {id(p): n for n, p in model.named_parameters()}
    moe = spec.experts is not None and plant.expert is not None
    module = layers[plant.layer].get_submodule(spec.experts if moe else spec.down)
    weight = module.down_proj if moe else module.weight
    if moe:
        index: tuple[int, ...] = (plant.expert, plant.row, plant.column)
    elif spec.conv1d:
        index = (plant.column, plant.row)
    else:
        index = (plant.row, plant.column)
    seen: dict[str, float] = {}
    with torch.no_grad():
        if moe:
            x0 = _ffn_input(model, spec, config, plant.layer).to(weight.dtype)
            h = module._apply_gate(torch.nn.functional.linear(x0, module.gate_up_proj[plant.expert]))
            seen["input"] = float(h[plant.column])
            seen["output"] = float(torch.nn.functional.linear(h, weight[plant.expert])[plant.row])
        else:

            def grab(_module: Any, args: tuple, output: Any) -> None:
                seen["input"] = float(args[0].reshape(-1, args[0].shape[-1])[0, plant.column])
                seen["output"] = float(output.reshape(-1, output.shape[-1])[0, plant.row])

            handle = module.register_forward_hook(grab)
            try:
                model(input_ids=probe_ids(model.config))
            finally:
                handle.remove()
    return PlantedWeight(
        layer=plant.layer,
        tensor=names[id(weight)],
        row=plant.row,
        column=plant.column,
        expert=plant.expert if moe else None,
        index=index,
        value=float(weight.detach()[index]),
        input_activation=seen["input"],
        output_activation=seen["output"],
    )
