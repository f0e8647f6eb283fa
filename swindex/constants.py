"""Names and numbers swindex reads in more than one place: environment variables, cache and index locations,
and format versions. Pure standard library and light, so a lookup can read them without importing the rest.

Why one module: the same variable read in two places drifts (huggingface_hub keeps its own in `constants.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

ENTRY_SCHEMA_VERSION = 2
"""The registry file format (`schema_version` in every entry; `swindex.migrate` upgrades older ones)."""

INDEX_FORMAT = 1
"""The layout of the packaged index and of `swindex update`'s cache: ``{index_format, modified, entries: [{path,
entry}]}``. Apart from the entry schema, so that a schema bump upgrades cached entries instead of refusing the cache."""

API_VERSIONS = (1, 2)
"""The JSON API versions the site publishes (`/api/v1/`, `/api/v2/`); the newest is the entry schema's."""

REGISTRY_ENV = "SWINDEX_REGISTRY"
OFFLINE_ENV = "SWINDEX_OFFLINE"
CACHE_DIR_ENV = "SWINDEX_CACHE_DIR"
SITE_URL_ENV = "SWINDEX_SITE_URL"
TODAY_ENV = "SWINDEX_TODAY"

CACHE_FILE = "registry.json"
PACKAGED_INDEX = Path(__file__).parent / "data" / "registry.json"
"""The index generated into every wheel from registry/ (hatch_build.py); never committed."""


def offline() -> bool:
    """Whether SWINDEX_OFFLINE asks swindex never to fetch (any value but empty, 0, false, no)."""
    return os.environ.get(OFFLINE_ENV, "").strip().casefold() not in ("", "0", "false", "no")


def cache_dir() -> Path:
    """SWINDEX_CACHE_DIR, else $XDG_CACHE_HOME/swindex, else ~/.cache/swindex."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "swindex"


def cache_file() -> Path:
    """Where `swindex update` keeps the site's registry."""
    return cache_dir() / CACHE_FILE


def default_registry_dir() -> Path | None:
    """The registry/ directory of a source checkout, when swindex runs from one (never beside an installed wheel)."""
    root = Path(__file__).resolve().parent.parent
    candidate = root / "registry"
    return candidate if candidate.is_dir() and (root / "pyproject.toml").is_file() else None
