"""Verification decides on a real model: SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantized to float32).

The 14 candidates are what swindex's earlier detector listed for this file (issue 11): of them, only layer
11's [507, 1229] is critical (zeroing it multiplies perplexity about four-fold and removes most of the super
activation); the others must not be handed out as super weights, and all of them together are devastating.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from swindex.claims import claims_of, super_weights  # noqa: E402
from swindex.verification import record, verify  # noqa: E402

pytestmark = pytest.mark.slow

CANDIDATES = (
    (1, 507, 83),
    (1, 507, 609),
    (1, 507, 1009),
    (2, 507, 90),
    (2, 507, 430),
    (2, 260, 90),
    (2, 260, 430),
    (8, 507, 1188),
    (11, 507, 1229),
    (11, 507, 1487),
    (27, 199, 903),
    (27, 299, 903),
    (27, 243, 903),
    (28, 507, 678),
)
CRITICAL = "model.layers.11.mlp.down_proj.weight[507, 1229]"


def _entry(model):
    cfg = model.config
    claims = [
        {
            "layer": layer,
            "tensor": f"model.layers.{layer}.mlp.down_proj.weight",
            "row": row,
            "column": column,
            "expert": None,
            "index": [row, column],
            "status": "detected",
            "impact": {"classification": "unmeasured"},
            "sources": [
                {
                    "citation": "swindex detect (earlier detector), SmolLM2-135M-Instruct.Q4_1.gguf",
                    "kind": "swindex",
                    "evidence": "detected",
                }
            ],
        }
        for layer, row, column in CANDIDATES
    ]
    return {
        "schema_version": 2,
        "id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "architecture": "LlamaForCausalLM",
        "family": "llama",
        "revision": None,
        "modified": "2026-11-30",
        "verdict": {"outcome": "not_measured"},
        "dimensions": {
            "num_layers": cfg.num_hidden_layers,
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
        },
        "claims": claims,
    }


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf):
    from swindex.loading import load_model

    loaded = load_model(str(smollm2_gguf), dtype="float32", device="cpu")
    entry = _entry(loaded.model)
    report = verify(loaded.model, entry, tokenizer=loaded.tokenizer, today="2026-11-30")
    return entry, report


def test_only_layer_11_507_1229_is_critical(smollm2):
    _, report = smollm2
    assert [w.coordinate for w in report.weights if w.classification == "critical"] == [CRITICAL]
    (weight,) = [w for w in report.weights if w.coordinate == CRITICAL]
    assert 3.0 < weight.ratio < 6.0
    assert abs(weight.super_activation) > 10_000 and abs(weight.super_activation_zeroed) < 0.5 * abs(
        weight.super_activation
    )


def test_all_candidates_together_are_devastating(smollm2):
    _, report = smollm2
    assert report.all_zeroed / report.original > 1_000
    assert report.restored_activation < report.all_zeroed / 10


def test_the_recorded_entry_hands_out_only_the_critical_weight(smollm2):
    entry, report = smollm2
    recorded = record(entry, report, today="2026-11-30").entry
    assert [c.coordinate for c in super_weights(claims_of(recorded))] == [CRITICAL]
    assert recorded["verdict"]["outcome"] == "super_weights" and recorded["verdict"]["super_weights"] == 1
    assert recorded["verdict"]["candidates"] == len(CANDIDATES)


def test_the_fast_way_ran(smollm2):
    assert smollm2[1].method.startswith("fast:")
