"""One forward pass over the evaluation inputs, with the figures verification needs from it.

Perplexity is exp(mean negative log-likelihood of every next token); the stopword figure is the mean
probability the model gives each of a few token ids across all positions; channel captures record a down
projection's output in one hidden channel (the super activation) at every position. Encoders get the
mean-pooled last hidden state of each sentence instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..surgery import Channel, resolve_module
from .inputs import Inputs, input_device


@dataclass
class Pass:
    """What one pass measured."""

    perplexity: float | None = None
    stop_probs: dict[int, float] = field(default_factory=dict)
    channels: dict[Channel, list[Any]] = field(default_factory=dict)  # per batch: output[..., row] on the CPU
    embeddings: Any | None = None  # [sentences, hidden], encoders only


def _output_tensor(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def capturing(model: Any, channels: Sequence[Channel], into: dict[Channel, list[Any]]) -> Iterator[None]:
    """Record ``output[..., row]`` of each channel's module on every forward call."""
    handles = []
    try:
        for ch in channels:
            into.setdefault(ch, [])

            def hook(module: Any, args: Any, output: Any, ch: Channel = ch) -> None:
                into[ch].append(_output_tensor(output)[..., ch.row].detach().float().cpu())

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


def _batches(inputs: Inputs, batch_size: int) -> Iterator[tuple[Any, Any | None]]:
    n = inputs.input_ids.shape[0]
    for start in range(0, n, batch_size):
        mask = None if inputs.attention_mask is None else inputs.attention_mask[start : start + batch_size]
        yield inputs.input_ids[start : start + batch_size], mask


def lm_pass(model: Any, inputs: Inputs, *, batch_size: int = 4, stop_ids: Sequence[int] = (), channels: Sequence[Channel] = ()) -> Pass:
    """Perplexity of a causal LM on ``inputs`` (and stopword probabilities, channel captures)."""
    import torch

    result = Pass()
    device = input_device(model)
    nll = 0.0
    count = 0
    stop_sum = torch.zeros(len(stop_ids), dtype=torch.float64)
    stop_index = torch.tensor(list(stop_ids), dtype=torch.long)
    with torch.no_grad(), capturing(model, channels, result.channels):
        for ids, _ in _batches(inputs, batch_size):
            logits = model(input_ids=ids.to(device), use_cache=False).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)  # stays where the logits are: only a few columns are read
            target = ids[:, 1:].to(logp.device)
            nll -= float(logp.gather(-1, target.unsqueeze(-1)).double().sum())
            count += target.numel()
            if len(stop_ids):
                stop_sum += logp[..., stop_index.to(logp.device)].double().exp().sum(dim=(0, 1)).cpu()
    mean = nll / max(count, 1)
    result.perplexity = math.exp(mean) if mean < 700 else math.inf
    result.stop_probs = {int(t): float(stop_sum[i] / max(count, 1)) for i, t in enumerate(stop_ids)}
    return result


def encoder_pass(model: Any, inputs: Inputs, *, batch_size: int = 16, channels: Sequence[Channel] = ()) -> Pass:
    """Mean-pooled last hidden states of an encoder over ``inputs`` (and channel captures)."""
    import torch

    result = Pass()
    device = input_device(model)
    pooled = []
    with torch.no_grad(), capturing(model, channels, result.channels):
        for ids, mask in _batches(inputs, batch_size):
            out = model(input_ids=ids.to(device), attention_mask=None if mask is None else mask.to(device), output_hidden_states=True)
            hidden = getattr(out, "last_hidden_state", None)
            if hidden is None:
                hidden = out.hidden_states[-1]
            hidden = hidden.float().cpu()
            weights = torch.ones(hidden.shape[:2]) if mask is None else mask.float()
            pooled.append((hidden * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1))
    result.embeddings = torch.cat(pooled)
    return result


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
