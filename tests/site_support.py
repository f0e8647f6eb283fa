"""Shared by tests/test_site_*.py: the fixture registry's site, built once per test process, and the browser."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE_REGISTRY = REPO / "tests" / "fixtures" / "site_registry"
HOSTILE_ID = "evil-org/hostile-model"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@functools.lru_cache(maxsize=None)
def fixture_site() -> Path:
    """The fixture registry built once (without validation: it holds a deliberately invalid, hostile entry)."""
    from swindex.sitegen.build import build_site

    scratch = Path(tempfile.mkdtemp(prefix="swindex-test-site-"))
    atexit.register(shutil.rmtree, scratch, True)
    build_site(FIXTURE_REGISTRY, scratch / "site", validate=False)
    return scratch / "site"


def chromium_path() -> str:
    """Debian's Chromium, or the browser named by SWINDEX_CHROMIUM (CI runners ship Chrome elsewhere)."""
    for candidate in (
        os.environ.get("SWINDEX_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "no Chromium found: install Debian's chromium package or set SWINDEX_CHROMIUM to a Chrome binary"
    )
