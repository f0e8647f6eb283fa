"""Verification's first two steps: load (the model and the entry to measure) and plan (inputs, ablations, control).

`verify.verify` runs load -> plan -> `ablations.measure` -> report; each step takes and returns a record, so
a caller (the benchmark, a notebook) can run them one by one, for instance to measure one plan two ways.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._dtypes import dtype_name
from ..errors import SurgeryError, VerificationError
from ..layout import format_coordinate
from ..surgery import Target, channels, read_tensor, read_value, resolve_name
from .ablations import METHODS, Ablation, Evaluation
from .inputs import (
    DEFAULT_LENGTH,
    DEFAULT_SENTENCES,
    DEFAULT_SEQUENCES,
    DEFAULT_TEXT,
    Inputs,
    sampled,
    sentences,
    sequence_length,
    text_windows,
)
from .measure import is_causal_lm
from .report import Fingerprint, FingerprintWarning

_EPS = {"float32": 2.0**-22, "float16": 2.0**-10, "bfloat16": 2.0**-7}

Say = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """How to load and measure: everything `verify` takes besides the model and the entry."""

    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    offload_folder: str | None = None
    trust_remote_code: bool = False
    registry: str | None = None
    sequences: int | None = None
    length: int | None = None
    text: str = DEFAULT_TEXT
    seed: int = 0
    batch_size: int = 4
    stopwords: int = 5
    method: str = "auto"
    sequential: bool = True  # stop measuring a weight once its class is settled (swindex.verification.settle)

    def __post_init__(self) -> None:
        for name, least in (("sequences", 1), ("length", 2), ("batch_size", 1)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                why = " (perplexity needs one token to predict from another)" if name == "length" else ""
                raise VerificationError(f"{name} must be an integer of at least {least}{why}, got {value!r}")
        if self.method not in METHODS:
            raise VerificationError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")


@dataclass(frozen=True)
class Subject:
    """What is measured: the loaded model, its tokenizer, and the entry whose claims are checked on it."""

    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    model_id: str | None
    revision: str | None  # the revision the weights were loaded at, when known
    entry: Mapping[str, Any]
    claims: tuple[Mapping[str, Any], ...]  # each coordinate once, every status
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The passes to run: evaluation inputs, one ablation per claim, the control, and the fingerprint taken."""

    evaluation: Evaluation
    metric: str  # "perplexity" or "embedding_shift"
    ablations: tuple[Ablation, ...]
    control: tuple[Target, ...]
    fingerprint: Fingerprint
    notes: tuple[str, ...] = ()


def entry_dict(entry: Any) -> dict[str, Any]:
    """A registry-format dict from an Entry, a dict or a YAML file path."""
    if entry is None:
        raise VerificationError("no entry to verify")
    if isinstance(entry, (str, os.PathLike)):
        from ..yamlio import load_yaml

        return load_yaml(Path(entry))
    if hasattr(entry, "to_dict"):
        return entry.to_dict()
    if isinstance(entry, Mapping):
        return dict(entry)
    raise VerificationError(
        f"cannot read an entry from {type(entry).__name__}: pass an Entry, a registry dict or a YAML file path"
    )


def entry_claims(entry: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """Every scalar claim of the entry, each coordinate once (all statuses: verification may settle disputes)."""
    seen: set[tuple[str, tuple[int, ...]]] = set()
    claims = []
    for claim in entry.get("claims") or []:
        key = (claim["tensor"], tuple(claim["index"]))
        if key not in seen:
            seen.add(key)
            claims.append(claim)
    return tuple(claims)


def load(
    model_or_id: Any, entry: Any, settings: Settings, *, tokenizer: Any = None, say: Say = lambda message: None
) -> Subject:
    """The model (loaded when given as an id or directory) and the entry (looked up when None),
    checked to fit each other."""
    notes: list[str] = []
    revision = settings.revision
    if isinstance(model_or_id, (str, os.PathLike)):
        from ..loading import load_model

        loaded = load_model(
            str(model_or_id),
            revision=settings.revision,
            dtype=settings.dtype,
            device=settings.device,
            trust_remote_code=settings.trust_remote_code,
            offload_folder=settings.offload_folder,
        )
        model, tokenizer = loaded.model, tokenizer or loaded.tokenizer
        model_id: str | None = loaded.model_id or str(model_or_id)
        revision = loaded.revision
        notes.extend(loaded.notes)
        say(f"loaded {model_or_id} ({loaded.dtype}, {loaded.device})")
    else:
        model = model_or_id
        model_id = getattr(getattr(model, "config", None), "name_or_path", None) or None
    if entry is None:
        from .._lookup import lookup

        entry = lookup(
            model_or_id if isinstance(model_or_id, (str, os.PathLike)) else model,
            revision=settings.revision,
            registry=settings.registry,
        )
    data = entry_dict(entry)
    claims = entry_claims(data)
    try:
        for claim in claims:
            resolve_name(model, claim["tensor"])
            read_value(model, (claim["tensor"], claim["index"]))
    except SurgeryError as exc:
        raise VerificationError(f"entry {data.get('id')} does not fit this model: {exc}") from exc
    if data.get("revision") and revision and data["revision"] != revision:
        notes.append(f"entry measured at revision {data['revision'][:12]}, model loaded at {revision[:12]}")
    return Subject(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id,
        revision=revision,
        entry=data,
        claims=claims,
        notes=tuple(notes),
    )


def evaluation_inputs(model: Any, tokenizer: Any, settings: Settings, *, say: Say = lambda message: None) -> Inputs:
    """What a model is measured on (verify, quantize): windows of the text for a causal LM with a tokenizer,
    sequences it samples itself without one, sentences for an encoder."""
    if is_causal_lm(model):
        tokens = sequence_length(model, settings.length, DEFAULT_LENGTH)
        count = settings.sequences or DEFAULT_SEQUENCES
        if tokenizer is not None:
            return text_windows(model, tokenizer, sequences=count, length=tokens, text=settings.text)
        say("no tokenizer: sampling evaluation sequences from the model")
        return sampled(model, sequences=count, length=tokens, seed=settings.seed)
    tokens = sequence_length(model, settings.length, 32)
    count = settings.sequences or DEFAULT_SENTENCES
    return sentences(model, tokenizer, count=count, seed=settings.seed, length=tokens, text=settings.text)


def plan(subject: Subject, settings: Settings, *, say: Say = lambda message: None) -> Plan:
    """The evaluation inputs (text windows, sampled sequences or sentences), the ablations and the control."""
    model = subject.model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FingerprintWarning)
        fp = fingerprint(model, subject.claims, subject.entry.get("revision"), subject.revision)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=3)

    causal = is_causal_lm(model)
    inputs = evaluation_inputs(model, subject.tokenizer, settings, say=say)
    ablations = tuple(
        Ablation(target=Target(c["tensor"], tuple(int(i) for i in c["index"])), channel=channels(model, [c])[0])
        for c in subject.claims
    )
    stop_ids = tuple(common_tokens(inputs, model, settings.stopwords)) if causal else ()
    name = subject.model_id or type(model).__name__
    evaluation = Evaluation(
        model=model, inputs=inputs, causal=causal, batch_size=settings.batch_size, stop_ids=stop_ids, name=name
    )
    return Plan(
        evaluation=evaluation,
        metric="perplexity" if causal else "embedding_shift",
        ablations=ablations,
        control=tuple(control_targets(model, subject.claims)),
        fingerprint=fp,
        notes=subject.notes,
    )


def _dtype_of(model: Any, name: str) -> str:
    return dtype_name(model.get_parameter(name).dtype)


def fingerprint(
    model: Any, claims: Any, entry_revision: str | None = None, loaded_revision: str | None = None
) -> Fingerprint:
    """Compare each recorded value with the loaded one, within one rounding step of the coarser dtype."""
    mismatches = []
    checked = 0
    for claim in claims:
        recorded = claim.get("value")
        if recorded is None:
            continue
        checked += 1
        name = resolve_name(model, claim["tensor"])
        loaded = read_value(model, (claim["tensor"], claim["index"]))
        dtypes = [d for d in (claim.get("value_dtype"), _dtype_of(model, name)) if d in _EPS]
        eps = max((_EPS[d] for d in dtypes), default=_EPS["bfloat16"])
        if abs(loaded - recorded) > eps * max(abs(recorded), abs(loaded)) + 1e-12:
            coordinate = format_coordinate(claim["tensor"], claim["index"])
            mismatches.append(
                f"{coordinate}: recorded "
                f"{recorded:g}{' (' + claim['value_dtype'] + ')' if claim.get('value_dtype') else ''}, loaded "
                f"{loaded:g} ({_dtype_of(model, name)})"
            )
    if mismatches:
        hint = "these weights are not the ones the entry was measured on"
        if entry_revision and loaded_revision and entry_revision != loaded_revision:
            hint += f" (entry revision {entry_revision[:12]}, loaded {loaded_revision[:12]})"
        else:
            hint += " (another revision or a fine-tune?)"
        warnings.warn(f"fingerprint mismatch: {'; '.join(mismatches)}: {hint}", FingerprintWarning, stacklevel=3)
        return Fingerprint(False, checked, tuple(mismatches), hint)
    return Fingerprint(True, checked)


def control_targets(model: Any, claims: Any) -> list[Target]:
    """For each claim, the largest-magnitude other scalar of the same tensor (same expert slice for 3-D):
    the paper's "prune non-SW"."""
    import torch

    excluded = {(resolve_name(model, c["tensor"]), tuple(c["index"])) for c in claims}
    chosen: list[Target] = []
    for claim in claims:
        name = resolve_name(model, claim["tensor"])
        values = read_tensor(model, name).detach()
        index = tuple(claim["index"])
        prefix: tuple[int, ...] = ()
        if values.ndim == 3:
            prefix = (index[0],)
            values = values[index[0]]
        order = torch.argsort(values.abs().float().flatten(), descending=True)
        for flat in order.tolist():
            rest = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), values.shape))
            target = Target(name, prefix + rest)
            if (name, target.index) not in excluded:
                excluded.add((name, target.index))
                chosen.append(target)
                break
    return chosen


def common_tokens(inputs: Inputs, model: Any, k: int) -> list[int]:
    """The k most frequent target tokens of the evaluation inputs (the text's stopwords), BOS excluded."""
    if k <= 0:
        return []
    bos = getattr(model.config, "bos_token_id", None)
    counts = Counter(int(t) for t in inputs.input_ids[:, 1:].reshape(-1).tolist() if t != bos)
    return [t for t, _ in counts.most_common(k)]


__all__ = [
    "Plan",
    "Settings",
    "Subject",
    "control_targets",
    "entry_claims",
    "entry_dict",
    "evaluation_inputs",
    "fingerprint",
    "load",
    "plan",
]
