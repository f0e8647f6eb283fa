"""Measure what an entry's super weights do to a loaded model (the paper's section 3 ablations).

Runs, all on the same inputs: the model as loaded; each claimed weight zeroed alone; all zeroed; a control
with as many other weights zeroed (for each claim, the largest-magnitude other scalar of the same tensor,
or of the same expert's slice: the paper's "prune non-SW"); and all zeroed with the super activation put
back (the paper's Table 1 ablation: where the original pass had the super activation, at least half the
largest |output| seen in the claim's channel, the down projection's output is restored). Every change is
undone bit for bit before the next run.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import SurgeryError, VerificationError
from ..records import format_coordinate
from ..surgery import Channel, Target, channels, read_tensor, read_value, resolve_name, zeroed
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
from .measure import Pass, embedding_shift, encoder_pass, is_causal_lm, lm_pass, restoring
from .report import THRESHOLDS, Fingerprint, FingerprintWarning, Stopword, VerificationReport, WeightResult, classify

RESTORE_FRACTION = 0.5
"""Positions whose original |output| in the super channel reaches this share of its largest are restored."""

_EPS = {"float32": 2.0**-22, "float16": 2.0**-10, "bfloat16": 2.0**-7}


def _entry_dict(entry: Any) -> dict[str, Any]:
    if entry is None:
        raise VerificationError("no entry to verify")
    if isinstance(entry, (str, os.PathLike)):
        from ..yamlio import load_yaml

        return load_yaml(Path(entry))
    if hasattr(entry, "to_dict"):
        return entry.to_dict()
    if isinstance(entry, Mapping):
        return dict(entry)
    raise VerificationError(f"cannot read an entry from {type(entry).__name__}: pass an Entry, a registry dict or a YAML file path")


def _claims(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Every scalar claim of the entry, each coordinate once (all statuses: verification may settle disputes)."""
    seen: set[tuple[str, tuple[int, ...]]] = set()
    claims = []
    for sw in entry.get("super_weights") or []:
        key = (sw["tensor"], tuple(sw["index"]))
        if key not in seen:
            seen.add(key)
            claims.append(sw)
    return claims


def _dtype_of(model: Any, name: str) -> str:
    return str(model.get_parameter(name).dtype).replace("torch.", "")


def fingerprint(model: Any, claims: list[dict[str, Any]], entry_revision: str | None = None, loaded_revision: str | None = None) -> Fingerprint:
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
                f"{coordinate}: recorded {recorded:g}{' (' + claim['value_dtype'] + ')' if claim.get('value_dtype') else ''}, "
                f"loaded {loaded:g} ({_dtype_of(model, name)})"
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


def control_targets(model: Any, claims: list[dict[str, Any]]) -> list[Target]:
    """For each claim, the largest-magnitude other scalar of the same tensor (same expert slice for 3-D)."""
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


def _channel_of(model: Any, claim: dict[str, Any]) -> Channel:
    return channels(model, [claim])[0]


def _spike(values: list[Any]) -> tuple[float | None, tuple[int, int] | None]:
    """The signed value with the largest magnitude over all captured calls, and where (call, flat index)."""
    best: tuple[float, tuple[int, int]] | None = None
    for call, tensor in enumerate(values):
        flat = tensor.reshape(-1)
        if flat.numel() == 0:
            continue
        i = int(flat.abs().argmax())
        v = float(flat[i])
        if best is None or abs(v) > abs(best[0]):
            best = (v, (call, i))
    return (None, None) if best is None else best


def _at(values: list[Any], where: tuple[int, int] | None) -> float | None:
    if where is None or where[0] >= len(values):
        return None
    flat = values[where[0]].reshape(-1)
    return float(flat[where[1]]) if where[1] < flat.numel() else None


def _replacements(original: Pass, wanted: list[Channel]) -> dict[Channel, list[tuple[Any, Any]]]:
    result = {}
    for ch in wanted:
        values = original.channels.get(ch) or []
        peak = max((float(v.abs().max()) for v in values if v.numel()), default=0.0)
        if peak == 0.0:
            continue
        result[ch] = [((v.abs() >= RESTORE_FRACTION * peak), v) for v in values]
    return result


def _decode(tokenizer: Any | None, token: int) -> str | None:
    if tokenizer is None:
        return None
    try:
        return tokenizer.decode([token])
    except Exception:  # noqa: BLE001 - a token without text is shown by id
        return None


def verify(
    model_or_id: Any,
    entry: Any = None,
    *,
    revision: str | None = None,
    tokenizer: Any = None,
    dtype: str = "auto",
    device: str = "auto",
    offload_folder: str | None = None,
    trust_remote_code: bool = False,
    registry: str | None = None,
    sequences: int | None = None,
    length: int | None = None,
    text: str = DEFAULT_TEXT,
    seed: int = 0,
    batch_size: int = 4,
    stopwords: int = 5,
    progress: Callable[[str], None] | None = None,
) -> VerificationReport:
    """Measure an entry's super weights on a model (a loaded transformers model, a Hub id or a local directory).

    ``entry`` defaults to the registry's entry for the model (``swindex.lookup``); it may also be an Entry,
    a registry-format dict or a YAML file. Without a tokenizer, a causal LM is measured on sequences it
    samples itself (seeded). The model is left exactly as it was found.
    """
    for name, value, least in (("sequences", sequences, 1), ("length", length, 2), ("batch_size", batch_size, 1)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            why = " (perplexity needs one token to predict from another)" if name == "length" else ""
            raise VerificationError(f"{name} must be an integer of at least {least}{why}, got {value!r}")
    say = progress or (lambda message: None)
    model_id = None
    loaded_revision = revision
    notes: list[str] = []
    if isinstance(model_or_id, (str, os.PathLike)):
        from ..loading import load_model

        loaded = load_model(str(model_or_id), revision=revision, dtype=dtype, device=device, trust_remote_code=trust_remote_code, offload_folder=offload_folder)
        model, tokenizer = loaded.model, tokenizer or loaded.tokenizer
        model_id = loaded.model_id or str(model_or_id)
        loaded_revision = loaded.revision
        notes.extend(loaded.notes)
        say(f"loaded {model_or_id} ({loaded.dtype}, {loaded.device})")
    else:
        model = model_or_id
        model_id = getattr(getattr(model, "config", None), "name_or_path", None) or None
    if entry is None:
        from ..lookup import lookup

        entry = lookup(model_or_id if isinstance(model_or_id, (str, os.PathLike)) else model, revision=revision, registry=registry)
    data = _entry_dict(entry)
    claims = _claims(data)
    try:
        for claim in claims:
            resolve_name(model, claim["tensor"])
            read_value(model, (claim["tensor"], claim["index"]))
    except SurgeryError as exc:
        raise VerificationError(f"entry {data.get('id')} does not fit this model: {exc}") from exc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FingerprintWarning)
        fp = fingerprint(model, claims, data.get("revision"), loaded_revision)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)
    if data.get("revision") and loaded_revision and data["revision"] != loaded_revision:
        notes.append(f"entry measured at revision {data['revision'][:12]}, model loaded at {loaded_revision[:12]}")

    causal = is_causal_lm(model)
    metric = "perplexity" if causal else "embedding_shift"
    if causal:
        tokens = sequence_length(model, length, DEFAULT_LENGTH)
        if tokenizer is not None:
            inputs = text_windows(model, tokenizer, sequences=sequences or DEFAULT_SEQUENCES, length=tokens, text=text)
        else:
            say("no tokenizer: sampling evaluation sequences from the model")
            inputs = sampled(model, sequences=sequences or DEFAULT_SEQUENCES, length=tokens, seed=seed)
    else:
        tokens = sequence_length(model, length, 32)
        inputs = sentences(model, tokenizer, count=sequences or DEFAULT_SENTENCES, seed=seed, length=tokens, text=text)

    claim_channels = [_channel_of(model, c) for c in claims]
    unique_channels = list(dict.fromkeys(claim_channels))
    stop_ids = _common_tokens(inputs, model, stopwords) if causal else []

    def run(**extra: Any) -> Pass:
        if causal:
            return lm_pass(model, inputs, batch_size=batch_size, stop_ids=stop_ids, channels=unique_channels, **extra)
        return encoder_pass(model, inputs, batch_size=max(batch_size, 16), channels=unique_channels, **extra)

    def score(p: Pass) -> tuple[float | None, float | None]:
        """(metric, similarity shift) of a pass against the original."""
        if causal:
            return p.perplexity, None
        return embedding_shift(original.embeddings, p.embeddings)

    say("original")
    original = run()
    base = original.perplexity if causal else 0.0
    if causal and not math.isfinite(base) and str(next(model.parameters()).dtype) == "torch.float16":
        raise VerificationError(
            f"{model_id or type(model).__name__}: the unmodified model's perplexity is {base} in float16, so nothing "
            "can be compared with it; load it in bfloat16 or float32 (--dtype bfloat16), float16 activations often overflow"
        )

    results = []
    p: Pass | None = None
    for claim, ch in zip(claims, claim_channels):
        say(f"zeroing {format_coordinate(claim['tensor'], claim['index'])}")
        with zeroed(model, [(claim["tensor"], claim["index"])]):
            p = run()
        value, sim = score(p)
        ratio = (value / base if base else None) if causal and value is not None else value
        act, where = _spike(original.channels.get(ch) or [])
        results.append(
            WeightResult(
                layer=int(claim["layer"]),
                tensor=claim["tensor"],
                row=int(claim["row"]),
                column=int(claim["column"]),
                expert=claim.get("expert"),
                index=tuple(int(i) for i in claim["index"]),
                status=claim.get("status"),
                recorded_value=claim.get("value"),
                loaded_value=read_value(model, (claim["tensor"], claim["index"])),
                zeroed=value,
                ratio=ratio,
                classification=classify(metric, ratio),
                super_activation=act,
                super_activation_zeroed=_at(p.channels.get(ch) or [], where),
                similarity_shift=sim,
            )
        )

    all_value = control_value = restored_value = similarity = None
    stop: tuple[Stopword, ...] = ()
    control: list[Target] = []
    if claims:
        everything = [(c["tensor"], c["index"]) for c in claims]
        with zeroed(model, everything):
            if len(claims) == 1 and p is not None:  # the one weight zeroed alone is all of them zeroed
                p_all = p
            else:
                say("all zeroed")
                p_all = run()
            replacements = _replacements(original, unique_channels)
            if replacements:
                say("all zeroed, super activation restored")
                with restoring(model, replacements):
                    restored_value, _ = score(run())
            else:
                notes.append("no super activation recorded in the claimed channels: nothing to restore")
        all_value, similarity = score(p_all)
        if causal:
            stop = tuple(Stopword(t, _decode(tokenizer, t), original.stop_probs[t], p_all.stop_probs[t]) for t in stop_ids)
        control = control_targets(model, claims)
        say("control")
        with zeroed(model, control):
            control_value, _ = score(run())
    else:
        notes.append("the entry claims no super weight: only the original figure was measured")

    return VerificationReport(
        model=model_id,
        entry_id=data.get("id"),
        revision=loaded_revision,
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        device=str(next((p.device for p in model.parameters() if p.device.type != "meta"), "meta")),
        date=_dt.date.today().isoformat(),
        tool=f"swindex verify {__version__}",
        metric=metric,
        text=inputs.source,
        sequences=int(inputs.input_ids.shape[0]),
        tokens=inputs.tokens,
        original=base,
        all_zeroed=all_value,
        control=control_value,
        restored_activation=restored_value,
        weights=tuple(results),
        control_weights=tuple(t.coordinate for t in control),
        fingerprint=fp,
        stopwords=stop,
        similarity_shift=similarity,
        notes=tuple(notes),
        thresholds=dict(THRESHOLDS[metric]),
    )


def _common_tokens(inputs: Inputs, model: Any, k: int) -> list[int]:
    """The k most frequent target tokens of the evaluation inputs (the text's stopwords), BOS excluded."""
    if k <= 0:
        return []
    bos = getattr(model.config, "bos_token_id", None)
    counts = Counter(int(t) for t in inputs.input_ids[:, 1:].reshape(-1).tolist() if t != bos)
    return [t for t, _ in counts.most_common(k)]


__all__ = ["verify", "fingerprint", "control_targets", "RESTORE_FRACTION"]
