"""`swindex check`: did a fine-tune, merge or quantization keep its base model's super weights?"""

from __future__ import annotations

import argparse
import sys

_NEEDS_CHECK_EXTRA = ("numpy", "gguf", "huggingface_hub", "yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="check a fine-tune, merge or quantization (safetensors, GGUF, or a Hub repository) for its base model's super weights",
        description="Read only the headers and the bytes of each recorded super weight of PATH (a folder of safetensors, "
        "one .safetensors or .gguf file, or a Hub repository ORG/NAME[@REVISION] read with range requests) and say, per "
        "weight, whether it was kept (within 5%% of the recorded value), changed, lost (zeroed, sign flipped or under 10%% "
        "of it) or unknown (no recorded value). Exit status: 0 all kept, 1 a weight changed or was lost, 2 could not check.",
    )
    p.add_argument("path", metavar="PATH", help="local checkpoint (folder, .safetensors, .gguf) or Hub repository ORG/NAME[@REVISION]")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--entry", metavar="FILE", help="check against this entry file instead of the registry's")
    which.add_argument("--base", metavar="ID", help="the registry model it derives from (default: read from the checkpoint's metadata)")
    p.add_argument(
        "--file", metavar="NAME.gguf", help="in a repository of GGUF files, the one to check (with range requests)"
    )
    p.add_argument("--registry", metavar="DIR", help="look the base model up in this registry directory")
    p.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import SwindexError, shown, shown_lines

    try:
        from ..checkpoint import check

        report = check(args.path, entry=args.entry, base=args.base, registry=args.registry, file=args.file)
    except SwindexError as exc:
        return _could_not_check(str(exc))
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _NEEDS_CHECK_EXTRA:
            raise
        return _could_not_check(f'this command needs the check extra ({exc.name} is not installed): pip install "swindex[check]"')
    except OSError as exc:
        return _could_not_check(f"{shown(str(exc.filename or args.path))}: {shown(str(exc.strerror or exc))}")
    print(report.to_json() if args.json else shown_lines(str(report)))  # names from the file, escaped
    return report.exit_status


def _could_not_check(message: str) -> int:
    from ..errors import shown_lines

    print(f"swindex check: error: {shown_lines(message)}", file=sys.stderr)
    return 2
