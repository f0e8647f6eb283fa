"""swindex's version and the tool string records carry, built in this one place.

Why one place: entries record which swindex measured them (``evidence.detection.tool``, a verification's ``tool``),
and the builder's resume compares those strings, so every writer must spell them the same way.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def version() -> str:
    """The installed distribution's version; in a checkout that was never installed, pyproject.toml's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("swindex")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            import tomllib  # type: ignore[import-not-found, unused-ignore]
        except ImportError:  # Python 3.10 has no TOML reader in the standard library
            return "0+unknown"
        if not pyproject.is_file():
            return "0+unknown"
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


def tool(command: str | None = None) -> str:
    """``swindex X.Y.Z`` or ``swindex COMMAND X.Y.Z``: who produced a record."""
    return " ".join(part for part in ("swindex", command, version()) if part)
