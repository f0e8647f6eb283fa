"""The wheel carries what users need offline: the schema, the prebuilt registry index, the CLI entry point."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("dist")
    path = next(iter(WheelBuilder(str(REPO)).build(directory=str(out), versions=["standard"])))
    return zipfile.ZipFile(path)


def test_wheel_ships_schema_and_registry_index(wheel):
    names = set(wheel.namelist())
    assert {"swindex/data/entry.schema.json", "swindex/data/registry.json"} <= names


def test_wheel_declares_the_cli(wheel):
    entry_points = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "swindex = swindex.cli:main" in wheel.read(entry_points).decode()


def test_wheel_core_requirements_stay_small(wheel):
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(line.split()[1].split(">")[0].split("<")[0].split("=")[0].lower() for line in core) == ["jsonschema", "pyyaml"]
