"""`swindex detect`: find a model's super weights and write a registry entry for them."""

from __future__ import annotations

import argparse
import json
import sys

from ._model_options import add_model_arguments, check_model_id, check_output_file, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect",
        help="find a model's super weights and write a registry entry",
        description="Run the data-free super-weight detector on a model (Hugging Face id or local directory) and write "
        "a registry entry: YAML to --output FILE, JSON to stdout with --json (YAML to stdout otherwise). "
        "A short summary goes to stderr.",
    )
    add_model_arguments(p)
    p.add_argument("--output", "-o", metavar="FILE", help="write the entry as YAML to FILE")
    p.add_argument("--json", action="store_true", help="print the entry as JSON on stdout")
    p.add_argument("--prompt", metavar="TEXT", help="text to scan with (default: a fixed short sentence)")
    p.add_argument("--input-ids", metavar="IDS", type=_ids, help="comma-separated token ids, for checkpoints without a tokenizer")
    p.add_argument("--id", dest="model_id", metavar="ORG/NAME", help="registry id for the entry (default: MODEL, or a local directory's name)")
    p.add_argument("--max-iterations", type=positive_int, default=None, metavar="N", help="stop after N forward passes (default: 64)")
    p.set_defaults(handler=run)


def _ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,2,3, got {text!r}") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError("expected at least one non-negative token id")
    return ids


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as transformers_logging

    from ..detection import MAX_ITERATIONS, detect
    from ..registry import write_atomic
    from ..yamlio import dump_yaml

    transformers_logging.disable_progress_bar()  # stderr carries the summary; no loading bars around it

    if args.prompt is not None and args.input_ids is not None:
        print("swindex detect: give --prompt or --input-ids, not both", file=sys.stderr)
        return 2
    check_model_id(args.model_id)
    if args.output:
        check_output_file(args.output)
    result = detect(
        args.model,
        revision=args.revision,
        dtype=args.dtype,
        device=args.device,
        prompt=args.prompt,
        input_ids=args.input_ids,
        trust_remote_code=args.trust_remote_code,
        max_iterations=args.max_iterations or MAX_ITERATIONS,
        model_id=args.model_id,
    )
    entry = result.to_entry()
    print(result.summary(), file=sys.stderr)
    if args.output:
        write_atomic(args.output, dump_yaml(entry))  # an interrupted run never leaves a half-written entry
        print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        print(json.dumps(entry, indent=2, ensure_ascii=False))
    elif not args.output:
        sys.stdout.write(dump_yaml(entry))
    return 0
