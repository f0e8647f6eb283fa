"""`swindex detect`: find a model's super-weight candidates and write a registry entry for them
(and measure them with --verify)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from ._model_options import add_model_arguments, check_model_id, check_output_file, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect",
        help="find a model's super-weight candidates and write a registry entry",
        description="Run the data-free super-weight detector on a model (Hugging Face id, local directory or GGUF "
        "file) and write a registry entry of the candidates it finds: YAML to --output FILE, JSON to stdout with "
        "--json (YAML to stdout otherwise). A candidate is a weight that makes up a spike massive for this model; "
        "whether it matters is measured by `swindex verify` (or --verify here). A short summary, grouped by the "
        "massive channel each candidate feeds, goes to stderr.",
    )
    add_model_arguments(p)
    p.add_argument("--output", "-o", metavar="FILE", help="write the entry as YAML to FILE")
    p.add_argument("--json", action="store_true", help="print the entry as JSON on stdout")
    p.add_argument("--prompt", metavar="TEXT", help="text to scan with (default: a fixed short sentence)")
    p.add_argument(
        "--input-ids", metavar="IDS", type=_ids, help="comma-separated token ids, for checkpoints without a tokenizer"
    )
    p.add_argument(
        "--id",
        dest="model_id",
        metavar="ORG/NAME",
        help="registry id for the entry (default: MODEL, or a local directory's name)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="measure every candidate right away (swindex verify's defaults) and record the impacts and verdict",
    )
    p.add_argument(
        "--max-passes",
        "--max-iterations",
        dest="max_passes",
        type=positive_int,
        default=None,
        metavar="N",
        help="safety cap on forward passes (default: 16; a pass usually suffices)",
    )
    p.add_argument(
        "--max-candidates", type=positive_int, default=None, metavar="N", help="safety cap on candidates (default: 64)"
    )
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

    from ..detection import MAX_CANDIDATES, MAX_PASSES, detect_loaded
    from ..loading import load_model
    from ..records import with_artifact
    from ..registry import write_atomic
    from ..yamlio import dump_yaml
    from ._gguf import artifact_for, gguf_lines

    transformers_logging.disable_progress_bar()  # stderr carries the summary; no loading bars around it

    if args.prompt is not None and args.input_ids is not None:
        print("swindex detect: give --prompt or --input-ids, not both", file=sys.stderr)
        return 2
    check_model_id(args.model_id)
    if args.output:
        check_output_file(args.output)
    result, loaded = detect_loaded(
        load_model(
            args.model,
            revision=args.revision,
            dtype=args.dtype,
            device=args.device,
            trust_remote_code=args.trust_remote_code,
        ),
        prompt=args.prompt,
        input_ids=args.input_ids,
        max_passes=args.max_passes or MAX_PASSES,
        max_candidates=args.max_candidates or MAX_CANDIDATES,
        model_id=args.model_id,
    )
    entry = result.to_entry()
    artifact = artifact_for(args.model, args.revision)
    print(result.summary(), file=sys.stderr)
    if artifact is not None:  # a GGUF file: record exactly which one, and name the weights as llama.cpp does
        entry = with_artifact(entry, artifact, ("detection",))
        print("\n".join([f"measured {artifact.describe()}", *gguf_lines(entry)]), file=sys.stderr)
        if args.model_id is None:
            print(
                f"note: filed as {entry['id']!r}; pass --id ORG/NAME of the model this file quantizes", file=sys.stderr
            )
    if args.verify and result.candidates:
        entry = _verified(entry, loaded, artifact)
    if args.output:
        write_atomic(args.output, dump_yaml(entry))  # an interrupted run never leaves a half-written entry
        print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        print(json.dumps(entry, indent=2, ensure_ascii=False))
    elif not args.output:
        sys.stdout.write(dump_yaml(entry))
    print(_next_step(args, len(result.candidates)), file=sys.stderr)
    return 0


def _verified(entry: dict[str, Any], loaded: Any, artifact: Any) -> dict[str, Any]:
    """The entry with every candidate measured on the model just scanned (no reload),
    its impacts and verdict recorded."""
    from ..claims import verdict_of
    from ..dates import today
    from ..verification import record, verify

    print(f"swindex detect: verifying {len(entry['claims'])} candidate(s) ...", file=sys.stderr)
    date = today()
    report = verify(
        loaded.model,
        entry,
        tokenizer=loaded.tokenizer,
        revision=loaded.revision,
        today=date,
        progress=lambda message: print(f"swindex detect: {message}", file=sys.stderr),
    )
    print(report, file=sys.stderr)
    updated = record(entry, report, today=date, artifact=artifact).entry  # validated: an invalid entry is an error
    print(f"verdict: {verdict_of(updated).text}", file=sys.stderr)
    return updated


def _next_step(args: argparse.Namespace, candidates: int) -> str:
    """What the candidates are and how to measure them: the command to run next."""
    if candidates == 0:
        return (
            "no candidates: no single weight makes a spike that is massive for this model, so there "
            "is nothing to verify"
        )
    if args.verify:
        return f"{candidates} candidate(s) measured; each claim's impact says which are super weights"
    command = ["swindex", "verify", args.model]
    if args.revision:
        command += ["--revision", args.revision]
    command += [
        f"--{name}={value}" for name, value in (("dtype", args.dtype), ("device", args.device)) if value != "auto"
    ]
    if args.trust_remote_code:
        command.append("--trust-remote-code")
    target = args.output or "ENTRY.yaml"
    command += ["--entry", target, "--output", target]
    save = "" if args.output else " (save the entry with --output ENTRY.yaml first)"
    return (
        f"{candidates} candidate(s) found; none is a super weight until it is measured. Measure them{save}:\n"
        f"  {shlex.join(command)}\nor run detect again with --verify."
    )
