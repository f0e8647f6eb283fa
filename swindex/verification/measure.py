"""One pass over the evaluation inputs, with the figures verification needs from it.

Perplexity is exp(mean negative log-likelihood of every next token); the stopword figure is the mean
probability the model gives each of a few token ids across all positions; channel captures record a down
projection's output in one hidden channel (the super activation) at every position. Encoders get the
mean-pooled last hidden state of each sentence instead.

A pass can carry several copies of the inputs stacked along the batch (``copies``): copy ``b`` is rows
``b*n .. (b+1)*n`` of every forward call, and each copy is scored on its own, exactly as if it had run
alone. The fast path (`fast.py`) uses this to run several ablations in one forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from ..surgery import Channel, resolve_module
from .inputs import Inputs, input_device


@dataclass(frozen=True)
class Pass:
    """What one pass measured."""

    perplexity: float | None = None
    stop_probs: dict[int, float] = field(default_factory=dict)
    channels: dict[Channel, list[Any]] = field(default_factory=dict)  # per forward call: output[..., row] on the CPU
    embeddings: Any | None = None  # [sentences, hidden], encoders only
    sequence_nll: tuple[float, ...] = ()  # causal LMs: each sequence's summed negative log-likelihood, in input order
    sequence_tokens: tuple[int, ...] = ()  # and how many tokens it predicts
    sequence_stop: tuple[tuple[float, ...], ...] = ()  # and its summed probability of each stop id (when asked for)


def _output_tensor(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def capturing(model: Any, channels: Sequence[Channel], into: Sequence[dict[Channel, list[Any]]]) -> Iterator[None]:
    """Record ``output[..., row]`` of each channel's module on every forward call, one dict per stacked copy."""
    handles = []
    try:
        for ch in dict.fromkeys(channels):
            for seen in into:
                seen.setdefault(ch, [])

            def hook(module: Any, args: Any, output: Any, ch: Channel = ch) -> None:
                column = _output_tensor(output)[..., ch.row].detach().float().cpu()
                rows = column.shape[0] // len(into)
                for b, seen in enumerate(into):
                    seen[ch].append(column[b * rows : (b + 1) * rows])

            handles.append(resolve_module(model, ch.module).register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def restoring(model: Any, replacements: dict[Channel, list[tuple[Any, Any]]]) -> Iterator[None]:
    """Overwrite ``output[..., row]`` where a mask is set with recorded values, one (mask, values) per call.

    This is the paper's "super activation restored" ablation: weights zeroed, activation put back.
    """
    handles = []
    calls = {ch: 0 for ch in replacements}
    try:
        for ch, per_call in replacements.items():

            def hook(module: Any, args: Any, output: Any, ch: Channel = ch, per_call: list = per_call) -> Any:
                mask, values = per_call[calls[ch] % len(per_call)]
                calls[ch] += 1
                y = _output_tensor(output)
                col = y[..., ch.row]
                col = col.clone()
                m = mask.to(col.device)
                col[m] = values.to(col.device, col.dtype)[m]
                y = y.clone()
                y[..., ch.row] = col
                return (y, *output[1:]) if isinstance(output, tuple) else y

            handles.append(resolve_module(model, ch.module).register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def batches(inputs: Inputs, batch_size: int) -> Iterator[tuple[Any, Any | None]]:
    """The inputs in forward-call order: (input_ids, attention_mask or None) of at most ``batch_size`` rows."""
    n = inputs.input_ids.shape[0]
    for start in range(0, n, batch_size):
        mask = None if inputs.attention_mask is None else inputs.attention_mask[start : start + batch_size]
        yield inputs.input_ids[start : start + batch_size], mask


PerCall = Callable[[int], AbstractContextManager[Any]]
"""A context entered around forward call ``k`` (the fast path starts each call from its cached residual)."""


def _stacked(tensor: Any, copies: int) -> Any:
    return tensor if copies == 1 else tensor.repeat(copies, *([1] * (tensor.dim() - 1)))


def lm_pass(
    model: Any,
    inputs: Inputs,
    *,
    batch_size: int = 4,
    stop_ids: Sequence[int] = (),
    channels: Sequence[Channel] = (),
    copies: int = 1,
    around: PerCall | None = None,
) -> Pass:
    """Perplexity of a causal LM on ``inputs`` (and stopword probabilities, channel captures); see `lm_passes`."""
    return lm_passes(
        model, inputs, batch_size=batch_size, stop_ids=stop_ids, channels=channels, copies=copies, around=around
    )[0]


def lm_passes(
    model: Any,
    inputs: Inputs,
    *,
    batch_size: int = 4,
    stop_ids: Sequence[int] = (),
    channels: Sequence[Channel] = (),
    copies: int = 1,
    around: PerCall | None = None,
) -> tuple[Pass, ...]:
    """One `Pass` per stacked copy: perplexity, stopword probabilities and channel captures of each."""
    import torch

    device = input_device(model)
    nll = [0.0] * copies
    count = [0] * copies
    stop_sum = [torch.zeros(len(stop_ids), dtype=torch.float64) for _ in range(copies)]
    rows_nll: list[list[float]] = [[] for _ in range(copies)]
    rows_tokens: list[list[int]] = [[] for _ in range(copies)]
    rows_stop: list[list[tuple[float, ...]]] = [[] for _ in range(copies)]
    stop_index = torch.tensor(list(stop_ids), dtype=torch.long)
    seen: list[dict[Channel, list[Any]]] = [{} for _ in range(copies)]
    with torch.no_grad(), capturing(model, channels, seen):
        for k, (ids, _) in enumerate(batches(inputs, batch_size)):
            with around(k) if around is not None else nullcontext():
                logits = model(input_ids=_stacked(ids, copies).to(device), use_cache=False).logits
            rows = ids.shape[0]
            target = ids[:, 1:].to(logits.device)
            for b in range(copies):
                per_row, per_row_stop = _token_scores(logits[b * rows : (b + 1) * rows, :-1], target, stop_index)
                nll[b] += float(per_row.sum())
                count[b] += target.numel()
                rows_nll[b].extend(float(v) for v in per_row)
                rows_tokens[b].extend([int(target.shape[1])] * rows)
                if len(stop_ids):
                    stop_sum[b] += per_row_stop.sum(dim=0)
                    rows_stop[b].extend(tuple(float(v) for v in row) for row in per_row_stop)
            del logits
    passes = []
    for b in range(copies):
        mean = nll[b] / max(count[b], 1)
        probs = {int(t): float(stop_sum[b][i] / max(count[b], 1)) for i, t in enumerate(stop_ids)}
        passes.append(
            Pass(
                perplexity=math.exp(mean) if mean < 700 else math.inf,
                stop_probs=probs,
                channels=seen[b],
                sequence_nll=tuple(rows_nll[b]),
                sequence_tokens=tuple(rows_tokens[b]),
                sequence_stop=tuple(rows_stop[b]),
            )
        )
    return tuple(passes)


SCORED_ELEMENTS = 32 * 49152
"""Log-probabilities computed at once (positions x vocabulary): 32 positions of SmolLM2's 49,152 tokens stay in cache,
where its whole batch's (100 MB) did not; that halved the softmax's time, bit for bit the same."""


def _token_scores(logits: Any, target: Any, stop_index: Any) -> tuple[Any, Any]:
    """Per sequence: the summed negative log-likelihood of ``target`` (float64, on CPU) and the summed probability of
    each stop id over its positions; computed in blocks of at most `SCORED_ELEMENTS` log-probabilities."""
    import torch

    sequences, positions = target.shape
    span = max(1, SCORED_ELEMENTS // max(1, int(logits.shape[-1])))  # positions a block may hold
    nll = torch.zeros(sequences, dtype=torch.float64)
    stop = torch.zeros(sequences, len(stop_index), dtype=torch.float64)
    stop_on = stop_index.to(logits.device)
    rows_at_once = max(1, span // positions)  # whole sequences a block may hold
    for first in range(0, sequences, rows_at_once):
        rows = slice(first, min(first + rows_at_once, sequences))
        for start in range(0, positions, span if rows_at_once == 1 else positions):
            end = min(start + span, positions) if rows_at_once == 1 else positions
            logp = torch.log_softmax(logits[rows, start:end].float(), dim=-1)
            picked = logp.gather(-1, target[rows, start:end].unsqueeze(-1)).squeeze(-1)
            nll[rows] -= picked.double().sum(dim=1).cpu()
            if len(stop_index):
                stop[rows] += logp[..., stop_on].double().exp().sum(dim=1).cpu()
    return nll, stop


def encoder_passes(
    model: Any,
    inputs: Inputs,
    *,
    batch_size: int = 16,
    channels: Sequence[Channel] = (),
    copies: int = 1,
    around: PerCall | None = None,
) -> tuple[Pass, ...]:
    """One `Pass` per stacked copy: each sentence's mean-pooled last hidden state, and channel captures."""
    import torch

    device = input_device(model)
    pooled: list[list[Any]] = [[] for _ in range(copies)]
    seen: list[dict[Channel, list[Any]]] = [{} for _ in range(copies)]
    with torch.no_grad(), capturing(model, channels, seen):
        for k, (ids, mask) in enumerate(batches(inputs, batch_size)):
            stacked_mask = None if mask is None else _stacked(mask, copies).to(device)
            with around(k) if around is not None else nullcontext():
                out = model(
                    input_ids=_stacked(ids, copies).to(device), attention_mask=stacked_mask, output_hidden_states=True
                )
            hidden = getattr(out, "last_hidden_state", None)
            if hidden is None:
                hidden = out.hidden_states[-1]
            hidden = hidden.float().cpu()
            weights = torch.ones(ids.shape[:2]) if mask is None else mask.float()
            rows = ids.shape[0]
            for b in range(copies):
                block = hidden[b * rows : (b + 1) * rows]
                pooled[b].append((block * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1))
    return tuple(Pass(embeddings=torch.cat(pooled[b]), channels=seen[b]) for b in range(copies))


def embedding_shift(reference: Any, changed: Any) -> tuple[float, float]:
    """(mean cosine distance between matching embeddings, mean |change| of pairwise cosine similarities)."""
    import torch

    a = torch.nn.functional.normalize(reference.double(), dim=-1)
    b = torch.nn.functional.normalize(changed.double(), dim=-1)
    shift = float((1 - (a * b).sum(-1)).mean())
    n = a.shape[0]
    if n < 2:
        return shift, 0.0
    off = ~torch.eye(n, dtype=torch.bool)
    similarity = float(((a @ a.T) - (b @ b.T)).abs()[off].mean())
    return shift, similarity


def is_causal_lm(model: Any) -> bool:
    """Whether the model predicts next tokens (perplexity applies) rather than only encoding."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = type(model).__name__
    if name in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        return True
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return False
    return name.endswith(("ForCausalLM", "LMHeadModel")) and model.get_output_embeddings() is not None
