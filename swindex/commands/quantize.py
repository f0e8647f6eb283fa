"""`swindex quantize`: round-to-nearest quantization with the super weights held out, measured or saved."""

from __future__ import annotations

import argparse
import json
import sys

from ._model_options import add_model_arguments, check_output_directory, positive_int, read_entry_file, sequence_length_arg as _length


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quantize",
        help="compare round-to-nearest quantization with and without the super-weight hold-out, or save the result",
        description="Quantize MODEL's linear weights block-wise to --bits with round-to-nearest (simulated: weights are "
        "dequantized back to the model's dtype) and print perplexity on the evaluation text for the model as loaded, "
        "plain RTN, and RTN with the entry's super weights held out at full precision and other outliers clipped. "
        "With --output, save the held-out quantization as a model directory instead.",
    )
    add_model_arguments(p)
    p.add_argument("--entry", metavar="FILE", help="take the super weights from this entry YAML (default: the registry)")
    p.add_argument("--bits", type=int, default=4, choices=(2, 3, 4, 5, 6, 8), help="bits per weight (default 4)")
    p.add_argument("--block-size", type=_block, default=128, metavar="N|tensor", help="elements per block, or 'tensor' for one block per tensor (default 128)")
    p.add_argument("--clip", choices=("zscore", "percentile", "none"), default="zscore", help="how to clip the other outliers (default zscore)")
    p.add_argument("--clip-threshold", type=float, metavar="T", help="z-score (default 3) or percentile of |w| (default 99.99)")
    p.add_argument("--output", "-o", metavar="DIR", help="save the model quantized with the hold-out to DIR, in the checkpoint's own dtype (no measuring)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--sequences", type=positive_int, default=16, metavar="N", help="evaluation sequences (default 16)")
    p.add_argument("--length", type=_length, metavar="N", help="tokens per sequence, at least 2 (default 128, or the model's context if shorter)")
    p.add_argument("--registry", metavar="DIR", help="look the entry up in this registry directory")
    p.set_defaults(handler=run)


def _block(text: str) -> int | None:
    """argparse type: a positive block size, or 'tensor' (None) for one block per tensor."""
    return None if text == "tensor" else positive_int(text)


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as transformers_logging

    from ..loading import load_model
    from ..quantize import compare_rtn, paper_variants, quantize_model
    from ..verification.inputs import sampled, sequence_length, text_windows
    from ..verification.measure import is_causal_lm

    transformers_logging.disable_progress_bar()
    block = args.block_size
    clip = None if args.clip == "none" else args.clip
    if clip is None and args.clip_threshold is not None:
        print("swindex quantize: error: --clip-threshold needs --clip zscore or percentile", file=sys.stderr)
        return 2
    variants = paper_variants(clip, args.clip_threshold)  # refuses a bad threshold before anything is loaded
    if args.output:
        check_output_directory(args.output)
    if args.entry:  # the entry first: a model without one fails before it is loaded
        entry = read_entry_file(args.entry)
    else:
        from .._lookup import lookup

        entry = lookup(args.model, revision=args.revision, registry=args.registry).to_dict()
    loaded = load_model(args.model, revision=args.revision, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    model = loaded.model
    options = {"keep": entry, "clip": clip, "clip_threshold": args.clip_threshold}

    if args.output:
        summary = quantize_model(model, args.bits, block, **options)
        saved_dtype = _save(model, loaded.tokenizer, args.output, loaded.saved_dtype)
        print(f"swindex quantize: {summary.tensors} tensors to {args.bits} bits, {summary.held_out} super weight(s) held out, "
              f"{summary.clipped} weight(s) clipped; wrote {args.output} in {saved_dtype}", file=sys.stderr)
        return 0

    if not is_causal_lm(model):
        print(
            f"swindex quantize: {args.model} is a {type(model).__name__}, not a causal language model, so there is no "
            "perplexity to measure; use --output DIR to save its quantized weights",
            file=sys.stderr,
        )
        return 2
    tokens = sequence_length(model, args.length)
    if loaded.tokenizer is not None:
        inputs = text_windows(model, loaded.tokenizer, sequences=args.sequences, length=tokens)
    else:
        inputs = sampled(model, sequences=args.sequences, length=tokens)
    comparison = compare_rtn(model, inputs, entry, args.bits, block, variants)
    held = comparison.variants["hold_out"]
    figures = {"original": comparison.original, **{name: v.perplexity for name, v in comparison.variants.items()}}
    result = {
        "model": args.model,
        "bits": args.bits,
        "block_size": block or "tensor",
        "clip": clip,
        "clip_threshold": args.clip_threshold,
        "held_out": held.held_out,
        "clipped": held.clipped,
        "text": comparison.source,
        "tokens": comparison.tokens,
        "perplexity": figures,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.model}: INT{args.bits}, block {block or 'tensor'}, perplexity on {comparison.source} ({comparison.tokens} tokens)\n"
            f"  as loaded {figures['original']:.4g}   RTN {figures['rtn']:.4g}   "
            f"RTN with {held.held_out} super weight(s) held out{', ' + clip + ' clip' if clip else ''} {figures['hold_out']:.4g}"
        )
    return 0


def _save(model, tokenizer, output: str, saved_dtype: str | None) -> str:  # noqa: ANN001
    """Save in the checkpoint's own dtype (a bfloat16 model stays bfloat16 however it was computed); return that dtype."""
    import torch

    from ..errors import SwindexError

    if saved_dtype is not None and getattr(torch, saved_dtype) != model.dtype:
        model = model.to(getattr(torch, saved_dtype))
    try:
        model.save_pretrained(output)
        if tokenizer is not None:
            tokenizer.save_pretrained(output)
    except OSError as exc:
        raise SwindexError(f"--output {output}: could not save the model: {exc.strerror or exc}") from None
    return str(model.dtype).removeprefix("torch.")
