"""The weights to keep, in each quantizer's own words: ``swindex keep MODEL --for TOOL`` and ``Entry.keep_for``.

Why one module: every quantizer names what it must leave alone in its own way (llama.cpp by a GGUF tensor
pattern, bitsandbytes and llm-compressor by module name, AutoRound per layer, GPTQModel by a negative regex,
AutoAWQ by a substring of each block's module names). This is the one place that translation lives; each
format says which library version it follows (``Format.version``), and the real libraries that install here
are exercised against it in the tests. None of these tools can keep one scalar: they keep the module (or
GGUF tensor) holding it, and each export says what that costs.

Pure Python (no torch), so ``lookup(...).keep_for("llama.cpp")`` works with the base install.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .claims import claims_of, keep_counts, keep_kind, weights_to_keep
from .errors import SwindexError, shown
from .layout import gguf_index, gguf_tensor_names

__all__ = [
    "Export",
    "Format",
    "FORMATS",
    "KeepError",
    "KeptWeight",
    "keep_for",
    "tool_name",
    "DEFAULT_HELD_TYPE",
    "DEFAULT_BASE_TYPE",
]

DEFAULT_HELD_TYPE = "Q8_0"
"""The GGUF type llama.cpp holds a kept tensor at:
8 bits a weight, one scale per 32, the closest to float it offers in blocks."""
DEFAULT_BASE_TYPE = "Q4_K"
"""The type the cost is counted against: what ``Q4_K_M`` gives most down projections."""


class KeepError(SwindexError):
    """The weights to keep cannot be exported (unknown tool, nothing to keep, unknown GGUF type)."""


@dataclass(frozen=True)
class Format:
    """One quantizer's way of naming what to leave alone:
    its name, aliases, the version it follows, and its language."""

    tool: str
    aliases: tuple[str, ...]
    version: str
    language: str  # for highlighting: python, shell, json, csv
    keeps: str  # what it keeps, in words


FORMATS: dict[str, Format] = {
    f.tool: f
    for f in (
        Format(
            "llama.cpp",
            ("llamacpp", "gguf", "llama-quantize"),
            "llama.cpp llama-quantize --tensor-type (b4000 and later)",
            "shell",
            "the GGUF tensor holding each weight, at a higher type",
        ),
        Format(
            "bitsandbytes",
            ("bnb", "transformers"),
            "transformers 5 BitsAndBytesConfig with bitsandbytes 0.50",
            "python",
            "each module holding a weight, unquantized",
        ),
        Format(
            "llm-compressor",
            ("llmcompressor", "compressed-tensors"),
            "llm-compressor 0.14 (compressed-tensors ignore)",
            "python",
            "each module holding a weight, unquantized",
        ),
        Format(
            "autoround",
            ("auto-round", "auto_round"),
            "auto-round 0.13 layer_config",
            "python",
            "each module holding a weight, at 16-bit float",
        ),
        Format(
            "gptqmodel",
            ("gptq",),
            "GPTQModel 4 QuantizeConfig.dynamic (negative match)",
            "python",
            "each module holding a weight, unquantized",
        ),
        Format(
            "autoawq",
            ("awq",),
            "AutoAWQ 0.2.9 modules_to_not_convert (archived; matched per block)",
            "python",
            "the projection holding a weight, in every layer",
        ),
        Format("json", (), "swindex keep JSON 1", "json", "every weight to keep, with its impact and both indices"),
        Format("csv", (), "swindex keep CSV 1", "csv", "every weight to keep, with its impact and both indices"),
    )
}
"""Every export, by tool name; the order is the order the CLI and the site list them."""


@dataclass(frozen=True)
class KeptWeight:
    """One weight to keep, with what it is and where it sits in a transformers checkpoint and in a GGUF file."""

    coordinate: str
    kind: str  # swindex.claims.KEEP_KINDS
    impact: str  # critical, significant, unmeasured
    ratio: float | None  # perplexity with it zeroed over perplexity as is, when measured
    layer: int
    row: int
    column: int
    expert: int | None
    tensor: str
    module: str
    index: tuple[int, ...]
    gguf_tensor: str
    gguf_index: tuple[int, ...]
    value: float | None


@dataclass(frozen=True)
class Export:
    """What to paste into a quantizer to keep a model's weights, and what keeping them costs."""

    tool: str
    model: str
    text: str
    language: str
    weights: tuple[KeptWeight, ...]
    modules: tuple[str, ...]  # for llama.cpp: the GGUF tensors
    notes: tuple[str, ...]
    version: str
    held: str  # "1 super weight, 1 significant weight"
    benefit: str | None = None  # the measured line for this tool's scheme (issue 26), None until recorded

    def __str__(self) -> str:
        return self.text


def tool_name(tool: str) -> str:
    """The canonical tool name for a name or alias, any case; a clear error listing them otherwise."""
    wanted = str(tool).strip().casefold()
    for name, fmt in FORMATS.items():
        if wanted == name.casefold() or wanted in fmt.aliases:
            return name
    raise KeepError(f"no export for {shown(str(tool))!r}: swindex keep writes for {', '.join(FORMATS)}")


def _weights(entry: Mapping[str, Any]) -> tuple[KeptWeight, ...]:
    return tuple(
        KeptWeight(
            coordinate=c.coordinate,
            kind=keep_kind(c),
            impact=c.impact.classification,
            ratio=c.impact.ratio,
            layer=c.layer,
            row=c.row,
            column=c.column,
            expert=c.expert,
            tensor=c.tensor,
            module=c.module,
            index=tuple(c.index),
            gguf_tensor=gguf_tensor_names(c.tensor, c.layer, c.expert)[0],
            gguf_index=gguf_index(c.row, c.column, c.expert),
            value=c.value,
        )
        for c in weights_to_keep(claims_of(entry))
    )


def _unique(items: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _python_list(names: Any) -> str:
    return "[" + ", ".join(json.dumps(n) for n in names) + "]"


def _ggml_bytes(type_name: str, elements: int) -> int:
    """Bytes of ``elements`` weights stored as a GGML type, from gguf-py's own table (block size, bytes a block)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        kind = GGMLQuantizationType[type_name.upper()]
    except KeyError:
        known = ", ".join(t.name for t in GGML_QUANT_SIZES)
        raise KeepError(f"{shown(type_name)!r} is not a GGML tensor type; llama.cpp's types are {known}") from None
    block, size = GGML_QUANT_SIZES[kind]
    return -(-int(elements) // block) * size


def _tensor_elements(entry: Mapping[str, Any], weight: KeptWeight) -> int | None:
    """How many weights the tensor holding ``weight`` has, from the entry's recorded dimensions."""
    dims = entry.get("dimensions") or {}
    hidden = dims.get("hidden_size")
    if weight.expert is not None:
        inner, experts = dims.get("moe_intermediate_size") or dims.get("intermediate_size"), dims.get("num_experts")
        if isinstance(hidden, int) and isinstance(inner, int) and isinstance(experts, int):
            return hidden * inner * experts
        return None
    inner = dims.get("intermediate_size")
    return hidden * inner if isinstance(hidden, int) and isinstance(inner, int) else None


def _llama_cpp(
    entry: Mapping[str, Any], weights: tuple[KeptWeight, ...], held: str, base: str
) -> tuple[str, tuple[str, ...], list[str]]:
    tensors = _unique(w.gguf_tensor for w in weights)
    _ggml_bytes(held, 1)  # an unknown type fails before anything is printed
    _ggml_bytes(base, 1)
    overrides = " ".join(f"--tensor-type '{re.escape(t)}={held.lower()}'" for t in tensors)
    name = str(entry["id"]).rsplit("/", 1)[-1]
    text = (
        f"# hold {'this tensor' if len(tensors) == 1 else 'these tensors'} at {held.upper()}; "
        "add --allow-requantize when the input GGUF is already quantized\n"
        f"llama-quantize {overrides} {name}-F16.gguf {name}-Q4_K_M.gguf Q4_K_M"
    )
    notes = [
        "llama.cpp cannot keep one scalar: it quantizes whole tensors, so it holds the tensor with the weight at a "
        f"higher type ({held.upper()}) than the rest."
    ]
    by_tensor = {w.gguf_tensor: w for w in weights}
    for tensor in tensors:
        elements = _tensor_elements(entry, by_tensor[tensor])
        if elements is None:
            notes.append(f"{tensor}: the entry records no dimensions, so the cost in bytes is not known")
            continue
        extra = _ggml_bytes(held, elements) - _ggml_bytes(base, elements)
        notes.append(
            f"{tensor} ({elements:,} weights) at {held.upper()} takes {_ggml_bytes(held, elements):,} bytes against "
            f"{_ggml_bytes(base, elements):,} at {base.upper()}: {extra:+,} bytes"
        )
    return text, tensors, notes


def _snippet(
    tool: str, model: str, modules: tuple[str, ...], weights: tuple[KeptWeight, ...], entry: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """The Python a user pastes for the module-level tools, and what it cannot do."""
    quoted = json.dumps(model)
    if tool == "bitsandbytes":
        return (
            "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n\n"
            "# The list replaces transformers' default skip list, so it names the output layer too.\n"
            f'config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", '
            f"llm_int8_skip_modules={_python_list(('lm_head', *modules))})\n"
            f"model = AutoModelForCausalLM.from_pretrained({quoted}, quantization_config=config)"
        ), []
    if tool == "llm-compressor":
        name = model.rsplit("/", 1)[-1]
        return (
            "from llmcompressor import oneshot\n"
            "from llmcompressor.modifiers.quantization import QuantizationModifier\n\n"
            'recipe = QuantizationModifier(targets="Linear", scheme="W8A8", '
            f"ignore={_python_list(('lm_head', *modules))})\n"
            f"oneshot(model={quoted}, recipe=recipe, output_dir={json.dumps(name + '-W8A8')})"
        ), []
    if tool == "autoround":
        config = ", ".join(f'{json.dumps(m)}: {{"bits": 16, "data_type": "fp"}}' for m in modules)
        return (
            "from auto_round import AutoRound\n\n"
            f"layer_config = {{{config}}}\n"
            f'autoround = AutoRound({quoted}, scheme="W4A16", layer_config=layer_config)\n'
            f"autoround.quantize_and_save({json.dumps(model.rsplit('/', 1)[-1] + '-W4A16')})"
        ), []
    if tool == "gptqmodel":
        dynamic = ", ".join(f"{json.dumps('-:^' + re.escape(m) + '$')}: {{}}" for m in modules)
        return (
            "from gptqmodel import GPTQModel, QuantizeConfig\n\n"
            '# "-:" is GPTQModel\'s negative match: the module stays unquantized.\n'
            f"config = QuantizeConfig(bits=4, group_size=128, dynamic={{{dynamic}}})\n"
            f"model = GPTQModel.load({quoted}, config)\n"
            "model.quantize(calibration)  # your calibration texts\n"
            f"model.save({json.dumps(model.rsplit('/', 1)[-1] + '-GPTQ')})"
        ), []
    # autoawq: names are matched as substrings of each block's own module names, so a layer cannot be singled out
    local = _unique(m.split(f".{w.layer}.", 1)[-1] for m, w in zip(modules, _first_weights(modules, weights)))
    layers = (entry.get("dimensions") or {}).get("num_layers")
    every = f"all {layers} layers" if isinstance(layers, int) else "every layer"
    return (
        "from awq import AutoAWQForCausalLM\nfrom transformers import AutoTokenizer\n\n"
        f'quant_config = {{"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM", '
        f'"modules_to_not_convert": {_python_list(local)}}}\n'
        f"model = AutoAWQForCausalLM.from_pretrained({quoted})\n"
        f"tokenizer = AutoTokenizer.from_pretrained({quoted})\n"
        "model.quantize(tokenizer, quant_config=quant_config)"
    ), [
        f"AutoAWQ matches modules_to_not_convert against each block's module names ({', '.join(local)}), so it cannot "
        f"keep one layer: this leaves that projection unquantized in {every}. "
        "GPTQModel (--for gptqmodel) can name one layer."
    ]


def _first_weights(modules: tuple[str, ...], weights: tuple[KeptWeight, ...]) -> list[KeptWeight]:
    return [next(w for w in weights if w.module == m) for m in modules]


_FIELDS = (
    "coordinate",
    "kind",
    "impact",
    "ratio",
    "layer",
    "row",
    "column",
    "expert",
    "tensor",
    "module",
    "index",
    "gguf_tensor",
    "gguf_index",
    "value",
)


def _table(tool: str, model: str, weights: tuple[KeptWeight, ...]) -> str:
    rows = [asdict(w) for w in weights]
    if tool == "json":
        return json.dumps({"model": model, "weights": [{k: row[k] for k in _FIELDS} for row in rows]}, indent=2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_FIELDS)
    for row in rows:
        writer.writerow(
            [
                " ".join(map(str, row[k])) if isinstance(row[k], tuple) else ("" if row[k] is None else row[k])
                for k in _FIELDS
            ]
        )
    return out.getvalue().rstrip("\n")


def _benefit(entry: Any, tool: str, scheme: str | None = None) -> str | None:
    """The measured lines for this tool's schemes (swindex.benefit.advice_for_tool),
    or for one ``scheme``; None unmeasured.

    The one call site for those lines: ``keep`` and ``quantize`` both print what this returns.
    """
    from .benefit import TOOL_SCHEMES, BenefitTable, advice, advice_for_tool

    data = entry.to_dict() if hasattr(entry, "to_dict") else dict(entry)
    recorded = (data.get("evidence") or {}).get("keep_benefit")
    if not recorded:
        return None
    table = BenefitTable.from_dict(recorded)
    if scheme is not None:
        rows = [r for r in table.for_scheme(scheme) if r.why == "weights_to_keep"]
        return advice(rows[0]) if rows else None
    return "\n".join(advice_for_tool(table, tool)) if tool in TOOL_SCHEMES else None


def keep_for(
    entry: Any, tool: str, *, held_type: str = DEFAULT_HELD_TYPE, base_type: str = DEFAULT_BASE_TYPE
) -> Export:
    """The entry's weights to keep (``Entry.weights_to_keep``) as ``tool`` takes them;
    ``tool`` is a name in FORMATS or an alias.

    ``held_type`` and ``base_type`` (llama.cpp only): the GGML type the kept tensor is held at, and the one its cost
    in bytes is counted against. Raises KeepError when the entry has nothing to keep.
    """
    name = tool_name(tool)
    fmt = FORMATS[name]
    data = entry.to_dict() if hasattr(entry, "to_dict") else dict(entry)
    model = str(data.get("id") or "")
    weights = _weights(data)
    if not weights:
        verdict = (data.get("verdict") or {}).get("outcome", "not_measured")
        raise KeepError(
            f"{shown(model)}: no weight to keep is on record (verdict: {verdict.replace('_', ' ')}), so there is "
            "nothing to hold out; quantize it as usual"
        )
    held = keep_counts(weights_to_keep(claims_of(data)))
    notes: list[str] = []
    if name == "llama.cpp":
        text, modules, notes = _llama_cpp(data, weights, held_type, base_type)
    elif name in ("json", "csv"):
        text, modules = _table(name, model, weights), _unique(w.module for w in weights)
    else:
        modules = _unique(w.module for w in weights)
        text, notes = _snippet(name, model, modules, weights, data)
        if any(w.expert is not None and w.index and len(w.index) == 3 for w in weights):
            notes.append("a fused expert tensor is one module: keeping it keeps every expert of that layer")
    return Export(
        tool=name,
        model=model,
        text=text,
        language=fmt.language,
        weights=weights,
        modules=modules,
        notes=tuple(notes),
        version=fmt.version,
        held=held,
        benefit=_benefit(entry, name),
    )
