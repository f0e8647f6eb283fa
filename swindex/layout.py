"""How a down-projection weight is stored: the one owner of the map between a scalar's (row, column, expert)
and its index in a stored tensor, in transformers checkpoints and in llama.cpp's GGUF files.

Why one module: the detector, surgery, the validator and ``swindex check`` each need this map, and copies
of it drifted apart. Pure Python (no torch), so the registry tools and ``swindex check`` can use it.

Terms. *row* is the output channel (a hidden-size feature, where the super activation appears), *column*
the input channel (an intermediate feature), *expert* the routed expert of a Mixture-of-Experts layer.

* A Linear weight is stored ``[row, column]``; GPT-2's Conv1D stores ``[column, row]`` (*transposed*).
* Fused experts (one 3-D parameter per layer, transformers 5) are stored ``[expert, row, column]``, or
  ``[expert, column, row]`` where the module says ``is_transposed`` (gpt-oss, Aria's routed experts).
* An expert kept as its own Linear (``experts.3.down_proj.weight``) is not fused: its index has no expert.
* GGUF writes dimensions fastest-first (``ne0`` is the number of columns), because ggml's matrix product
  takes its weight as ``ne0`` = input features. So every GGUF down projection, whatever layout its source
  checkpoint had, is ``ne = [columns, rows(, experts)]``: ``ggml_get_f32_nd(t, column, row, expert, 0)``
  in llama.cpp, and ``[expert,] row, column`` in the numpy array ``gguf.GGUFReader`` returns (the dimensions
  reversed). Checked on SmolLM2-135M-Instruct's Q4_1 file: every layer's dequantized ``blk.N.ffn_down.weight``
  equals transformers' ``model.layers.N.mlp.down_proj.weight`` loaded from the same file.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time: a lookup prints coordinates within its 30 ms
    from typing import Any, Literal

    Order = Literal["linear", "transposed", "either"]

TRANSPOSED_ARCHITECTURES = ("GPT2", "ImageGPT", "DecisionTransformer", "OpenAIGPT", "Clvp", "GptOss")
"""Model classes whose down projections are stored input-major: GPT-2's Conv1D family and gpt-oss's fused experts."""

MIXED_ARCHITECTURES = ("Aria", "OpenAIPrivacyFilter")
"""Model classes that hold both layouts (transposed fused experts beside Linear shared experts)."""

LINEAR_ARCHITECTURES = (
    "Llama",
    "Llama4",
    "Mistral",
    "Mistral3",
    "Mixtral",
    "Ministral",
    "Qwen2",
    "Qwen2Moe",
    "Qwen3",
    "Qwen3Moe",
    "Gemma",
    "Gemma2",
    "Gemma3",
    "Phi",
    "Phi3",
    "PhiMoe",
    "Olmo",
    "Olmo2",
    "Olmoe",
    "Falcon",
    "GPTNeoX",
    "GPTNeo",
    "GPTJ",
    "GPTBigCode",
    "Bloom",
    "OPT",
    "Mpt",
    "StableLm",
    "Starcoder2",
    "Cohere",
    "Cohere2",
    "DeepseekV2",
    "DeepseekV3",
    "Granite",
    "GraniteMoe",
    "Glm",
    "Glm4",
    "Dbrx",
    "Jamba",
    "Nemotron",
    "SmolLM3",
    "Bert",
    "Roberta",
    "XLMRoberta",
    "DistilBert",
    "Electra",
    "ModernBert",
    "EuroBert",
    "Llava",
    "LlavaNext",
    "Idefics3",
    "PaliGemma",
)
"""Model classes known to store every down projection as a Linear ``[row, column]``
(fused experts ``[expert, row, column]``)."""

DOWN_PROJECTION_NAMES = frozenset({"down_proj", "c_proj", "fc2", "dense_4h_to_h", "fc_out", "w2", "wo"})
"""Leaf names a decoder's MLP down projection goes by across model families (BERT-style encoders: ``output.dense``)."""

ENCODER_DOWN_PROJECTION = "output.dense"
"""BERT-style encoders' down projection: the feed-forward ``output.dense`` (not ``attention.output.dense``)."""

TRANSPOSED_MODULES = ("Conv1D",)
"""Layer classes that store their weight ``[in, out]``: GPT-2's Conv1D (transformers.pytorch_utils)."""


_TABLE: dict[str, Order] = {
    **{name: "linear" for name in LINEAR_ARCHITECTURES},
    **{name: "transposed" for name in TRANSPOSED_ARCHITECTURES},
    **{name: "either" for name in MIXED_ARCHITECTURES},
}
_PREFIXES = sorted(_TABLE, key=len, reverse=True)


def format_coordinate(tensor: str, index: tuple[int, ...] | list[int]) -> str:
    """A coordinate's canonical text, e.g. ``model.layers.2.mlp.down_proj.weight[3968, 7003]``: a claim's key."""
    return f"{tensor}[{', '.join(str(int(i)) for i in index)}]"


def index_order(architecture: str) -> Order:
    """ "linear", "transposed" or "either": how a model class (``GPT2LMHeadModel``) stores its down projections.

    A class is known by its model prefix followed by a capitalised head (``LlamaForCausalLM``, ``GPT2Model``);
    the longest known prefix wins. A class this table does not know (a remote-code model, a renamed class)
    gives "either": its order can only be read off the loaded module, never assumed.
    """
    for prefix in _PREFIXES:
        rest = architecture[len(prefix) :]
        if architecture.startswith(prefix) and (not rest or rest[0].isupper()):
            return _TABLE[prefix]
    return "either"


def module_stores_transposed(module: Any) -> bool:
    """Whether a layer module stores its weight ``[in, out]``: a Conv1D by its class, fused experts by the
    ``is_transposed`` flag transformers 5 sets on them."""
    return type(module).__name__ in TRANSPOSED_MODULES or bool(getattr(module, "is_transposed", False))


def is_shared_expert(tensor: str) -> bool:
    """Whether a transformers tensor name is a shared expert's (``mlp.shared_expert.down_proj.weight``), which GGUF
    files name ``ffn_down_shexp``."""
    dotted = f".{tensor}"
    return ".shared_expert." in dotted or ".shared_experts." in dotted


def stored_index(
    row: int, column: int, expert: int | None = None, *, transposed: bool = False, fused: bool = False
) -> tuple[int, ...]:
    """Where the scalar (row, column[, expert]) sits in the stored tensor.

    ``fused`` means one 3-D tensor holds every expert (then ``expert`` is required and comes first);
    ``transposed`` means the tensor is stored ``[column, row]`` (Conv1D, gpt-oss experts).
    """
    pair = (int(column), int(row)) if transposed else (int(row), int(column))
    if not fused:
        return pair
    if expert is None:
        raise ValueError("a fused expert tensor needs the expert number: its index is [expert, ...]")
    return (int(expert), *pair)


def expected_index(
    row: int, column: int, index: tuple[int, ...] | list[int], architecture: str
) -> tuple[int, ...] | None:
    """The index a ``architecture`` model stores (row, column) at, with ``index``'s own rank and expert: the index a
    claim must write. None when the class's order is unknown ("either"): then only the module can say."""
    order = index_order(architecture)
    if order == "either":
        return None
    fused = len(index) == 3
    return stored_index(row, column, int(index[0]) if fused else None, transposed=order == "transposed", fused=fused)


def held_order(index: tuple[int, ...] | list[int], row: int, column: int) -> Order | None:
    """How a stored index holds (row, column) in its last two places: "linear" for ``[..., row, column]``,
    "transposed" for ``[..., column, row]`` ("linear" when row equals column), None when it holds neither."""
    pair = tuple(int(i) for i in index[-2:])
    if pair == (int(row), int(column)):
        return "linear"
    if pair == (int(column), int(row)):
        return "transposed"
    return None


def coordinate_of(
    index: tuple[int, ...] | list[int], *, transposed: bool = False, fused: bool = False, expert: int | None = None
) -> tuple[int, int, int | None]:
    """(row, column, expert) of a stored index: the inverse of `stored_index`.

    For a tensor that is not fused the index carries no expert; pass the one its name says (``experts.3``), if any.
    """
    index = tuple(int(i) for i in index)
    if len(index) != (3 if fused else 2):
        kind = "[expert, i, j]" if fused else "[i, j]"
        raise ValueError(
            f"index {list(index)} does not fit a {'fused expert' if fused else 'two-dimensional'} tensor ({kind})"
        )
    if fused:
        expert, index = index[0], index[1:]
    first, second = index
    row, column = (second, first) if transposed else (first, second)
    return row, column, expert


def gguf_tensor_name(layer: int, expert: int | None = None, *, shared: bool = False) -> str:
    """llama.cpp's name for a layer's down projection: ``blk.N.ffn_down.weight``.

    Routed experts are always fused in GGUF (``blk.N.ffn_down_exps.weight``, one tensor for every expert);
    a shared expert is ``blk.N.ffn_down_shexp.weight``.
    """
    if expert is not None:
        return f"blk.{int(layer)}.ffn_down_exps.weight"
    return f"blk.{int(layer)}.ffn_down_shexp.weight" if shared else f"blk.{int(layer)}.ffn_down.weight"


def gguf_tensor_names(tensor: str, layer: int, expert: int | None = None) -> tuple[str, ...]:
    """The names a transformers down projection may have in a GGUF file, today's first: fused routed experts,
    a shared expert, a plain layer, or llama.cpp's older per-expert tensors (``blk.N.ffn_down.E.weight``)."""
    names: tuple[str, ...] = (gguf_tensor_name(layer, expert, shared=is_shared_expert(tensor)),)
    if expert is not None:
        names += (f"blk.{int(layer)}.ffn_down.{int(expert)}.weight",)
    return names


def gguf_index(row: int, column: int, expert: int | None = None) -> tuple[int, ...]:
    """The index as llama.cpp writes it, fastest dimension first: ``(i0, i1[, i2]) = (column, row[, expert])``."""
    return (int(column), int(row)) if expert is None else (int(column), int(row), int(expert))


def gguf_array_index(row: int, column: int, expert: int | None = None) -> tuple[int, ...]:
    """The index into the (dequantized) numpy array of a GGUF tensor: ``[expert,] row, column``."""
    return (int(row), int(column)) if expert is None else (int(expert), int(row), int(column))


CHECKPOINT_PREFIXES = (
    "model.language_model.",
    "language_model.model.",
    "model.decoder.",
    "language_model.",
    "model.",
    "decoder.",
    "transformer.",
    "gpt_neox.",
    "bert.",
    "roberta.",
    "backbone.",
)
"""Prefixes a loader adds or drops between a model and its checkpoint (transformers' ``base_model_prefix``, and
the text model inside a multimodal one). A checkpoint's tensor is the entry's when the names are equal after
dropping at most one of these from each; nothing else matches (a name that merely ends the same never does)."""


def _without_prefix(name: str) -> str:
    return next((name[len(p) :] for p in CHECKPOINT_PREFIXES if name.startswith(p)), name)


def checkpoint_names(tensor: str) -> tuple[str, ...]:
    """The names a checkpoint may store ``tensor`` under: itself, without its prefix, and under each other prefix."""
    core = _without_prefix(tensor)
    return tuple(dict.fromkeys((tensor, core, *(prefix + core for prefix in CHECKPOINT_PREFIXES))))


def expert_tensor_name(tensor: str, expert: int) -> str:
    """One routed expert saved as its own Linear: ``...experts.down_proj`` becomes
    ``...experts.{expert}.down_proj.weight``."""
    module = tensor.removesuffix(".weight")
    head, dot, last = module.rpartition(".")
    return f"{head}.{int(expert)}.{last}.weight" if dot else f"{int(expert)}.{module}.weight"
