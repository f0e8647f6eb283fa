"""An installed wheel can build the site: it carries mkdocs.yml and site/ inside swindex/sitegen/bundle."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from site_support import REPO

from swindex.sitegen.build import build_site
from swindex.sitegen.sources import find_sources

FIX = (
    'pyproject.toml needs [tool.hatch.build.targets.wheel.force-include] with "site" = "swindex/sitegen/bundle/site" '
    'and "mkdocs.yml" = "swindex/sitegen/bundle/mkdocs.yml"'
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel unpacked as pip would install it; returns the site-packages-like directory."""
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("dist")
    wheel = next(iter(WheelBuilder(str(REPO)).build(directory=str(out), versions=["standard"])))
    target = tmp_path_factory.mktemp("site-packages")
    zipfile.ZipFile(wheel).extractall(target)
    return target


def test_wheel_bundles_the_site_sources(installed):
    bundle = installed / "swindex" / "sitegen" / "bundle"
    assert (bundle / "mkdocs.yml").is_file() and (bundle / "site" / "templates" / "model.md.j2").is_file(), FIX


@pytest.mark.slow
def test_site_builds_from_the_bundled_sources_alone(installed, tmp_path, make_entry, write_registry):
    bundle = installed / "swindex" / "sitegen" / "bundle"
    if not (bundle / "mkdocs.yml").is_file():
        pytest.fail(FIX)
    out = build_site(write_registry(make_entry()), tmp_path / "out", sources=find_sources(bundle)).output
    assert (out / "models" / "acme" / "tiny-llama" / "index.html").is_file()
