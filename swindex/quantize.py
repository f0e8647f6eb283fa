"""Round-to-nearest quantization that keeps super weights, as in the paper's section 4 (simulated in float).

Weights: each quantizable tensor is cut into blocks of ``block_size`` consecutive elements (row-major; ``None`` means
the whole tensor is one block) and every block is rounded to ``bits``-bit integers with its own min-max (asymmetric) or
absmax (symmetric) scale, then dequantized in place. With ``keep`` (an Entry, whose ``weights_to_keep`` are held out:
every standing claim not measured harmless, or super weights) the held-out scalars are taken out before the statistics
are computed, other outliers are clipped (``clip="zscore"``: |w| above mean(|w|) + t*std(|w|), default t = 3;
``clip="percentile"``: |w| above the t-th percentile of |w|, default t = 99.99), the rest is quantized and the held-out
scalars are written back at full precision: the paper's recipe (identify, clip, quantize, restore). Statistics are taken
over the whole tensor, so a block size changes only the scales.

Activations: ``quantized_activations`` fake-quantizes the input and output of every quantizable layer per
tensor on each forward call. Holding out the super activation means: in every hidden-sized input and in
the output of each super weight's module, the largest-magnitude element of each sequence in the super
activation's channel (and, in that module's input, in the super weight's column) is replaced by the
tensor's median before the scale is computed and restored afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ._dtypes import dtype_name
from .errors import SwindexError
from .layout import TRANSPOSED_MODULES

__all__ = [
    "QuantizationSummary",
    "quantize_tensor",
    "quantizable_parameters",
    "quantize_model",
    "quantized",
    "quantized_activations",
    "check_clip_threshold",
    "Variant",
    "VariantResult",
    "RTNComparison",
    "paper_variants",
    "compare_rtn",
    "CLIP_DEFAULTS",
    "CLIP_CANDIDATES",
    "ClipSearch",
    "ClipTrial",
    "ORIGINAL_LIMIT",
    "RTN_TOLERANCE",
    "check_savable",
    "judge",
    "save_fake_quantized",
    "search_clip",
    "split_inputs",
    "variant_name",
]

CLIP_DEFAULTS = {"zscore": 3.0, "percentile": 99.99}
"""Default clipping thresholds: z-score in standard deviations of |w|; percentile of |w|."""


@dataclass(frozen=True)
class QuantizationSummary:
    """What a model quantization did: how many tensors and elements, how many held out and clipped."""

    bits: int
    block_size: int | None
    clip: str | None
    clip_threshold: float | None
    tensors: int = 0
    elements: int = 0
    held_out: int = 0
    clipped: int = 0
    names: tuple[str, ...] = field(default=(), repr=False)


def _check(bits: int, block_size: int | None, clip: str | None) -> None:
    if not 2 <= int(bits) <= 16:
        raise SwindexError(f"bits must be between 2 and 16 (4 and 8 are the usual), got {bits}")
    if block_size is not None and int(block_size) < 1:
        raise SwindexError(
            f"block_size must be a positive number of elements or None for the whole tensor, got {block_size}"
        )
    if clip not in (None, "zscore", "percentile"):
        raise SwindexError(f"clip must be 'zscore', 'percentile' or None, got {clip!r}")


def check_clip_threshold(clip: str | None, threshold: float | None) -> None:
    """A z-score must be positive and a percentile in (0, 100]; anything else would clip nothing or everything."""
    if threshold is None or clip is None:
        return
    value = float(threshold)
    if not math.isfinite(value) or value <= 0 or (clip == "percentile" and value > 100):
        allowed = (
            "a percentile above 0 and at most 100"
            if clip == "percentile"
            else "a positive number of standard deviations"
        )
        raise SwindexError(f"clip threshold {threshold!r} is not valid for {clip} clipping: give {allowed}")


def _clip_threshold(magnitudes: Any, clip: str, threshold: float) -> Any:
    import torch

    if clip == "zscore":
        return magnitudes.mean() + threshold * magnitudes.std()
    sample = magnitudes
    if sample.numel() > 1 << 24:  # torch.quantile's limit; a strided sample estimates the percentile well
        sample = sample[:: sample.numel() // (1 << 24) + 1]
    return torch.quantile(sample, threshold / 100.0)


def quantize_tensor(
    weight: Any,
    bits: int = 8,
    block_size: int | None = 128,
    *,
    holdout: Any = (),
    clip: str | None = None,
    clip_threshold: float | None = None,
    symmetric: bool = False,
) -> tuple[Any, int]:
    """The dequantized copy of ``weight`` and the number of clipped elements; ``weight`` is not changed.

    ``holdout``: indices (tuples into ``weight``) kept at full precision.
    """
    import torch

    _check(bits, block_size, clip)
    check_clip_threshold(clip, clip_threshold)
    original = weight.detach()
    w = original.to(torch.float32).clone()
    held = [tuple(int(i) for i in idx) for idx in holdout]
    mask = torch.zeros(w.shape, dtype=torch.bool, device=w.device)
    for idx in held:
        mask[idx] = True
    clipped = 0
    if clip is not None:
        t = CLIP_DEFAULTS[clip] if clip_threshold is None else float(clip_threshold)
        limit = _clip_threshold(w.abs()[~mask], clip, t)
        over = (w.abs() > limit) & ~mask
        clipped = int(over.sum())
        w = torch.where(over, w.clamp(-limit, limit), w)
    w[mask] = 0.0  # held-out scalars must not set any scale

    flat = w.reshape(-1)
    n = flat.numel()
    size = n if block_size is None else min(int(block_size), n)
    pad = (-n) % size
    if pad:
        flat = torch.cat([flat, flat[-1:].expand(pad)])
    blocks = flat.view(-1, size)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = blocks.abs().amax(dim=1, keepdim=True) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        deq = torch.clamp(torch.round(blocks / scale), -qmax, qmax) * scale
    else:
        levels = 2**bits - 1
        lo = blocks.amin(dim=1, keepdim=True)
        hi = blocks.amax(dim=1, keepdim=True)
        scale = (hi - lo) / levels
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        deq = torch.clamp(torch.round((blocks - lo) / safe), 0, levels) * safe + lo
        deq = torch.where(scale > 0, deq, blocks)
    result = deq.reshape(-1)[:n].reshape(w.shape).to(original.dtype)
    for idx in held:
        result[idx] = original[idx]
    return result, clipped


def _is_linear(module: Any) -> bool:
    import torch

    if isinstance(module, torch.nn.Linear):
        return True
    return type(module).__name__ in TRANSPOSED_MODULES and hasattr(module, "nf")  # transformers' GPT-2 Conv1D


def quantizable_parameters(model: Any) -> list[str]:
    """Names of the weights the paper quantizes: every Linear/Conv1D weight and fused 3-D expert tensor,
    except the input and output embeddings."""
    skip: set[int] = set()
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        fn = getattr(model, getter, None)
        emb = fn() if callable(fn) else None
        if emb is not None and getattr(emb, "weight", None) is not None:
            skip.add(id(emb.weight))
    names = []
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for pname, param in module.named_parameters(recurse=False):
            if id(param) in skip:
                continue
            if (_is_linear(module) and pname == "weight") or param.ndim == 3:
                names.append(prefix + pname)
    return names


def _holdout_map(model: Any, keep: Any) -> dict[str, list[tuple[int, ...]]]:
    from .params import check_index, resolve_name
    from .surgery import targets

    result: dict[str, list[tuple[int, ...]]] = {}
    if keep is None:
        return result
    if isinstance(keep, Mapping) and "claims" in keep:  # an entry dict (the CLI's) holds out what its Entry would
        from .claims import claims_of, weights_to_keep

        keep = weights_to_keep(claims_of(keep))
    keep = getattr(keep, "weights_to_keep", keep)  # an Entry holds out every standing claim not measured harmless
    for t in targets(keep):
        name = resolve_name(model, t.tensor)
        check_index(name, tuple(model.get_parameter(name).shape), t.index)  # before any weight is changed
        result.setdefault(name, []).append(t.index)
    return result


def quantize_model(
    model: Any,
    bits: int = 8,
    block_size: int | None = 128,
    *,
    keep: Any = None,
    clip: str | None = None,
    clip_threshold: float | None = None,
    symmetric: bool = False,
    parameters: list[str] | None = None,
) -> QuantizationSummary:
    """Quantize the model's weights in place (see the module docstring); ``keep``: weights to hold out.

    Use ``quantized`` instead to get the original weights back afterwards.
    """
    import torch

    from .params import slot

    _check(bits, block_size, clip)
    check_clip_threshold(clip, clip_threshold)
    held = _holdout_map(model, keep)
    names = parameters if parameters is not None else quantizable_parameters(model)
    elements = clipped = held_out = 0
    for name in names:
        tensor, _ = slot(model, name).writable()
        q, n_clipped = quantize_tensor(
            tensor,
            bits,
            block_size,
            holdout=held.get(name, ()),
            clip=clip,
            clip_threshold=clip_threshold,
            symmetric=symmetric,
        )
        with torch.no_grad():
            tensor.copy_(q)
        elements += tensor.numel()
        clipped += n_clipped
        held_out += len(held.get(name, ()))
    return QuantizationSummary(
        bits, block_size, clip, clip_threshold, len(names), elements, held_out, clipped, tuple(names)
    )


@contextmanager
def quantized(model: Any, bits: int = 8, block_size: int | None = 128, **options: Any) -> Iterator[QuantizationSummary]:
    """Within the block the model's weights are quantized (``quantize_model`` options); restored bit for bit after.

    Keeps a CPU copy of every quantized tensor meanwhile (the model's size in memory).
    """
    import torch

    from .params import slot

    names = options.pop("parameters", None) or quantizable_parameters(model)
    saved = {}
    overrides = []
    for name in names:
        place = slot(model, name)
        tensor, override = place.writable()
        saved[name] = tensor.detach().to("cpu", copy=True)
        overrides.append((place, override))
    try:
        yield quantize_model(model, bits, block_size, parameters=names, **options)
    finally:
        for name, original in saved.items():
            tensor, _ = slot(model, name).writable()
            with torch.no_grad():
                tensor.copy_(original.to(tensor.device))
        for place, key in overrides:
            place.drop_override(key)


@dataclass(frozen=True)
class Variant:
    """One way to quantize in a comparison: with or without the hold-out, and how other outliers are clipped."""

    hold_out: bool
    clip: str | None = None
    clip_threshold: float | None = None


@dataclass(frozen=True)
class VariantResult:
    """A variant's perplexity and what its quantization held out and clipped."""

    perplexity: float
    held_out: int
    clipped: int


@dataclass(frozen=True)
class RTNComparison:
    """Perplexity of a model as loaded and under each quantization variant, at one bit width and block size."""

    bits: int
    block_size: int | None
    original: float
    variants: Mapping[str, VariantResult]
    source: str  # where the evaluation sequences came from
    tokens: int


def paper_variants(clip: str | None = "zscore", clip_threshold: float | None = None) -> dict[str, Variant]:
    """Plain RTN against the paper's recipe (hold the super weights out, clip the other outliers)."""
    check_clip_threshold(clip, clip_threshold)
    return {"rtn": Variant(False), "hold_out": Variant(True, clip, clip_threshold)}


def compare_rtn(
    model: Any,
    inputs: Any,
    keep: Any,
    bits: int = 4,
    block_size: int | None = 128,
    variants: Mapping[str, Variant] | None = None,
    *,
    original: float | None = None,
    batch_size: int = 4,
    progress: bool = False,
) -> RTNComparison:
    """Measure perplexity on ``inputs`` (swindex.verification.inputs) as loaded and under each variant.

    ``keep`` is what a variant with ``hold_out`` holds out (an Entry or super weights); the default variants are
    ``paper_variants()``. Pass ``original`` to reuse a baseline measured earlier on the same inputs. The model is
    restored bit for bit after each variant. ``progress``: a progress bar on stderr, one step a measurement.
    """
    from tqdm.auto import tqdm

    from .verification.measure import lm_pass

    _check(bits, block_size, None)
    chosen = paper_variants() if variants is None else variants
    for variant in chosen.values():
        _check(bits, block_size, variant.clip)
        check_clip_threshold(variant.clip, variant.clip_threshold)
    steps = tqdm(
        total=len(chosen) + (original is None), desc="measuring", unit="pass", disable=not progress, leave=False
    )
    if original is None:
        steps.set_postfix_str("as loaded")
        original = lm_pass(model, inputs, batch_size=batch_size).perplexity
        steps.update()
    results = {}
    for name, variant in chosen.items():
        steps.set_postfix_str(name)
        held = keep if variant.hold_out else None
        with quantized(
            model, bits, block_size, keep=held, clip=variant.clip, clip_threshold=variant.clip_threshold
        ) as summary:
            perplexity = lm_pass(model, inputs, batch_size=batch_size).perplexity
        results[name] = VariantResult(perplexity, summary.held_out, summary.clipped)
        steps.update()
    steps.close()
    return RTNComparison(bits, block_size, original, results, inputs.source, inputs.tokens)


def _fake_quant(x: Any, bits: int, symmetric: bool, hold: list[Any]) -> Any:
    """Per-tensor RTN of one activation; ``hold``: boolean masks of positions kept exact."""
    import torch

    xf = x.to(torch.float32)
    mask = None
    if hold:
        mask = torch.zeros_like(xf, dtype=torch.bool)
        for m in hold:
            mask |= m
        median = xf.median()
        work = torch.where(mask, median, xf)
    else:
        work = xf
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = work.abs().amax() / qmax
        deq = work if scale == 0 else torch.clamp(torch.round(work / scale), -qmax, qmax) * scale
    else:
        levels = 2**bits - 1
        lo, hi = work.amin(), work.amax()
        scale = (hi - lo) / levels
        deq = work if scale == 0 else torch.clamp(torch.round((work - lo) / scale), 0, levels) * scale + lo
    if mask is not None:
        deq = torch.where(mask, xf, deq)
    return deq.to(x.dtype)


def _spike_mask(x: Any, channel: int) -> Any:
    """True at the largest-magnitude element of each sequence in ``channel`` (last dimension)."""
    import torch

    mask = torch.zeros_like(x, dtype=torch.bool)
    col = x[..., channel].abs()
    if col.ndim == 0:
        return mask
    if col.ndim == 1:  # [tokens] (fused experts flatten the batch)
        mask[int(col.argmax()), channel] = True
        return mask
    flat = col.reshape(-1, col.shape[-1])
    pos = flat.argmax(dim=-1)
    view = mask.reshape(-1, mask.shape[-2], mask.shape[-1])
    view[torch.arange(view.shape[0]), pos, channel] = True
    return mask


@contextmanager
def quantized_activations(
    model: Any, bits: int = 8, *, keep: Any = None, symmetric: bool = False, outputs: bool = True
) -> Iterator[int]:
    """Within the block, every quantizable layer's input (and output, unless ``outputs=False``) is
    fake-quantized per tensor to ``bits`` bits; ``keep`` holds the super activation out (module docstring).

    Yields the number of layers hooked.
    """
    from .surgery import channels

    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    rows: set[int] = set()
    by_module: dict[str, tuple[set[int], set[int]]] = {}
    for ch in channels(model, keep) if keep is not None else ():
        rows.add(ch.row)
        outs, ins = by_module.setdefault(ch.module, (set(), set()))
        outs.add(ch.row)
        ins.add(ch.column)

    handles = []

    def make_hooks(module_name: str) -> tuple[Any, Any]:
        outs, ins = by_module.get(module_name, (set(), set()))

        def pre(module: Any, args: tuple, kwargs: dict) -> Any:
            if not args or not hasattr(args[0], "dtype") or not args[0].dtype.is_floating_point:
                return None
            x = args[0]
            wanted = set(ins)
            if hidden is not None and x.shape[-1] == hidden:
                wanted |= rows
            hold = [_spike_mask(x, c) for c in wanted if c < x.shape[-1]]
            return (_fake_quant(x, bits, symmetric, hold), *args[1:]), kwargs

        def post(module: Any, args: tuple, output: Any) -> Any:
            y = output[0] if isinstance(output, tuple) else output
            if not hasattr(y, "dtype") or not y.dtype.is_floating_point:
                return None
            hold = [_spike_mask(y, c) for c in outs if c < y.shape[-1]]
            q = _fake_quant(y, bits, symmetric, hold)
            return (q, *output[1:]) if isinstance(output, tuple) else q

        return pre, post

    try:
        modules = {n.rsplit(".", 1)[0] for n in quantizable_parameters(model)}
        for module_name in sorted(modules):
            module = model.get_submodule(module_name)
            pre, post = make_hooks(module_name)
            handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            if outputs:
                handles.append(module.register_forward_hook(post))
        yield len(modules)
    finally:
        for h in handles:
            h.remove()


CLIP_CANDIDATES: tuple[Variant, ...] = (
    Variant(True),
    Variant(True, "zscore", 3.0),
    Variant(True, "zscore", 6.0),
    Variant(True, "zscore", 12.0),
    Variant(True, "percentile", 99.9),
    Variant(True, "percentile", 99.99),
)
"""What the clip search tries, each with the weights to keep held out: no clip, z-scores of |w| (3 is the paper's
starting point, 12 clips only the far tail) and percentiles of |w|. The paper chose its threshold by search too."""

RTN_TOLERANCE = 1.05
"""An output may be at most 5% worse (in perplexity) than plain round-to-nearest at the same bits and block size."""
ORIGINAL_LIMIT = 2.0
"""An output may be at most twice the unquantized model's perplexity:
beyond that the model is broken, whatever RTN does."""


def variant_name(variant: Variant) -> str:
    """``no clip``, ``zscore 6``, ``percentile 99.99``: how reports name a clip."""
    if variant.clip is None:
        return "no clip"
    threshold = CLIP_DEFAULTS[variant.clip] if variant.clip_threshold is None else variant.clip_threshold
    return f"{variant.clip} {threshold:g}"


@dataclass(frozen=True)
class ClipTrial:
    """One clip tried on the calibration slice: its perplexity and how many weights it clipped."""

    variant: Variant
    perplexity: float
    clipped: int

    @property
    def name(self) -> str:
        return variant_name(self.variant)


@dataclass(frozen=True)
class ClipSearch:
    """The clip search's trials on the calibration slice, plain RTN there,
    and the trial kept (the lowest perplexity)."""

    trials: tuple[ClipTrial, ...]
    rtn: float
    source: str
    tokens: int

    @property
    def chosen(self) -> ClipTrial:
        finite = [t for t in self.trials if math.isfinite(t.perplexity)]
        return min(finite or self.trials, key=lambda t: t.perplexity)

    @property
    def why(self) -> str:
        """Which clip was kept and why, in one sentence with the figures."""
        others = ", ".join(f"{t.name} {t.perplexity:.4g}" for t in self.trials if t is not self.chosen)
        return (
            f"{self.chosen.name}: the lowest perplexity on the calibration slice ({self.chosen.perplexity:.4g}; "
            f"{others}; plain RTN {self.rtn:.4g}; {self.tokens} tokens of {self.source})"
        )


def search_clip(
    model: Any,
    calibration: Any,
    keep: Any,
    bits: int = 4,
    block_size: int | None = 128,
    candidates: tuple[Variant, ...] = CLIP_CANDIDATES,
    *,
    batch_size: int = 4,
    progress: bool = False,
) -> ClipSearch:
    """Quantize with each candidate clip (the weights to keep held out) and measure perplexity on ``calibration``.

    Measured on a slice kept apart from the evaluation text, so the choice is not fitted to the figure reported.
    The model is restored bit for bit after each trial.
    """
    from tqdm.auto import tqdm

    from .verification.measure import lm_pass

    _check(bits, block_size, None)
    trials = []
    steps = tqdm([Variant(False), *candidates], desc="clip search", unit="trial", disable=not progress, leave=False)
    rtn = math.nan
    for variant in steps:
        steps.set_postfix_str("plain RTN" if not variant.hold_out else variant_name(variant))
        held = keep if variant.hold_out else None
        with quantized(
            model, bits, block_size, keep=held, clip=variant.clip, clip_threshold=variant.clip_threshold
        ) as summary:
            perplexity = lm_pass(model, calibration, batch_size=batch_size).perplexity
        if variant.hold_out:
            trials.append(ClipTrial(variant, perplexity, summary.clipped))
        else:
            rtn = perplexity
    return ClipSearch(tuple(trials), rtn, calibration.source, calibration.tokens)


def judge(original: float, rtn: float, quantized_perplexity: float) -> tuple[str, ...]:
    """Why an output must not be handed out: worse than plain RTN by more than 5%,
    or over twice the unquantized model."""
    problems = []
    if not math.isfinite(quantized_perplexity):
        return (f"perplexity is {quantized_perplexity} (the model no longer computes)",)
    if quantized_perplexity > RTN_TOLERANCE * rtn:
        problems.append(
            f"perplexity {quantized_perplexity:.4g} is {quantized_perplexity / rtn - 1:+.1%} against plain RTN's "
            f"{rtn:.4g} (the limit is {RTN_TOLERANCE - 1:+.0%})"
        )
    if quantized_perplexity > ORIGINAL_LIMIT * original:
        problems.append(
            f"perplexity {quantized_perplexity:.4g} is {quantized_perplexity / original:.3g}x the unquantized "
            f"model's {original:.4g} (the limit is {ORIGINAL_LIMIT:g}x)"
        )
    return tuple(problems)


def split_inputs(inputs: Any, first: int) -> tuple[Any, Any]:
    """The first ``first`` sequences and the rest, as two Inputs from the same source (evaluation, calibration)."""
    from dataclasses import replace

    mask = inputs.attention_mask
    head = replace(inputs, input_ids=inputs.input_ids[:first], attention_mask=None if mask is None else mask[:first])
    tail = replace(inputs, input_ids=inputs.input_ids[first:], attention_mask=None if mask is None else mask[first:])
    return head, tail


RECORD_FILE = "swindex_quantization.json"
"""What a fake-quantized output records beside its weights: the settings, the held-out weights and every measurement."""

_CARD = """---
{{ card_data }}
---

# {{ title }}

**Fake-quantized, for research.** Every linear weight of `{{ base }}` was rounded to {{ bits }}-bit
round-to-nearest levels ({{ block }}) and stored back as {{ dtype }}: the files are as large as the original and load
like it, with no `quantization_config`. It shows what INT{{ bits }} RTN does to this model when the weights to keep
({{ held }}) stay at full precision, which no packed format can do for single scalars.

Made by `swindex quantize` ({{ clip }}). Perplexity on {{ tokens }} tokens of {{ text }}: {{ original }} as loaded,
{{ rtn }} with plain RTN, {{ result }} here. The full record is in `{{ record_file }}`.

To ship a quantized model, quantize with your own tool and keep these weights: `swindex keep {{ base }} --for TOOL`.
"""


def check_savable(model: Any) -> None:
    """A model transformers loaded quantized cannot be saved as float, except a GGUF file's (dequantized on load)."""
    quantizer = getattr(model, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if quantizer is not None and method != "gguf":
        raise SwindexError(
            f"--output: the model was loaded quantized by {method}, so its weights are not floats to round; "
            "load the unquantized checkpoint"
        )


def _drop_gguf_marker(model: Any) -> None:
    """A GGUF file loads dequantized but marked quantized, which save_pretrained refuses;
    the weights are plain floats."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def save_fake_quantized(
    model: Any, tokenizer: Any, output: str, *, base_model: str, record: Mapping[str, Any], saved_dtype: str | None
) -> str:
    """Write the quantized model to ``output`` all at once: into a hidden sibling first, renamed when complete.

    A fake-quantized float checkpoint, honestly named: its card (``base_model``, tags ``fake-quantized``) and its
    config's ``_name_or_path`` name the base model, so ``swindex check`` and the Hub's model tree find it. Returns the
    dtype written. Nothing is left behind when saving fails.
    """
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import torch
    from huggingface_hub import ModelCard, ModelCardData

    check_savable(model)
    _drop_gguf_marker(model)
    target = Path(output)
    if saved_dtype is not None and getattr(torch, saved_dtype) != model.dtype:
        model = model.to(getattr(torch, saved_dtype))
    dtype = dtype_name(model.dtype)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        model.save_pretrained(partial)
        if tokenizer is not None:
            tokenizer.save_pretrained(partial)
        config_file = partial / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["_name_or_path"] = base_model  # transformers drops it on save; swindex check reads it to find the base
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (partial / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        figures = record["perplexity"]
        data = ModelCardData(
            base_model=base_model,
            base_model_relation="quantized",
            library_name="transformers",
            tags=["swindex", "fake-quantized", f"int{record['bits']}-rtn"],
        )
        block = (
            "one block per tensor" if record["block_size"] == "tensor" else f"blocks of {record['block_size']} weights"
        )
        card = ModelCard.from_template(
            data,
            template_str=_CARD,
            title=f"{base_model.rsplit('/', 1)[-1]}, fake-quantized INT{record['bits']} RTN",
            base=base_model,
            bits=record["bits"],
            block=block,
            dtype=dtype,
            held=record["held_out"],
            clip=record["clip_reason"],
            tokens=record["tokens"],
            text=record["text"],
            original=f"{figures['original']:.4g}",
            rtn=f"{figures['rtn']:.4g}",
            result=f"{figures['hold_out']:.4g}",
            record_file=RECORD_FILE,
        )
        card.save(partial / "README.md")
        if target.is_dir():
            target.rmdir()  # checked empty before any work; an empty directory is replaced, never merged into
        os.rename(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dtype
