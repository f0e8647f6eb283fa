"""Finds the site's sources (mkdocs.yml and site/) in a checkout or inside an installed wheel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SwindexError

BUNDLE = Path(__file__).resolve().parent / "bundle"
"""Where a wheel carries the sources (pyproject force-includes mkdocs.yml and site/ here)."""

CHECKOUT = Path(__file__).resolve().parents[2]
"""The repository root when swindex runs from a source checkout or an editable install."""


@dataclass(frozen=True)
class SiteSources:
    """The base MkDocs configuration and the site/ directory it goes with."""

    config: Path
    site: Path

    @property
    def templates(self) -> Path:
        return self.site / "templates"

    @property
    def pages(self) -> Path:
        """Extra Markdown pages copied as they are (e.g. the quantization report)."""
        return self.site / "pages"

    @property
    def assets(self) -> Path:
        return self.site / "assets"


def _complete(root: Path) -> SiteSources | None:
    sources = SiteSources(config=root / "mkdocs.yml", site=root / "site")
    if sources.config.is_file() and (sources.templates / "model.md.j2").is_file():
        return sources
    return None


def find_sources(root: str | Path | None = None) -> SiteSources:
    """The sources under ``root`` if given, else the current directory's, the wheel's, or the checkout's."""
    if root is not None:
        found = _complete(Path(root))
        if found is None:
            raise SwindexError(f"{root}: no site sources here; expected mkdocs.yml and site/templates/model.md.j2")
        return found
    for candidate in (Path.cwd(), BUNDLE, CHECKOUT):
        found = _complete(candidate)
        if found is not None:
            return found
    raise SwindexError(
        "cannot find the site sources (mkdocs.yml and site/templates); run from a swindex checkout, "
        "or install a wheel built with them bundled"
    )
