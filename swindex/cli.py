"""The `swindex` command line: one subcommand per module in swindex/commands."""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module

from .version import tool
from .errors import SwindexError, shown, shown_lines

COMMANDS = (
    "lookup",
    "new",
    "validate",
    "index",
    "update",
    "site",
    "detect",
    "verify",
    "quantize",
    "keep",
    "check",
    "derived",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swindex",
        description="The Super Weight Index: look up, validate, detect and verify the super weights "
        "of language models.",
    )
    parser.add_argument("--version", action="version", version=tool())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f".commands.{name}", __package__).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = functools.partial(_show_warning, args.command)
        try:
            return int(handler(args) or 0)
        except SwindexError as exc:
            print(f"swindex {args.command}: error: {shown_lines(str(exc))}", file=sys.stderr)
            return 1
        except BrokenPipeError:
            sys.stdout = None  # the reader (say, `| head`) left; nothing more to say and no traceback to print
            return 0
        except ModuleNotFoundError as exc:
            extra = _EXTRAS.get((exc.name or "").split(".")[0])
            if extra is None:
                raise
            print(
                f"swindex {args.command}: error: this command needs the {extra} extra ({exc.name} is not installed): "
                f'pip install "swindex[{extra}]"',
                file=sys.stderr,
            )
            return 1
        except OSError as exc:
            where = f" {shown(str(exc.filename))}" if exc.filename else ""
            print(f"swindex {args.command}: error:{where}: {shown(str(exc.strerror or exc))}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"swindex {args.command}: interrupted", file=sys.stderr)
            return 130


_EXTRAS = {
    "torch": "detect",
    "transformers": "detect",
    "accelerate": "detect",
    "safetensors": "detect",
    "huggingface_hub": "detect",
    "gguf": "check",
    "jinja2": "site",
    "mkdocs": "site",
    "material": "site",
    "markdown": "site",
    "pymdownx": "site",
}


def _show_warning(command: str, message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings read like the command's other messages, without a source line from inside swindex."""
    print(f"swindex {command}: warning: {shown_lines(str(message))}", file=sys.stderr)
