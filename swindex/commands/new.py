"""`swindex new ORG/NAME`: start a registry entry from a skeleton that already validates."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "new",
        help="write a skeleton entry registry/ORG/NAME.yaml to start from",
        description="Write the smallest valid entry for a model (no claims yet) at REGISTRY/ORG/NAME.yaml. Add claims "
        "as CONTRIBUTING.md shows, then run `swindex validate --fix` to fill in what follows from them.",
    )
    p.add_argument("model_id", metavar="ORG/NAME", help="the model's Hugging Face id")
    p.add_argument(
        "--architecture", required=True, metavar="CLASS", help="the transformers class, e.g. LlamaForCausalLM"
    )
    p.add_argument("--family", metavar="TYPE", help="the transformers model_type, e.g. llama")
    p.add_argument("--registry", metavar="DIR", default="registry", help="registry directory (default: ./registry)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..contribute import new_entry
    from ..dates import today
    from ..errors import shown

    path = new_entry(args.model_id, args.architecture, args.registry, today(), family=args.family)
    print(
        f"wrote {shown(str(path))}: add claims (CONTRIBUTING.md), then: swindex validate --fix {shown(str(path))}",
        file=sys.stderr,
    )
    return 0
