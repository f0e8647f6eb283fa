"""`swindex quantize`: round-to-nearest with the weights to keep held out, the clip chosen by measurement, every
output measured against plain RTN before anything is written."""

from __future__ import annotations

import argparse
import json
import sys

from ._model_options import (
    add_model_arguments,
    check_output_directory,
    positive_int,
    read_entry_file,
    sequence_length_arg as _length,
)

CALIBRATION = 4
"""Sequences of the text the clip search measures on, kept apart from the evaluation sequences."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quantize",
        help="measure round-to-nearest quantization with the weights to keep held out, or save it fake-quantized",
        description="Quantize MODEL's linear weights block-wise to --bits with round-to-nearest, holding the entry's "
        "weights to keep at full precision, and measure perplexity as loaded, with plain RTN and with the hold-out. "
        "By default the clip of the other outliers is chosen by search on a calibration slice of the text (no clip, "
        "z-score and percentile thresholds). With --output, save the result as a fake-quantized float checkpoint "
        "(for research: weights rounded to the quantized levels, stored in the model's dtype), only when it is at "
        "most 5%% worse than plain RTN and at most 2x the unquantized perplexity, unless --force. To ship a real "
        "quantized model, use your quantizer with `swindex keep MODEL --for TOOL`.",
    )
    add_model_arguments(p)
    p.add_argument(
        "--entry", metavar="FILE", help="take the weights to keep from this entry YAML (default: the registry)"
    )
    p.add_argument("--bits", type=int, default=4, choices=(2, 3, 4, 5, 6, 8), help="bits per weight (default 4)")
    p.add_argument(
        "--block-size",
        type=_block,
        default=128,
        metavar="N|tensor",
        help="elements per block, or 'tensor' for one block per tensor (default 128)",
    )
    p.add_argument(
        "--clip",
        choices=("auto", "zscore", "percentile", "none"),
        default="auto",
        help="how to clip the other outliers: auto (default) measures each candidate on a calibration slice "
        "and keeps the best",
    )
    p.add_argument(
        "--clip-threshold", type=float, metavar="T", help="z-score (default 3) or percentile of |w| (default 99.99)"
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="DIR",
        help="save the fake-quantized model to DIR (a new or empty directory), after measuring it",
    )
    p.add_argument("--force", action="store_true", help="write --output even when the measurement says it is broken")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--sequences", type=positive_int, default=16, metavar="N", help="evaluation sequences (default 16)")
    p.add_argument(
        "--calibration",
        type=positive_int,
        default=CALIBRATION,
        metavar="N",
        help=f"sequences for the clip search, after the evaluation ones (default {CALIBRATION})",
    )
    p.add_argument(
        "--length",
        type=_length,
        metavar="N",
        help="tokens per sequence, at least 2 (default 128, or the model's context if shorter)",
    )
    p.add_argument("--registry", metavar="DIR", help="look the entry up in this registry directory")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars on stderr")
    p.set_defaults(handler=run)


def _block(text: str) -> int | None:
    """argparse type: a positive block size, or 'tensor' (None) for one block per tensor."""
    return None if text == "tensor" else positive_int(text)


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as transformers_logging

    from ..claims import claims_of, keep_counts, weights_to_keep
    from ..errors import SwindexError
    from ..benefit import rtn_scheme
    from ..keep import _benefit
    from ..loading import load_model
    from ..quantize import (
        Variant,
        check_clip_threshold,
        check_savable,
        compare_rtn,
        judge,
        quantize_model,
        save_fake_quantized,
        search_clip,
        split_inputs,
        variant_name,
    )
    from ..verification.measure import is_causal_lm
    from ..verification.plan import Settings, evaluation_inputs

    transformers_logging.disable_progress_bar()
    block = args.block_size
    if args.clip in ("auto", "none") and args.clip_threshold is not None:
        print("swindex quantize: error: --clip-threshold needs --clip zscore or percentile", file=sys.stderr)
        return 2
    fixed = (
        None if args.clip == "auto" else Variant(True, None if args.clip == "none" else args.clip, args.clip_threshold)
    )
    if fixed is not None:
        check_clip_threshold(fixed.clip, fixed.clip_threshold)  # a bad threshold fails before anything is loaded
    if args.output:
        check_output_directory(args.output)
    if args.entry:  # the entry first: a model without one fails before it is loaded
        entry = read_entry_file(args.entry)
    else:
        from .._lookup import lookup

        entry = lookup(args.model, revision=args.revision, registry=args.registry).to_dict()
    held_words = keep_counts(weights_to_keep(claims_of(entry)))
    say = (
        (lambda message: None)
        if args.quiet
        else (lambda message: print(f"swindex quantize: {message}", file=sys.stderr))
    )
    say(f"loading {args.model}")
    loaded = load_model(
        args.model,
        revision=args.revision,
        dtype=args.dtype,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
    )
    model = loaded.model
    if args.output:
        check_savable(model)
    if not is_causal_lm(model):
        raise SwindexError(
            f"{args.model} is a {type(model).__name__}, not a causal language model: there is no perplexity to measure "
            "its quantization by, so swindex quantize cannot say whether it is broken; use your quantizer with "
            f"`swindex keep {entry.get('id')} --for TOOL`"
        )
    settings = Settings(sequences=args.sequences + (args.calibration if fixed is None else 0), length=args.length)
    inputs = evaluation_inputs(model, loaded.tokenizer, settings, say=say)
    evaluation, calibration = split_inputs(inputs, args.sequences)
    search = None
    if fixed is None:
        if calibration.input_ids.shape[0] == 0:
            raise SwindexError(
                f"the text gives only {inputs.input_ids.shape[0]} sequences of this length, none left for the clip "
                "search after the evaluation ones; ask for fewer --sequences, a shorter --length, or a --clip"
            )
        search = search_clip(model, calibration, entry, args.bits, block, progress=not args.quiet)
        chosen = search.chosen.variant
        reason = search.why
    else:
        chosen = fixed
        reason = f"{variant_name(fixed)}: asked for with --clip"
    variants = {"rtn": Variant(False), "hold_out": chosen}
    comparison = compare_rtn(model, evaluation, entry, args.bits, block, variants, progress=not args.quiet)
    held = comparison.variants["hold_out"]
    figures = {"original": comparison.original, **{name: v.perplexity for name, v in comparison.variants.items()}}
    problems = judge(figures["original"], figures["rtn"], figures["hold_out"])
    result = {
        "model": args.model,
        "base_model": entry.get("id"),
        "bits": args.bits,
        "block_size": block or "tensor",
        "clip": chosen.clip,
        "clip_threshold": chosen.clip_threshold,
        "clip_reason": reason,
        "clip_search": None
        if search is None
        else {
            "text": search.source,
            "tokens": search.tokens,
            "rtn": search.rtn,
            "trials": [
                {"clip": variant_name(t.variant), "perplexity": t.perplexity, "clipped": t.clipped}
                for t in search.trials
            ],
        },
        "held_out": held_words,
        "held_out_weights": held.held_out,
        "clipped": held.clipped,
        "loaded_from": loaded.artifact.describe() if loaded.artifact is not None else args.model,
        "text": comparison.source,
        "tokens": comparison.tokens,
        "perplexity": figures,
        "problems": list(problems),
        # what keeping buys at these settings, when the entry measured them (swindex.benefit)
        "benefit": _benefit(entry, "swindex", scheme) if (scheme := rtn_scheme(args.bits, block)) else None,
    }
    written = None
    refused = bool(problems) and not args.force
    if args.output and not refused:
        say(f"writing {args.output}")
        quantize_model(model, args.bits, block, keep=entry, clip=chosen.clip, clip_threshold=chosen.clip_threshold)
        written = save_fake_quantized(
            model,
            loaded.tokenizer,
            args.output,
            base_model=str(entry.get("id")),
            record=result,
            saved_dtype=loaded.saved_dtype,
        )
    result["written"] = args.output if written else None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_report(args, result, written, refused))
    return 1 if args.output and refused else 0


def _report(args: argparse.Namespace, result: dict, written: str | None, refused: bool) -> str:
    """The measurement in words: the clip kept and why, the three perplexities, and what was (not) written."""
    figures = result["perplexity"]
    block = result["block_size"]
    lines = [
        f"{args.model}: INT{result['bits']} round-to-nearest, "
        f"{'one block per tensor' if block == 'tensor' else f'block {block}'}",
        f"  held out: {result['held_out']}",
        f"  clip: {result['clip_reason']}",
        f"  perplexity on {result['text']} ({result['tokens']} tokens): as loaded {figures['original']:.4g}   "
        f"plain RTN {figures['rtn']:.4g}   with the hold-out {figures['hold_out']:.4g} "
        f"({figures['hold_out'] / figures['rtn'] - 1:+.1%} against plain RTN)",
    ]
    if result["benefit"]:
        lines.append(f"  {result['benefit']}")
    for problem in result["problems"]:
        lines.append(f"  broken: {problem}")
    if written:
        kind = "forced despite the problems above" if result["problems"] else "measured sound"
        lines.append(
            f"  wrote {args.output}: fake-quantized {written} checkpoint ({kind}); base model {result['base_model']}"
        )
    elif args.output and refused:
        lines.append(f"  refused to write {args.output}: nothing written (--force writes it anyway)")
    return "\n".join(lines)
