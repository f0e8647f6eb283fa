"""Arguments shared by the commands that load a model (detect, verify, quantize), so they read the same."""

from __future__ import annotations

import argparse

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


def add_model_arguments(parser: argparse.ArgumentParser, *, offload: bool = False) -> None:
    """MODEL plus --revision, --dtype, --device, --trust-remote-code (and --offload-folder when asked)."""
    parser.add_argument("model", metavar="MODEL", help="Hugging Face model id or local model directory")
    parser.add_argument("--revision", metavar="SHA", help="model revision (commit sha, branch or tag) to load")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="dtype to load in (default: auto, see docs)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="where to run (default: CUDA if available)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own Python code to run")
    if offload:
        parser.add_argument("--offload-folder", metavar="DIR", help="where accelerate may offload weights that do not fit")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
