"""`swindex check`: did a fine-tune, merge or quantization keep its base model's super weights?"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

_NEEDS_CHECK_EXTRA = ("numpy", "gguf", "huggingface_hub", "yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="check a fine-tune, merge or quantization (safetensors, GGUF, or a Hub repository) "
        "for its base model's super weights",
        description="Read only the headers and the bytes of each weight to keep of PATH (a folder of safetensors, one "
        ".safetensors or .gguf file, or a Hub repository ORG/NAME[@REVISION] read with range requests, or from the "
        "local cache when HF_HUB_OFFLINE is set) and judge, per weight, what its value does to the model: kept (the "
        "entry's measured scale curve predicts under 5 percent more perplexity), degraded (5 percent to 2x), lost "
        "(more, or zeroed, or its sign flipped), or present (no recorded value: still an outlier of its row). Without "
        "a curve, default bands of the scale decide (kept within 0.9..1.1, lost under 0.25). Exit status: 0 all kept, "
        "1 a weight degraded or lost, 2 could not check (or a weight only present), 3 bad usage or internal error.",
    )
    p.add_argument(
        "path",
        metavar="PATH",
        help="local checkpoint (folder, .safetensors, .gguf) or Hub repository ORG/NAME[@REVISION]",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--entry", metavar="FILE", help="check against this entry file instead of the registry's")
    which.add_argument(
        "--base",
        metavar="ID",
        help="the registry model it derives from (default: inferred from the checkpoint: "
        "a recorded sha256, GGUF metadata, the model card or config, then the shape)",
    )
    p.add_argument(
        "--revision", metavar="REVISION", help="the repository's branch, tag or commit (the same as ORG/NAME@REVISION)"
    )
    p.add_argument(
        "--file", metavar="NAME.gguf", help="in a repository of GGUF files, the one to check (with range requests)"
    )
    p.add_argument("--registry", metavar="DIR", help="look the base model up in this registry directory")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with every figure (the same keys on success and on error)",
    )
    p.error = _usage_error(p)
    p.set_defaults(handler=run)


def _usage_error(parser: argparse.ArgumentParser):  # noqa: ANN202 - a bound replacement for ArgumentParser.error
    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        print(f"swindex check: error: {message}", file=sys.stderr)
        raise SystemExit(3)  # bad usage is 3: 2 means the checkpoint could not be checked

    return error


def run(args: argparse.Namespace) -> int:
    from ..checkpoint.report import BAD_USAGE, COULD_NOT_CHECK
    from ..errors import SwindexError, shown, shown_lines

    try:
        from ..checkpoint import check

        report = check(
            args.path, entry=args.entry, base=args.base, registry=args.registry, revision=args.revision, file=args.file
        )
    except SwindexError as exc:
        return _failed(args, str(exc), COULD_NOT_CHECK)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _NEEDS_CHECK_EXTRA:
            return _failed(args, f"internal error: {type(exc).__name__}: {exc}", BAD_USAGE)
        return _failed(
            args,
            f'this command needs the check extra ({exc.name} is not installed): pip install "swindex[check]"',
            COULD_NOT_CHECK,
        )
    except OSError as exc:
        return _failed(args, f"{shown(str(exc.filename or args.path))}: {exc.strerror or exc}", COULD_NOT_CHECK)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as exc:  # noqa: BLE001 - a crash must never read as "degraded or lost" (exit 1): 3, one line
        return _failed(
            args, f"internal error: {type(exc).__name__}: {shown(str(exc))[:300]} (please report it)", BAD_USAGE
        )
    print(report.to_json() if args.json else shown_lines(str(report)))  # names from the file, escaped
    return report.exit_status


def _failed(args: argparse.Namespace, message: str, status: int) -> int:
    from ..checkpoint.report import error_json
    from ..errors import shown_lines

    print(f"swindex check: error: {shown_lines(message)}", file=sys.stderr)
    if args.json:
        print(error_json(args.path, message, status))
    return status
