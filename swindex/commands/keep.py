"""`swindex keep MODEL --for TOOL`: the weights to keep, as the quantizer people use takes them."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..keep import DEFAULT_BASE_TYPE, DEFAULT_HELD_TYPE, FORMATS

    tools = ", ".join(FORMATS)
    p = subparsers.add_parser(
        "keep",
        help="print the weights to keep in a quantizer's own words (llama.cpp, bitsandbytes, llm-compressor, ...)",
        description="Print what to paste into your quantizer so it leaves a model's weights to keep alone: the super "
        "weights, those measured significant and candidates not measured yet. Quantizers keep whole modules (or GGUF "
        f"tensors), not scalars; the notes on stderr say what that costs. Tools: {tools}.",
    )
    p.add_argument("model", metavar="MODEL", help="model id, alias or local model directory")
    p.add_argument("--for", dest="tool", required=True, metavar="TOOL", help=f"the quantizer: {tools}")
    p.add_argument("--entry", metavar="FILE", help="take the weights from this entry YAML (default: the registry)")
    p.add_argument("--registry", metavar="DIR", help="look the entry up in this registry directory")
    p.add_argument(
        "--held-type",
        default=DEFAULT_HELD_TYPE,
        metavar="TYPE",
        help=f"llama.cpp: the GGML type to hold the tensor at (default {DEFAULT_HELD_TYPE})",
    )
    p.add_argument(
        "--base-type",
        default=DEFAULT_BASE_TYPE,
        metavar="TYPE",
        help=f"llama.cpp: the GGML type the cost in bytes is counted against (default {DEFAULT_BASE_TYPE})",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..keep import keep_for, tool_name
    from ..records import Entry

    tool = tool_name(args.tool)  # an unknown tool fails before the registry is read
    if args.entry:
        from ._model_options import read_entry_file

        entry = Entry.from_dict(read_entry_file(args.entry), path=args.entry)
    else:
        from .._lookup import lookup

        entry = lookup(args.model, registry=args.registry)
    export = keep_for(entry, tool, held_type=args.held_type, base_type=args.base_type)
    print(export.text)
    print(f"swindex keep: {export.model}: keeps {export.held} ({export.version})", file=sys.stderr)
    for note in export.notes:
        print(f"swindex keep: {note}", file=sys.stderr)
    # issue 26: the measured line (what keeping buys under this tool's scheme) goes here, from keep.Export.benefit
    for line in (export.benefit or "").splitlines():
        print(f"swindex keep: {line}", file=sys.stderr)
    return 0
