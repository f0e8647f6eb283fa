"""`swindex lookup`, `swindex list` and `swindex search`: read the registry."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..constants import GGUF_SUFFIX

if TYPE_CHECKING:
    from ..records import Entry


def _registry_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry", metavar="DIR", help="read this registry directory instead of the index shipped with swindex"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lookup",
        help="show a model's super weights",
        description="Show a model's super weights: id (any case), alias, local model directory, or a checkpoint file "
        "(.gguf, .safetensors), whose model is inferred as `swindex check` infers it.",
    )
    p.add_argument("model", metavar="MODEL", help="model id, alias, local model directory or checkpoint file")
    p.add_argument(
        "--revision",
        help="fail if the entry was measured at a different commit sha (warns when the entry records none)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the entry as the JSON API gives it (the registry's fields plus super_weights and verdict.text)",
    )
    _registry_arg(p)
    p.set_defaults(handler=run_lookup)

    p = subparsers.add_parser("list", help="list every model in the registry")
    p.add_argument("--json", action="store_true", help="print a JSON array of entries")
    _registry_arg(p)
    p.set_defaults(handler=run_list)

    p = subparsers.add_parser("search", help="find models by id, alias, family or architecture")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--json", action="store_true", help="print a JSON array of entries")
    _registry_arg(p)
    p.set_defaults(handler=run_search)


def run_lookup(args: argparse.Namespace) -> int:
    from .._lookup import lookup, registry_source

    if not args.model.strip():
        print(
            "swindex lookup: error: the model id is empty; give a model id, an alias or a local model folder "
            "(`swindex list` shows every model)",
            file=sys.stderr,
        )
        return 2
    inferred = _checkpoint_base(args.model, args.registry)
    entry = (
        inferred.entry if inferred is not None else lookup(args.model, revision=args.revision, registry=args.registry)
    )
    print(entry.to_json() if args.json else entry)
    if inferred is not None:
        from ..errors import shown

        print(
            f"{shown(args.model)}: inferred as {entry.id} by rule {inferred.rule} ({shown(inferred.detail)}), as "
            "`swindex check` infers it",
            file=sys.stderr,
        )
    print(f"registry: {registry_source(args.registry)}", file=sys.stderr)
    return 0


def _checkpoint_base(model: str, registry: str | None):  # noqa: ANN202 - an Inference, imported lazily
    """For a checkpoint file (.gguf, .safetensors, shard index), the entry `swindex check` would check it against."""
    from pathlib import Path

    path = Path(model).expanduser()
    if not path.is_file() or not (
        path.suffix in (GGUF_SUFFIX, ".safetensors") or path.name.endswith(".safetensors.index.json")
    ):
        return None
    from ..checkpoint import infer_base

    return infer_base(path, registry=registry)


def _print_table(entries: Iterable[Entry]) -> None:
    """One line a model: id, verdict (the same words as the site and the JSON API), how many of its super weights
    someone measured critical (the rest are published and unmeasured), layers, claims on record."""
    for entry in entries:
        layers = ",".join(map(str, entry.layers))
        where = f"  layers {layers}" if layers else ""
        critical = sum(c.impact.classification == "critical" for c in entry.super_weights)
        measured = f" ({critical} measured critical)" if entry.super_weights else ""
        print(f"{entry.id:48} {entry.verdict.text}{measured}{where}  ({len(entry.claims)} claim(s) on record)")


def run_list(args: argparse.Namespace) -> int:
    from .._lookup import entries

    found = entries(registry=args.registry)
    if args.json:
        print(json.dumps([e.public_dict() for e in found], indent=2, ensure_ascii=False))
    else:
        _print_table(found)
    return 0


def run_search(args: argparse.Namespace) -> int:
    from .._lookup import search

    if not args.query.strip():
        print("swindex search: error: the query is empty; use `swindex list` to see every model", file=sys.stderr)
        return 2
    found = search(args.query, registry=args.registry)
    if not found and not args.json:
        print(f"swindex search: no model matches {args.query!r}; `swindex list` shows every model", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([e.public_dict() for e in found], indent=2, ensure_ascii=False))
    else:
        _print_table(found)
    return 0 if found else 1
