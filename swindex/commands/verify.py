"""`swindex verify`: measure what an entry's super weights do to the model, and record it as evidence."""

from __future__ import annotations

import argparse
import sys
import warnings

from ._model_options import add_model_arguments, check_output_file, positive_int, read_entry_file, sequence_length_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="measure what a model's recorded super weights do (perplexity when zeroed, control, restored activation)",
        description="Load MODEL (Hugging Face id or local directory), zero its recorded super weights one by one and "
        "all together, zero as many other large weights as a control, and restore the super activation with the "
        "weights zeroed; print the figures, each weight's classification (critical / significant / inert) and whether "
        "the recorded values match the loaded weights. The entry comes from the registry unless --entry is given.",
    )
    add_model_arguments(p, offload=True)
    p.add_argument("--entry", metavar="FILE", help="verify this entry YAML instead of the registry's entry for MODEL")
    p.add_argument(
        "--id",
        dest="model_id",
        metavar="ORG/NAME",
        help="verify the registry's entry for this id (a GGUF file's: the model it quantizes)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    p.add_argument("--output", "-o", metavar="FILE", help="write the entry with the measured evidence added, as YAML")
    p.add_argument(
        "--sequences", type=positive_int, metavar="N", help="evaluation sequences (default 16; encoders: 32 sentences)"
    )
    p.add_argument(
        "--length",
        type=sequence_length_arg,
        metavar="N",
        help="tokens per sequence, at least 2 (default 128, or the model's context if shorter)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for sequences sampled from a model without a tokenizer")
    p.add_argument(
        "--batch-size", type=positive_int, default=4, metavar="N", help="sequences per forward pass (default 4)"
    )
    p.add_argument(
        "--method",
        choices=("auto", "fast", "plain"),
        default="auto",
        help="auto (default): start each pass at the first layer it changes and, on a GPU, run several ablations per "
        "forward pass, where that is exact for the model; fast: stack ablations on CPU too; plain: run the whole "
        "model for every ablation",
    )
    p.add_argument(
        "--whole-text",
        dest="sequential",
        action="store_false",
        help="measure each weight alone on every sequence; by default a decoder's weight is measured sequence by "
        "sequence and stops once a 99.9%% bound on its perplexity ratio lies inside one class",
    )
    p.add_argument("--registry", metavar="DIR", help="look the entry up in this registry directory")
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when the recorded values do not match the loaded weights"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as transformers_logging

    from ..errors import SwindexError
    from ..dates import today
    from ..loading import gguf_path
    from .._lookup import lookup
    from ..registry import write_atomic
    from ..verification import FingerprintWarning, record, verify
    from ..yamlio import dump_yaml
    from ._gguf import artifact_for, gguf_lines

    transformers_logging.disable_progress_bar()
    # The entry first: a model without one fails before it is loaded, and --output reuses it.
    if args.output:
        check_output_file(args.output)
    date = today()
    gguf = gguf_path(args.model)
    if args.entry:
        entry = read_entry_file(args.entry)
    elif args.model_id:  # a GGUF file's --revision is its own repository's commit, not the entry's
        entry = lookup(args.model_id, revision=None if gguf else args.revision, registry=args.registry).to_dict()
    elif gguf is not None:
        raise SwindexError(
            f"{args.model} is a GGUF file, and entries are filed under the model a file quantizes: pass --id "
            "ORG/NAME (or --entry FILE)"
        )
    else:
        entry = lookup(args.model, revision=args.revision, registry=args.registry).to_dict()
    progress = None if args.quiet else (lambda message: print(f"swindex verify: {message}", file=sys.stderr))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FingerprintWarning)
        report = verify(
            args.model,
            entry,
            revision=args.revision,
            dtype=args.dtype,
            device=args.device,
            offload_folder=args.offload_folder,
            trust_remote_code=args.trust_remote_code,
            registry=args.registry,
            sequences=args.sequences,
            length=args.length,
            seed=args.seed,
            batch_size=args.batch_size,
            method=args.method,
            sequential=args.sequential,
            today=date,
            progress=progress,
        )
    for w in caught:
        if issubclass(w.category, FingerprintWarning):
            print(f"swindex verify: warning: {w.message}", file=sys.stderr)
    print(report.to_json() if args.json else report)
    if not args.quiet:
        from ..claims import verdict_of

        print(f"swindex verify: verdict: {verdict_of(report.apply(entry)).text}", file=sys.stderr)
    artifact = artifact_for(args.model, args.revision)
    if artifact is not None and not args.quiet:  # a GGUF file: which one was measured, and llama.cpp's names
        print("\n".join([f"swindex verify: measured {artifact.describe()}", *gguf_lines(entry)]), file=sys.stderr)
    if args.output:  # refused (a fingerprint mismatch, an invalid entry): an error, the file left as it was
        recorded = record(entry, report, today=date, artifact=artifact, where=args.output)
        write_atomic(args.output, dump_yaml(recorded.entry))
        for change in recorded.changes:
            print(f"swindex verify: {change}", file=sys.stderr)
        print(f"swindex verify: wrote {args.output}", file=sys.stderr)
    return 1 if args.strict and not report.fingerprint.matches else 0
