"""Renders the registry into the swindex website and its JSON API (`swindex site build`).

Our own step writes Markdown pages and JSON under a build directory, then MkDocs Material builds
the HTML with ``strict`` on. Importing this package is light; jinja2 and mkdocs load on first build.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "build_site": ".build",
    "SiteBuild": ".build",
    "serve_site": ".serve",
    "find_sources": ".sources",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'swindex.sitegen' has no attribute {name!r}")
