"""`python -m builder`: scan the models of a list and write their registry entries."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from swindex.commands._model_options import check_output_file
from swindex.errors import SwindexError
from swindex.yamlio import load_yaml

from .atomic import remove_stale_temporaries
from .modellist import ModelSpec, load_model_list, parse_model_list
from .pipeline import Backend, RunOptions, run_all
from .sharding import only, parse_shard, shard
from .summary import exit_status, print_summary, write_report

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_MODELS = PACKAGE_DIR / "models.yaml"
DEFAULT_REGISTRY = REPO_ROOT / "registry"
SCHEMA_FILE = REPO_ROOT / "swindex" / "data" / "entry.schema.json"
BAD_USAGE = 2
REMOTE_CODE_CHOICES = ("include", "exclude", "only")


class _Interrupted(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job, a cluster pre-emption) handled like Ctrl-C."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m builder",
        description="Detect (and verify) the super weights of the models in a list and write validated registry "
        "entries, merging into existing ones without losing published claims.",
        epilog="Exit status: 0 every model done or skipped, 1 some model failed, 2 bad arguments or model list, "
        "130 interrupted (143 on SIGTERM). Dates come from SWINDEX_TODAY (YYYY-MM-DD) when set, else today.",
    )
    parser.add_argument(
        "--models",
        metavar="FILE",
        help="model list (default: builder/models.yaml plus every entry of --registry it does not name, with "
        "the list's defaults)",
    )
    parser.add_argument(
        "--registry",
        metavar="DIR",
        default=str(DEFAULT_REGISTRY),
        help="registry directory to write into (default: the repository's registry/)",
    )
    parser.add_argument(
        "--only", metavar="ID", nargs="+", action="extend", default=[], help="run only these ids from the list"
    )
    parser.add_argument(
        "--remote-code",
        choices=REMOTE_CODE_CHOICES,
        default="include",
        help="models with trust_remote_code: include them (default), exclude them, or run only them "
        "(CI runs them in a job that holds no tokens)",
    )
    parser.add_argument(
        "--shard", metavar="K/N", help="run the K-th of N round-robin shards of the list sorted by id (K from 1)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="redo models already done, replacing swindex's own earlier claims and evidence (published claims, "
        "aliases and notes are always kept)",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip verification (faster; entries carry detection evidence only)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print which models this run (or shard) would handle, and stop"
    )
    parser.add_argument("--report", metavar="FILE", help="also write the summary as JSON (for CI)")
    parser.add_argument(
        "--derived",
        action="store_true",
        help="instead of detecting, check every model the Hub lists as derived from each entry "
        "(swindex derived --check) and record them in evidence.derived_checks",
    )
    parser.add_argument(
        "--state-dir", metavar="DIR", help="with --derived: one resumable scan state file per model here"
    )
    parser.add_argument("--workers", type=int, default=16, metavar="N", help="with --derived: checks at once")
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (neither the builder's nor the libraries')",
    )
    return parser


def today() -> str:
    """SWINDEX_TODAY when set (reproducible runs and tests), otherwise the local date (swindex.dates reads it)."""
    from swindex.dates import today as swindex_today

    return swindex_today()


def _is_default_registry(registry: Path) -> bool:
    return registry.resolve() == DEFAULT_REGISTRY.resolve()


def _schema_header(registry: Path):
    """In the repository's registry/, new files get the editor schema pointer the existing ones carry."""
    if not _is_default_registry(registry):
        return lambda path: ""

    def header(path: Path) -> str:
        return f"# yaml-language-server: $schema={os.path.relpath(SCHEMA_FILE, path.parent)}\n"

    return header


def load_plan(models: Path | None, registry: Path) -> list[ModelSpec]:
    """The models to scan: the given list, or by default builder/models.yaml plus the registry's other entries.

    An entry the default list does not name is scanned with the list's defaults, so a contributor adds a
    model by adding its registry file alone, and two such pull requests never touch the same line.
    """
    specs = load_model_list(models or DEFAULT_MODELS)
    if models is not None or not registry.is_dir():
        return specs
    from swindex.validate import entry_files, expected_id

    listed = {spec.id.casefold() for spec in specs}
    unlisted = sorted(
        {
            i
            for i in (expected_id(p, registry) for p in entry_files(registry))
            if i and i.count("/") == 1 and i.casefold() not in listed
        },
        key=str.casefold,
    )
    if not unlisted:
        return specs
    defaults = (load_yaml(DEFAULT_MODELS) or {}).get("defaults") or {}
    extra = parse_model_list({"defaults": defaults, "models": [{"id": i} for i in unlisted]}, DEFAULT_MODELS)
    return specs + [replace(spec, origin=f"{registry}/{spec.id}.yaml") for spec in extra]


def by_remote_code(specs: Sequence[ModelSpec], mode: str) -> list[ModelSpec]:
    """``only``: the models that run their repository's code; ``exclude``: the others; ``include``: all."""
    if mode == "only":
        return [spec for spec in specs if spec.trust_remote_code]
    if mode == "exclude":
        return [spec for spec in specs if not spec.trust_remote_code]
    return list(specs)


def _check_destinations(registry: Path, report: str | None) -> None:
    """Refuse a --registry or --report that cannot be written before any model is scanned, not after."""
    if registry.exists() and not registry.is_dir():
        raise SwindexError(f"--registry {registry} is a file; give the registry directory")
    if report is not None:
        check_output_file(report, "--report", "report.json")


def main(argv: Sequence[str] | None = None, backend: Backend | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        date = today()
        registry = Path(args.registry)
        specs = load_plan(Path(args.models) if args.models else None, registry)
        if args.only:
            specs = only(specs, args.only)
        specs = by_remote_code(specs, args.remote_code)
        if args.shard:
            k, n = parse_shard(args.shard)
            specs = shard(specs, k, n)
        _check_destinations(registry, args.report)
    except SwindexError as exc:
        print(f"builder: error: {exc}", file=sys.stderr)
        return BAD_USAGE

    if args.dry_run:
        for spec in specs:
            print(f"{spec.id}\t{spec.describe()}")
        print(f"{len(specs)} model(s)", file=sys.stderr)
        return 0

    if args.derived:
        return run_derived(specs, registry, date, args)
    if not args.progress:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is first imported
    if backend is None:
        from .backend import default_backend

        backend = default_backend()
    registry.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temporaries(registry):
        print(f"builder: removed {stale}, left by an interrupted run", file=sys.stderr)

    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:  # noqa: ARG001
        received.append(signum)
        raise _Interrupted()

    handled = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        options = RunOptions(
            registry=registry, today=date, force=args.force, verify=args.verify, schema_header=_schema_header(registry)
        )
        try:
            outcomes, interrupted = run_all(specs, backend, options, progress=args.progress)
        except KeyboardInterrupt:  # a second Ctrl-C while marking the rest
            outcomes, interrupted = [], True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    code = exit_status(outcomes, (received[-1] if received else signal.SIGINT) if interrupted else None)
    print_summary(outcomes)
    if args.report:
        write_report(args.report, outcomes, code)
    if interrupted:
        print(
            "builder: interrupted; every entry is either untouched or completely written. Rerun the "
            "same command to resume.",
            file=sys.stderr,
        )
    return code


def run_derived(specs: Sequence[ModelSpec], registry: Path, date: str, args: argparse.Namespace) -> int:
    """--derived: each model's derived checkpoints listed, checked and recorded; one line per model."""
    from .atomic import entry_path
    from .derived import scan_model

    header = _schema_header(registry)
    failed = 0
    for spec in specs:
        try:
            path = entry_path(registry, spec.id)
            written, summary = scan_model(
                spec.id,
                registry,
                date,
                state_dir=Path(args.state_dir) if args.state_dir else None,
                workers=args.workers,
                header=header(path),
            )
        except SwindexError as exc:
            failed += 1
            print(f"{spec.id}: failed: {exc}", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print(
                "builder: interrupted; each finished check is in --state-dir (when given): "
                "rerun the same command to resume.",
                file=sys.stderr,
            )
            return 130
        print(f"{spec.id}: {summary}{'' if written else ' (entry unchanged)'}")
    return 1 if failed else 0
