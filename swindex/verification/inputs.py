"""What verification feeds a model: windows of the shipped text, or sequences the model samples itself.

Every decoder sequence starts with the model's BOS token when it has one, because super activations (and
the attention sinks that depend on them) sit on the first token. Sampled sequences never contain BOS again.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import VerificationError
from ..loading import context_length

DEFAULT_TEXT = "everyday.txt"
DEFAULT_SEQUENCES = 16
DEFAULT_LENGTH = 128
DEFAULT_SENTENCES = 32


@dataclass(frozen=True)
class Inputs:
    """A batch of token ids ([sequences, length]) and where it came from."""

    input_ids: Any
    attention_mask: Any | None
    source: str  # text file name, or "sampled from the model (seed N)", or "random token ids (seed N)"

    @property
    def tokens(self) -> int:
        if self.attention_mask is not None:
            return int(self.attention_mask.sum())
        return int(self.input_ids.numel())


def sequence_length(model: Any, requested: int | None, default: int = DEFAULT_LENGTH) -> int:
    """The tokens per sequence to use: the request, which must fit the model, or the default shortened to fit."""
    limit = context_length(model.config)
    if requested is None:
        return default if limit is None else min(default, limit)
    if limit is not None and requested > limit:
        raise VerificationError(
            f"--length {requested} is longer than {type(model).__name__} can read ({limit} positions); "
            f"ask for at most {limit}"
        )
    return requested


def eval_text(name: str = DEFAULT_TEXT) -> str:
    """The text of a shipped evaluation file (swindex/data/eval/)."""
    source = resources.files("swindex.data").joinpath("eval").joinpath(name)
    if not source.is_file():
        shipped = sorted(
            p.name for p in resources.files("swindex.data").joinpath("eval").iterdir() if p.name.endswith(".txt")
        )
        raise VerificationError(f"no evaluation text {name!r}; the texts shipped with swindex are {', '.join(shipped)}")
    return source.read_text(encoding="utf-8")


def _bos(model: Any, tokenizer: Any | None) -> int | None:
    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    if bos is None:
        bos = getattr(getattr(model, "config", None), "bos_token_id", None)
    return int(bos) if isinstance(bos, int) else None


def input_device(model: Any) -> Any:
    """Where input ids must go: the embedding's device (the execution device when it is offloaded)."""
    import torch

    embeddings = model.get_input_embeddings()
    device = embeddings.weight.device
    if device.type == "meta":
        hook = getattr(embeddings, "_hf_hook", None)
        device = torch.device(getattr(hook, "execution_device", None) or "cpu")
    return device


def text_windows(
    model: Any,
    tokenizer: Any,
    *,
    sequences: int = DEFAULT_SEQUENCES,
    length: int = DEFAULT_LENGTH,
    text: str = DEFAULT_TEXT,
) -> Inputs:
    """The first ``sequences`` windows of ``length`` tokens of the text, each led by BOS when there is one."""
    import torch

    ids = tokenizer(eval_text(text), add_special_tokens=False)["input_ids"]
    bos = _bos(model, tokenizer)
    body = length - 1 if bos is not None else length
    windows = []
    for start in range(0, len(ids) - body + 1, body):
        chunk = ids[start : start + body]
        windows.append(([bos] if bos is not None else []) + chunk)
        if len(windows) == sequences:
            break
    if not windows:
        longest = len(ids) + (1 if bos is not None else 0)
        raise VerificationError(
            f"the evaluation text {text} is only {len(ids)} tokens long with {type(tokenizer).__name__}, too short for "
            f"one sequence of {length}: ask for a --length of at most {longest}"
        )
    return Inputs(torch.tensor(windows, dtype=torch.long), None, text)


def sampled(
    model: Any, *, sequences: int = DEFAULT_SEQUENCES, length: int = DEFAULT_LENGTH, seed: int = 0, batch_size: int = 8
) -> Inputs:
    """Sequences the model samples itself (temperature 1, seeded), for checkpoints without a tokenizer."""
    import torch

    config = model.config
    bos = _bos(model, None)
    start = bos if bos is not None else 0
    banned = {t for t in (bos, getattr(config, "pad_token_id", None)) if isinstance(t, int)}
    generator = torch.Generator().manual_seed(seed)
    device = input_device(model)
    params = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in params else "past_key_values" if "past_key_values" in params else None
    rows = []
    with torch.no_grad():
        for first in range(0, sequences, batch_size):
            n = min(batch_size, sequences - first)
            ids = torch.full((n, 1), start, dtype=torch.long)
            past = None
            step_input = ids
            for step in range(length - 1):
                if cache_arg is None or (step > 0 and past is None):  # no KV cache: run the whole prefix
                    out = model(input_ids=ids.to(device))
                else:
                    out = model(input_ids=step_input.to(device), use_cache=True, **{cache_arg: past})
                    past = getattr(out, cache_arg, None)
                    if past is None:
                        past = getattr(out, "past_key_values", None)
                logits = out.logits[:, -1].float().cpu()
                if not torch.isfinite(logits).all():
                    raise VerificationError(
                        f"{type(model).__name__} produced inf or nan logits in {next(model.parameters()).dtype} while "
                        "sampling evaluation sequences; load it in bfloat16 or float32 (--dtype bfloat16)"
                    )
                for t in banned:
                    if t < logits.shape[-1]:
                        logits[:, t] = float("-inf")
                nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
                ids = torch.cat([ids, nxt], dim=1)
                step_input = nxt
            rows.append(ids)
    return Inputs(torch.cat(rows), None, f"sampled from the model (seed {seed})")


def sentences(
    model: Any,
    tokenizer: Any | None,
    *,
    count: int = DEFAULT_SENTENCES,
    seed: int = 0,
    length: int = 32,
    text: str = DEFAULT_TEXT,
) -> Inputs:
    """Sentences of the text for an encoder (padded batch), or seeded random ids when there is no tokenizer."""
    import torch

    if tokenizer is None:
        vocab = int(model.config.vocab_size)
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(3, vocab, (count, length), generator=generator)
        bos = _bos(model, None)
        if bos is not None:
            ids[:, 0] = bos
        return Inputs(ids, torch.ones_like(ids), f"random token ids (seed {seed})")
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", eval_text(text)) if len(s.split()) >= 5]
    batch = tokenizer(found[:count], padding=True, truncation=True, max_length=max(length, 16), return_tensors="pt")
    return Inputs(batch["input_ids"], batch["attention_mask"], text)
