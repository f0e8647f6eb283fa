"""Arguments shared by the commands that load a model (detect, verify, quantize), so they read the same."""

from __future__ import annotations

import argparse

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


def add_model_arguments(parser: argparse.ArgumentParser, *, offload: bool = False) -> None:
    """MODEL plus --revision, --dtype, --device, --trust-remote-code (and --offload-folder when asked)."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="Hugging Face model id, local model directory, or GGUF file (or a folder holding one)",
    )
    parser.add_argument("--revision", metavar="SHA", help="model revision (commit sha, branch or tag) to load")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="dtype to load in (default: auto, see docs)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="where to run (default: CUDA if available)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow the model repository's own Python code to run"
    )
    if offload:
        parser.add_argument(
            "--offload-folder", metavar="DIR", help="where accelerate may offload weights that do not fit"
        )


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def sequence_length_arg(text: str) -> int:
    """argparse type: perplexity needs at least one predicted token, so two tokens per sequence."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("a sequence needs at least 2 tokens for perplexity to predict one")
    return value


def read_entry_file(path: str) -> dict:
    """An entry given with --entry, validated first, so a broken file fails before a model is loaded."""
    from pathlib import Path

    from ..errors import ValidationError
    from ..validate import check_file

    data, problems = check_file(Path(path))
    if problems:
        raise ValidationError(problems)
    return dict(data)


def check_output_file(path: str, flag: str = "--output", example: str = "entry.yaml") -> None:
    """Refuse an output FILE that cannot be written before hours of work, not after."""
    from pathlib import Path

    from ..errors import SwindexError

    target = Path(path)
    if target.is_dir():
        raise SwindexError(f"{flag} {path} is a directory; give a file name such as {target / example}")
    _check_parent(target, path, flag)


def check_output_directory(path: str) -> None:
    """--output DIR must be a new or empty directory: saving a model over another one would mix their files."""
    from pathlib import Path

    from ..errors import SwindexError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise SwindexError(f"--output {path} exists and is not a directory; give a new directory to save the model in")
    if target.is_dir() and any(target.iterdir()):
        raise SwindexError(
            f"--output {path} is not empty; give a new or empty directory so no existing file is overwritten"
        )
    _check_parent(target, path, "--output")


def _check_parent(target, path: str, flag: str) -> None:  # noqa: ANN001
    import os

    from ..errors import SwindexError

    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SwindexError(f"{flag} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SwindexError(f"{flag} {path}: cannot write in {parent} (permission denied)")


def check_model_id(model_id: str | None) -> None:
    """--id must be a registry id (org/name), checked before the model is loaded."""
    if model_id is None:
        return
    from ..errors import SwindexError
    from ..validate import validate_entry_dict

    problems = [p for p in validate_entry_dict({"id": model_id}) if p.field == "id"]
    if problems:
        raise SwindexError(f"--id: {problems[0].message}")
