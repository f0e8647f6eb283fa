"""Which registry entry a checkpoint derives from, from its own bytes and metadata, and whether its shape agrees.

The checkpoint is asked in this order, and the first rule with an answer decides (the report names it):

1. ``sha256``: the file is, byte for byte, an artifact an entry records (hashed only when a recorded
   artifact has the file's size, or records none: see `worth_hashing`);
2. ``gguf base_model``: GGUF ``general.base_model.N.*``;
3. ``gguf name``: GGUF ``general.name``, then ``general.basename`` with ``size_label`` and ``finetune``;
4. ``card``: config.json's ``_name_or_path``, then the model card's ``base_model`` (one id, or a list for a merge);
5. ``shape``: the architecture with the dimensions: the registry model of that shape, or, among several,
   the only one recording weights to check.

An answer naming several registry models is ambiguous: check stops and lists them. A chosen entry whose
dimensions the checkpoint contradicts is refused, with each mismatch named. `swindex lookup FILE` asks the same.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
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


RULES = ("sha256", "gguf base_model", "gguf name", "card", "shape")
"""How an entry is inferred, in the order the rules are asked; the report names the one that decided."""


@dataclass(frozen=True)
class Inference:
    """The entry a checkpoint derives from, the rule that decided (one of RULES) and the evidence in words."""

    entry: Entry
    rule: str
    detail: str


@dataclass(frozen=True)
class Artifact:
    """A file some entry records as the exact artifact it measured (its sha256, and its size when recorded)."""

    entry: Entry
    sha256: str
    size: int | None
    format: str | None
    file: str | None


def recorded_artifacts(registry: Any = None) -> list[Artifact]:
    """Every artifact any entry records (detection and verification runs), for the sha256 rule."""
    from .._lookup import entries

    found = []
    for entry in entries(registry=registry):
        for run in (entry.evidence or {}).values():
            artifact = run.get("artifact") if isinstance(run, Mapping) else None
            if isinstance(artifact, Mapping) and isinstance(artifact.get("sha256"), str):
                size = artifact.get("size")
                found.append(
                    Artifact(
                        entry,
                        artifact["sha256"],
                        size if type(size) is int else None,
                        artifact.get("format"),
                        artifact.get("file"),
                    )
                )
    return found


def worth_hashing(artifacts: list[Artifact], size: int, file_format: str) -> bool:
    """Hash a file only when a recorded artifact of its format could be it: the same size, or no size on record.

    Why: hashing reads the whole file (about 0.3 s per 100 MB), while a check otherwise reads kilobytes; most
    checkpoints match no recorded artifact, and a size that differs proves it without reading a byte.
    """
    return any(a.format in (None, file_format) and a.size in (None, size) for a in artifacts)


def by_sha256(artifacts: list[Artifact], sha256: str) -> Inference | None:
    """The entry recording this exact file, when exactly one does (several entries recording it is refused)."""
    matches = {a.entry.id: a for a in artifacts if a.sha256 == sha256}
    if len(matches) > 1:
        raise BaseModelError(
            f"several entries record a file with sha256 {sha256} ({', '.join(sorted(matches))}); say "
            "which with --base ID",
            sorted(matches),
        )
    if not matches:
        return None
    artifact = next(iter(matches.values()))
    return Inference(
        artifact.entry,
        "sha256",
        f"sha256 {sha256[:16]}... is {artifact.file or 'the artifact'} that {artifact.entry.id} records",
    )


def name_questions(
    config: Mapping[str, Any] | None, card: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None
) -> list[tuple[str, str, list[str]]]:
    """(rule, where, names) for each metadata question, in the order they are asked; empty answers are left out.

    GGUF's ``general.base_model.N.*`` come first; then ``general.name``, and ``general.basename`` with
    ``size_label`` and ``general.finetune``. When the file names a fine-tune, ``basename-size_label`` alone
    names the model it was tuned from, not this one, so it is never asked.
    """
    questions: list[tuple[str, str, list[str]]] = []
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
                gguf_bases.append(
                    f"{organization}/{base_name}" if isinstance(organization, str) and organization else base_name
                )
        if gguf_bases:
            questions.append(("gguf base_model", "GGUF general.base_model", gguf_bases))
        if isinstance(meta.get("general.name"), str) and meta["general.name"].strip():
            questions.append(("gguf name", "GGUF general.name", [meta["general.name"].strip()]))
        basename, size, finetune = (
            meta.get("general.basename"),
            meta.get("general.size_label"),
            meta.get("general.finetune"),
        )
        if isinstance(basename, str) and basename:
            parts = [basename, *(p for p in (size, finetune) if isinstance(p, str) and p)]
            short = "-".join(parts)
            organization = meta.get("general.organization")
            names = (
                [f"{organization.replace(' ', '')}/{short}"] if isinstance(organization, str) and organization else []
            ) + [short]
            what = "GGUF general.basename, size_label" + (
                " and finetune" if isinstance(finetune, str) and finetune else ""
            )
            questions.append(("gguf name", what, names))
    base = (card or {}).get("base_model") if isinstance(card, Mapping) else None
    name = (config or {}).get("_name_or_path") if isinstance(config, Mapping) else None
    if isinstance(name, str) and name.strip():
        questions.append(("card", "config.json _name_or_path", [name.strip()]))
    bases = (
        [base] if isinstance(base, str) else [b for b in base if isinstance(b, str)] if isinstance(base, list) else []
    )
    if bases:
        questions.append(("card", "the model card's base_model", bases))
    return questions


def infer_entry(
    checkpoint: str,
    *,
    config: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
    gguf_metadata: Mapping[str, Any] | None = None,
    dimensions: Mapping[str, int] | None = None,
    registry: Any = None,
    sha256: str | None = None,
    artifacts: list[Artifact] | None = None,
) -> Inference:
    """The entry a checkpoint derives from and the rule that told it; BaseModelError when none can, or it is ambiguous.

    Rules, in order (the first with an answer decides): the file's sha256 equals an artifact an entry records;
    GGUF ``general.base_model.*``; GGUF ``general.name`` / ``finetune`` with ``basename`` and ``size_label``;
    config.json's ``_name_or_path`` and the model card's ``base_model``; the shape.
    """
    from .._lookup import entries, lookup

    found_by_hash = (
        by_sha256(artifacts if artifacts is not None else recorded_artifacts(registry), sha256) if sha256 else None
    )
    if found_by_hash is not None:
        return found_by_hash
    for rule, where, names in name_questions(config, card, gguf_metadata):
        found: dict[str, tuple[Entry, str]] = {}
        for name in names:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    entry = lookup(name, registry=registry)
            except UnknownModelError:
                continue
            found.setdefault(entry.id, (entry, name))
            if where.startswith("GGUF general.basename"):
                break  # the organization's id, when it matches, is the answer; the bare name only stands in for it
        if len(found) == 1:
            entry, name = next(iter(found.values()))
            return Inference(entry, rule, f"{where} {name!r}")
        if len(found) > 1:
            raise BaseModelError(
                f"{checkpoint}: {where} names several registry models ({', '.join(sorted(found))}); say "
                "which with --base ID",
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
    same_shape = [
        e
        for e in entries(registry=registry)
        if e.dimensions and not contradictions(e, dimensions) and _shares_a_dimension(e, dimensions)
    ]
    same_kind = [
        e
        for e in same_shape
        if (isinstance(architectures, list) and e.architecture in architectures) or (family and e.family == family)
    ]
    candidates = same_kind or same_shape
    shape = ", ".join(f"{k} {v}" for k, v in dimensions.items())
    if len(candidates) == 1:
        return Inference(candidates[0], "shape", f"the only registry model of its shape ({shape})")
    if not candidates:
        raise BaseModelError(
            f"{checkpoint}: no registry model has its shape ({shape}) and its metadata names none; "
            "`swindex detect` finds a new model's super weights, or name the base with --base ID"
        )
    checkable = [e for e in candidates if e.weights_to_keep]
    if len(checkable) == 1:
        others = ", ".join(sorted(e.id for e in candidates if e is not checkable[0]))
        return Inference(
            checkable[0],
            "shape",
            f"the only registry model of its shape ({shape}) with weights to check; {others} record(s) none",
        )
    ids = sorted(e.id for e in candidates)
    raise BaseModelError(
        f"{checkpoint}: several registry models have its shape ({shape}): {', '.join(ids)}; say which with --base ID",
        ids,
    )


def _shares_a_dimension(entry: Entry, dimensions: Mapping[str, int]) -> bool:
    """At least layers and hidden size recorded and equal: an entry without dimensions matches no shape."""
    return all(entry.dimensions.get(name) == dimensions.get(name) for name in ("num_layers", "hidden_size"))
