"""Which registry entry a checkpoint derives from, from its own metadata, and whether its shape agrees.

The checkpoint is asked in this order, and the first question with an answer decides:

1. ``config.json``'s ``_name_or_path`` (a fine-tune saved by transformers names the model it was loaded from);
2. the model card's ``base_model`` (one id, or a list for a merge);
3. GGUF ``general.base_model.N.*``, then ``general.name``, then ``general.organization`` with
   ``general.basename`` and ``general.size_label``;
4. the architecture with the dimensions: the registry models of that shape.

An answer naming several registry models is ambiguous: check stops and lists them. A chosen entry whose
dimensions the checkpoint contradicts is refused, with each mismatch named.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import UnknownModelError
from ..records import Entry
from .errors import BaseModelError, DimensionMismatchError

DIMENSIONS = ("num_layers", "hidden_size", "intermediate_size", "num_experts", "moe_intermediate_size")
_CONFIG_KEYS = {
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "hidden_dim"),
    "num_experts": ("num_experts", "num_local_experts", "n_routed_experts"),
    "moe_intermediate_size": ("moe_intermediate_size",),
}
_GGUF_KEYS = {
    "num_layers": "block_count",
    "hidden_size": "embedding_length",
    "intermediate_size": "feed_forward_length",
    "num_experts": "expert_count",
    "moe_intermediate_size": "expert_feed_forward_length",
}
_REPO_URL = re.compile(r"^https?://[^/]+/(?P<id>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)/?$")


def config_dimensions(config: Mapping[str, Any] | None) -> dict[str, int]:
    """The registry's dimension names, read from a transformers config.json (a text model's own config when nested)."""
    if not isinstance(config, Mapping):
        return {}
    text = config.get("text_config")
    if isinstance(text, Mapping) and not any(key in config for key in _CONFIG_KEYS["hidden_size"]):
        config = text
    found = {}
    for name, keys in _CONFIG_KEYS.items():
        value = next((config[key] for key in keys if type(config.get(key)) is int), None)
        if value is not None:
            found[name] = value
    return found


def gguf_dimensions(metadata: Mapping[str, Any]) -> dict[str, int]:
    """The registry's dimension names, read from GGUF metadata (``{architecture}.block_count`` and so on)."""
    arch = metadata.get("general.architecture")
    found = {}
    for name, key in _GGUF_KEYS.items():
        value = metadata.get(f"{arch}.{key}")
        if type(value) is int:
            found[name] = value
    return found


def contradictions(entry: Entry, dimensions: Mapping[str, int]) -> list[str]:
    """Each dimension the entry records and the checkpoint contradicts, as 'name: entry N, checkpoint M'."""
    problems = []
    for name in DIMENSIONS:
        recorded, found = entry.dimensions.get(name), dimensions.get(name)
        if isinstance(recorded, int) and isinstance(found, int) and recorded != found:
            problems.append(f"{name}: entry {recorded}, checkpoint {found}")
    return problems


def refuse_contradictions(entry: Entry, dimensions: Mapping[str, int], checkpoint: str) -> None:
    """Raise DimensionMismatchError when the checkpoint cannot be a derivative of the entry's model."""
    problems = contradictions(entry, dimensions)
    if problems:
        raise DimensionMismatchError(
            f"{checkpoint} does not have the shape of {entry.id} ({'; '.join(problems)}): it is not a fine-tune or "
            "quantization of that model; name the right one with --base or --entry"
        )


def name_questions(config: Mapping[str, Any] | None, card: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None) -> list[tuple[str, list[str]]]:
    """(where, names) for each metadata question, in the order they are asked; empty answers are left out."""
    questions: list[tuple[str, list[str]]] = []
    name = (config or {}).get("_name_or_path") if isinstance(config, Mapping) else None
    if isinstance(name, str) and name.strip():
        questions.append(("config.json _name_or_path", [name.strip()]))
    base = (card or {}).get("base_model") if isinstance(card, Mapping) else None
    bases = [base] if isinstance(base, str) else [b for b in base if isinstance(b, str)] if isinstance(base, list) else []
    if bases:
        questions.append(("the model card's base_model", bases))
    meta = metadata or {}
    if meta:
        count = meta.get("general.base_model.count")
        gguf_bases = []
        for i in range(count if type(count) is int and 0 < count <= 64 else 0):
            prefix = f"general.base_model.{i}"
            url = _REPO_URL.match(str(meta.get(f"{prefix}.repo_url", "")))
            organization, base_name = meta.get(f"{prefix}.organization"), meta.get(f"{prefix}.name")
            if url:
                gguf_bases.append(url["id"])
            elif isinstance(base_name, str) and base_name:
                gguf_bases.append(f"{organization}/{base_name}" if isinstance(organization, str) and organization else base_name)
        if gguf_bases:
            questions.append(("GGUF general.base_model", gguf_bases))
        if isinstance(meta.get("general.name"), str) and meta["general.name"].strip():
            questions.append(("GGUF general.name", [meta["general.name"].strip()]))
        basename, size = meta.get("general.basename"), meta.get("general.size_label")
        if isinstance(basename, str) and basename:
            short = f"{basename}-{size}" if isinstance(size, str) and size else basename
            organization = meta.get("general.organization")
            names = ([f"{organization.replace(' ', '')}/{short}"] if isinstance(organization, str) and organization else []) + [short]
            questions.append(("GGUF general.basename and size_label", names))
    return questions


def infer_entry(
    checkpoint: str,
    *,
    config: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
    gguf_metadata: Mapping[str, Any] | None = None,
    dimensions: Mapping[str, int] | None = None,
    registry: Any = None,
) -> tuple[Entry, str]:
    """The entry a checkpoint derives from and how it was told; BaseModelError when it cannot be, or is ambiguous."""
    from .._lookup import entries, lookup

    for where, names in name_questions(config, card, gguf_metadata):
        found: dict[str, tuple[Entry, str]] = {}
        for name in names:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    entry = lookup(name, registry=registry)
            except UnknownModelError:
                continue
            found.setdefault(entry.id, (entry, name))
            if where == "GGUF general.basename and size_label":
                break  # the organization's id, when it matches, is the answer; the bare name only stands in for it
        if len(found) == 1:
            entry, name = next(iter(found.values()))
            return entry, f"{where} {name!r}"
        if len(found) > 1:
            raise BaseModelError(
                f"{checkpoint}: {where} names several registry models ({', '.join(sorted(found))}); say which with --base ID",
                sorted(found),
            )
    dimensions = dict(dimensions or {})
    if not {"num_layers", "hidden_size"} <= set(dimensions):
        raise BaseModelError(
            f"{checkpoint}: cannot tell which registry model it derives from (no base model in its metadata and no "
            "dimensions to match); name it with --base ID or --entry FILE"
        )
    family = (gguf_metadata or {}).get("general.architecture")
    architectures = (config or {}).get("architectures") if isinstance(config, Mapping) else None
    same_shape = [e for e in entries(registry=registry) if e.dimensions and not contradictions(e, dimensions) and _shares_a_dimension(e, dimensions)]
    same_kind = [e for e in same_shape if (isinstance(architectures, list) and e.architecture in architectures) or (family and e.family == family)]
    candidates = same_kind or same_shape
    shape = ", ".join(f"{k} {v}" for k, v in dimensions.items())
    if len(candidates) == 1:
        return candidates[0], f"the only registry model of its shape ({shape})"
    if not candidates:
        raise BaseModelError(
            f"{checkpoint}: no registry model has its shape ({shape}) and its metadata names none; "
            "`swindex detect` finds a new model's super weights, or name the base with --base ID"
        )
    ids = sorted(e.id for e in candidates)
    raise BaseModelError(f"{checkpoint}: several registry models have its shape ({shape}): {', '.join(ids)}; say which with --base ID", ids)


def _shares_a_dimension(entry: Entry, dimensions: Mapping[str, int]) -> bool:
    """At least layers and hidden size recorded and equal: an entry without dimensions matches no shape."""
    return all(entry.dimensions.get(name) == dimensions.get(name) for name in ("num_layers", "hidden_size"))
