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
    p.add_argument(
        "--registry", metavar="DIR", help="registry directory for path and uniqueness checks (default: ./registry)"
    )
    p.add_argument(
        "--against",
        metavar="DIR",
        help="an earlier registry (e.g. the base branch's): a claim or entry it has that is gone is a problem, and "
        "every edited claim is listed",
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="first fill in what follows from each file's own data (verdict, unmeasured impacts, missing statuses), "
        "printing what was written",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Directories are validated as registries of their own; files against --registry or the ./registry holding them."""
    from ..validate import expected_id, shown, stray_files, validate_paths, validate_registry

    local = Path("registry") if Path("registry").is_dir() else None
    registry = Path(args.registry) if args.registry else None
    paths = [Path(p) for p in args.paths] or ([registry or local] if (registry or local) else [])
    if not paths:
        print(
            "swindex validate: no PATH given and no ./registry directory here; pass files or --registry DIR",
            file=sys.stderr,
        )
        return 2
    if registry is not None and not registry.is_dir():
        print(
            f"swindex validate: error: --registry {registry} is {'a file' if registry.exists() else 'not found'}; give "
            "the registry directory",
            file=sys.stderr,
        )
        return 2
    if args.fix:
        _fix(paths)
    problems = []
    if registry is not None:
        whole = any(p.is_dir() and p.resolve() == registry.resolve() for p in paths)
        problems = (stray_files(registry) if whole else []) + validate_paths(paths, registry=registry)
    else:
        for directory in (p for p in paths if p.is_dir()):
            problems.extend(validate_registry(directory))
        files = [p for p in paths if not p.is_dir()]
        if files:
            inside = local is not None and all(expected_id(f, local) is not None for f in files)
            problems.extend(validate_paths(files, registry=local if inside else None))
    if args.against:
        from ..history import compare_registries

        if not Path(args.against).is_dir():
            print(f"swindex validate: --against {args.against}: no such registry directory", file=sys.stderr)
            return 2
        compared = compare_registries(args.against, registry or (local if local is not None else paths[0]))
        problems.extend(compared.problems)
        for change in compared.changes:
            print(f"changed claim: {shown(change)}", file=sys.stderr)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print("all entries valid", file=sys.stderr)
    return 0


def _fix(paths: list[Path]) -> None:
    """Fill every named file (each entry of a named directory), one line per field written, before validating."""
    from ..contribute import fix_file
    from ..dates import today
    from ..validate import entry_files, shown

    files = [f for p in paths for f in (entry_files(p) if p.is_dir() else [p]) if f.is_file()]
    for path in files:
        for line in fix_file(path, today()):
            print(f"{shown(str(path))}: wrote {shown(line)}", file=sys.stderr)
