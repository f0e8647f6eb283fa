"""Names and numbers swindex reads in more than one place: environment variables, cache and index locations,
and format versions. Pure standard library and light, so a lookup can read them without importing the rest.

Why one module: the same variable read in two places drifts (huggingface_hub keeps its own in `constants.py`).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

ENTRY_SCHEMA_VERSION = 2
"""The registry file format (`schema_version` in every entry; `swindex.migrate` upgrades older ones)."""

INDEX_FORMAT = 1
"""The layout of the packaged index and of `swindex update`'s cache: ``{index_format, modified, entries: [{path,
entry}]}``. Apart from the entry schema, so that a schema bump upgrades cached entries instead of refusing the cache."""

API_VERSIONS = (1, 2)
"""The JSON API versions the site publishes (`/api/v1/`, `/api/v2/`); the newest is the entry schema's."""

GGUF_SUFFIX = ".gguf"
"""How a GGUF checkpoint's file name ends (llama.cpp's format; matched without case where a user names the file)."""

REGISTRY_ENV = "SWINDEX_REGISTRY"
OFFLINE_ENV = "SWINDEX_OFFLINE"
CACHE_DIR_ENV = "SWINDEX_CACHE_DIR"
SITE_URL_ENV = "SWINDEX_SITE_URL"
TODAY_ENV = "SWINDEX_TODAY"

CACHE_FILE = "registry.json"
PACKAGED_INDEX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "registry.json")
"""The index generated into every wheel from registry/ (hatch_build.py); never committed. A string path: a lookup
reads it without importing pathlib."""


def offline() -> bool:
    """Whether SWINDEX_OFFLINE asks swindex never to fetch (any value but empty, 0, false, no)."""
    return os.environ.get(OFFLINE_ENV, "").strip().casefold() not in ("", "0", "false", "no")


def _home(path: str) -> str:
    """``~`` expanded, or RuntimeError where there is no home directory (as pathlib says it)."""
    expanded = os.path.expanduser(path)
    if expanded.startswith("~"):
        raise RuntimeError("Could not determine home directory.")
    return expanded


def cache_path() -> str:
    """Where `swindex update` keeps the site's registry: SWINDEX_CACHE_DIR, else $XDG_CACHE_HOME/swindex, else
    ~/.cache/swindex, holding CACHE_FILE. A string, so that a lookup can look for it without importing pathlib."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        directory = _home(explicit) if explicit.startswith("~") else explicit
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = xdg if xdg and os.path.isabs(xdg) else os.path.join(_home("~"), ".cache")
        directory = os.path.join(base, "swindex")
    return os.path.join(directory, CACHE_FILE)


def cache_dir() -> Path:
    """The folder `cache_path` is in."""
    from pathlib import Path

    return Path(cache_path()).parent


def cache_file() -> Path:
    """Where `swindex update` keeps the site's registry (`cache_path`)."""
    from pathlib import Path

    return Path(cache_path())


def default_registry_dir() -> str | None:
    """The registry/ directory of a source checkout, when swindex runs from one (never beside an installed wheel);
    a string path, as lookups read it."""
    root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    candidate = os.path.join(root, "registry")
    return candidate if os.path.isdir(candidate) and os.path.isfile(os.path.join(root, "pyproject.toml")) else None
