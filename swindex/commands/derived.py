"""`swindex derived`: the fine-tunes, quantizations, adapters and merges of a registry model, and what they kept."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from ..constants import GGUF_SUFFIX


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..derived.discovery import KINDS, SKIP_REASONS
    from ..derived.scan import DEADLINE_SECONDS, WORKERS

    p = subparsers.add_parser(
        "derived",
        help="list (and --check) the models the Hub lists as derived from a registry model",
        description="List the models the Hub's model tree links to BASE (base_model:quantized, finetune, adapter and "
        "merge), with their kind, downloads, last modification and files. With --check, read each checkpoint's super "
        "weights with `swindex check` against BASE's entry (concurrently, a deadline per check) and say kept, changed, "
        f"lost or could not check; skipped ones are counted by reason ({', '.join(SKIP_REASONS)}).",
    )
    p.add_argument("base", metavar="BASE", help="the registry model, e.g. HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--check", action="store_true", help="check each derived checkpoint's super weights")
    p.add_argument(
        "--lost", action="store_true", help="show only the checkpoints that lost a super weight (implies --check)"
    )
    p.add_argument("--kind", choices=KINDS, action="append", help="only this relation (repeatable; default: all four)")
    p.add_argument(
        "--state",
        metavar="FILE",
        help="record each finished check here; rerun with the same file to resume a killed scan",
    )
    p.add_argument("--workers", type=int, default=WORKERS, metavar="N", help=f"checks at once (default {WORKERS})")
    p.add_argument(
        "--deadline",
        type=float,
        default=DEADLINE_SECONDS,
        metavar="SECONDS",
        help=f"most time one check may take, all requests together (default {DEADLINE_SECONDS:g})",
    )
    p.add_argument("--registry", metavar="DIR", help="look BASE up in this registry directory")
    p.add_argument("--json", action="store_true", help="print one JSON object per line (each model, or each check)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..derived import KINDS, ScanState, list_derived, scan
    from ..errors import SwindexError, shown
    from .._lookup import lookup

    if args.workers < 1 or not args.deadline > 0:
        raise SwindexError(
            f"--workers must be at least 1 and --deadline above 0 (got {args.workers} and {args.deadline:g})"
        )
    entry = lookup(args.base, registry=args.registry)  # an unknown base fails here, before the Hub is asked
    models = list_derived(entry.id, kinds=args.kind or KINDS)
    if not (args.check or args.lost):
        from ..derived.transport import scan_session

        count = 0
        with scan_session(connections=1):  # its deadlines and retries hold for the listing's pages too
            for model in models:
                count += 1
                print(json.dumps(_model_dict(model)) if args.json else _model_line(model))
        if not args.json:
            print(f"{count} model(s) derived from {entry.id}", file=sys.stderr)
        return 0
    outcomes: Counter[str] = Counter()
    skipped: dict[str, list[str]] = {}
    state = ScanState(args.state, entry.id) if args.state else None
    try:
        for result in scan(models, entry, workers=args.workers, deadline=args.deadline, state=state):
            outcomes[result.outcome] += 1
            if result.skipped:
                skipped.setdefault(result.skipped, []).append(result.name)
            if args.lost and result.verdict != "lost":
                continue
            print(
                json.dumps(result.to_dict())
                if args.json
                else f"{result.outcome:16} {shown(result.name)}  ({result.kind}){_why(result)}",
                flush=True,
            )
    finally:
        if state is not None:
            state.close()
    if state is not None:
        previous = len(state.done) - sum(outcomes.values())
        if previous > 0:
            print(
                f"resumed: {previous} checkpoint(s) were checked by an earlier run of this scan ({args.state})",
                file=sys.stderr,
            )
    total = sum(outcomes.values())
    print(
        f"{total} checkpoint(s) derived from {entry.id}: "
        + (", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "none"),
        file=sys.stderr,
    )
    for reason, names in sorted(skipped.items()):
        listed = ", ".join(shown(n) for n in names[:5]) + (f", and {len(names) - 5} more" if len(names) > 5 else "")
        print(f"  could not check, {reason} ({len(names)}): {listed}", file=sys.stderr)
    return 0


def _why(result: Any) -> str:
    if result.skipped:
        from ..errors import shown

        return f": {result.skipped}: {shown(result.reason)}"
    return f": {result.kept} of {result.weights} weights kept" if result.weights else ""


def _model_dict(model: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(model), "files": list(model.files)}


def _model_line(model: Any) -> str:
    from ..errors import shown

    weights = [name for name in model.files if name.endswith((".safetensors", GGUF_SUFFIX, ".bin"))]
    files = f"{len(model.files)} files" + (
        f" ({', '.join(weights[:3])}{', ...' if len(weights) > 3 else ''})" if weights else ""
    )
    downloads = f"{model.downloads:,} downloads" if model.downloads is not None else "downloads unknown"
    return (
        f"{model.kind:10} {shown(model.id)}  {downloads}, modified {model.last_modified or 'unknown'}, {shown(files)}"
    )
