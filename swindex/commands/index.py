"""`swindex index`: write the registry index (a wheel generates its own at build time; the index is never committed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "index", help="write the registry index from registry/ (wheels build their own; nothing to commit)"
    )
    p.add_argument("--registry", metavar="DIR", default="registry")
    p.add_argument(
        "--output",
        metavar="FILE",
        help=(
            "where to write (default: swindex/data/registry.json of the checkout that holds the registry, "
            "else the installed package's)"
        ),
    )
    p.add_argument("--check", action="store_true", help="exit 1 if the index is out of date instead of writing it")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..registry import PACKAGED_INDEX, build_index, render_index

    out = Path(args.output) if args.output else _default_output(Path(args.registry), Path(PACKAGED_INDEX))
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != render_index(args.registry):
            print(f"{out} is out of date with {args.registry}; run `swindex index`", file=sys.stderr)
            return 1
        print(f"{out} is up to date", file=sys.stderr)
        return 0
    build_index(args.registry, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _default_output(registry: Path, installed: Path) -> Path:
    """The index beside the registry in a source checkout, so a contributor never writes into another installation."""
    checkout = registry.resolve().parent / "swindex" / "data" / "registry.json"
    return checkout if checkout.parent.is_dir() else installed
