"""`swindex validate`: check entries against the schema and the registry's rules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check registry files; exit 1 on any problem",
        description="Check entries against the JSON Schema and the registry's rules. Prints one line per problem "
        "(file:line: field: message) and exits 1 if there is any.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: the registry)")
    p.add_argument("--registry", metavar="DIR", help="registry directory for path and uniqueness checks (default: ./registry)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..validate import validate_paths

    registry = Path(args.registry) if args.registry else (Path("registry") if Path("registry").is_dir() else None)
    paths = args.paths or ([registry] if registry else [])
    if not paths:
        print("swindex validate: no PATH given and no ./registry directory here; pass files or --registry DIR", file=sys.stderr)
        return 2
    problems = validate_paths(paths, registry=registry)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print("all entries valid", file=sys.stderr)
    return 0
