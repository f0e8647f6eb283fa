"""Merging a fresh detection into an existing entry: published claims stay, detections become evidence."""

from __future__ import annotations

import copy

import pytest

from builder.merge import merge_entry, stamp
from swindex.claims import coordinate_of as coordinate
from swindex.claims import reconcile
from swindex.validate import validate_entry_dict

TODAY = "2030-01-02"
LATER = "2030-02-03"


def detected(layer: int, row: int, column: int, value: float = 2.5) -> dict:
    return {
        "layer": layer,
        "tensor": f"model.layers.{layer}.mlp.down_proj.weight",
        "row": row,
        "column": column,
        "expert": None,
        "index": [row, column],
        "value": value,
        "value_dtype": "float32",
        "status": "detected",
        "sources": [
            {"citation": "swindex 0.1.0 detector", "kind": "swindex", "evidence": "detected", "date": "2000-01-01"}
        ],
        "evidence": {"detection": {"iteration": 1, "input_activation": -80.0, "output_activation": 300.0, "token": 0}},
    }


def fresh_entry(*claims: dict) -> dict:
    return {
        "schema_version": 2,
        "id": "acme/tiny-llama",
        "architecture": "LlamaForCausalLM",
        "family": "llama",
        "parameters": 123456,
        "revision": None,
        "modified": "2000-01-01",
        "dimensions": {"num_layers": 4, "hidden_size": 64, "intermediate_size": 172, "num_experts": None},
        "claims": list(claims),
        "evidence": {"detection": {"tool": "swindex 0.1.0", "date": "2000-01-01", "dtype": "float32", "layers": []}},
    }


@pytest.fixture
def published(make_entry):
    """The shared valid entry: one confirmed claim at layer 1 [3, 7] with a paper source."""
    return make_entry()


def test_no_existing_entry_takes_the_detection_with_todays_date():
    fresh = fresh_entry(detected(1, 3, 7))
    result = merge_entry(None, stamp(fresh, TODAY), TODAY)
    assert result.entry["modified"] == TODAY
    assert result.entry["evidence"]["detection"]["date"] == TODAY
    assert result.added == ("model.layers.1.mlp.down_proj.weight[3, 7]",)
    assert validate_entry_dict(result.entry) == []


def test_matching_detection_adds_evidence_keeping_the_published_claims_status_and_sources(published):
    result = merge_entry(published, fresh_entry(detected(1, 3, 7)), TODAY)
    claim = result.entry["claims"][0]
    assert claim["status"] == "confirmed"
    assert claim["sources"] == published["claims"][0]["sources"]
    assert claim["evidence"]["detection"]["output_activation"] == 300.0
    assert claim["value"] == published["claims"][0]["value"]
    assert result.matched == ("model.layers.1.mlp.down_proj.weight[3, 7]",)
    assert validate_entry_dict(result.entry) == []


def test_unclaimed_detection_is_added_as_detected(published):
    result = merge_entry(published, fresh_entry(detected(1, 3, 7), detected(2, 5, 11)), TODAY)
    new = result.entry["claims"][1]
    assert (new["layer"], new["row"], new["column"], new["status"]) == (2, 5, 11, "detected")
    assert result.added == ("model.layers.2.mlp.down_proj.weight[5, 11]",)
    assert validate_entry_dict(result.entry) == []


def test_published_claim_not_found_gets_a_disagreement_and_stays(published):
    result = merge_entry(published, fresh_entry(detected(2, 5, 11)), TODAY)
    assert result.entry["claims"][0] == published["claims"][0]
    (item,) = result.entry["disagreements"]
    assert item["claims"] == ["model.layers.1.mlp.down_proj.weight[3, 7]"]
    assert "did not find" in item["summary"] and "Somebody et al. 2024" in item["summary"]
    assert result.not_found == ("model.layers.1.mlp.down_proj.weight[3, 7]",)
    assert validate_entry_dict(result.entry) == []


@pytest.mark.parametrize("status", ["inert", "withdrawn", "disputed", "unverified"])
def test_claims_that_do_not_stand_get_no_disagreement(make_entry, status):
    existing = make_entry()
    existing["claims"][0]["status"] = status
    result = merge_entry(existing, fresh_entry(), TODAY)
    assert "disagreements" not in result.entry
    assert result.entry["claims"][0]["status"] == status


def test_aliases_notes_findings_and_earlier_disagreements_stay(make_entry):
    existing = make_entry(
        notes="Kept as written.",
        other_findings=[
            {
                "kind": "row",
                "layer": 1,
                "row": 3,
                "status": "reported",
                "sources": [{"citation": "A row census", "kind": "repository", "evidence": "heuristic"}],
            }
        ],
        disagreements=[
            {
                "summary": "Two papers disagree.",
                "claims": ["model.layers.1.mlp.down_proj.weight[3, 7]"],
                "resolution": None,
            }
        ],
    )
    result = merge_entry(existing, fresh_entry(detected(1, 3, 7)), TODAY).entry
    for key in ("aliases", "notes", "other_findings", "disagreements", "architecture", "dimensions"):
        assert result[key] == existing[key]


def test_a_claim_with_only_swindex_sources_gets_its_swindex_source_refreshed_not_duplicated():
    first = merge_entry(None, stamp(fresh_entry(detected(1, 3, 7)), TODAY), TODAY).entry
    again = merge_entry(first, stamp(fresh_entry(detected(1, 3, 7)), LATER), LATER).entry
    (claim,) = again["claims"]
    assert [(s["kind"], s["date"]) for s in claim["sources"]] == [("swindex", LATER)]
    assert claim["status"] == "detected"


def test_merging_the_same_detection_again_changes_nothing_not_even_the_date(published):
    fresh = stamp(fresh_entry(detected(1, 3, 7), detected(2, 5, 11)), TODAY)
    once = merge_entry(published, fresh, TODAY).entry
    twice = merge_entry(once, fresh, LATER).entry
    assert twice == once
    assert twice["modified"] == TODAY


def test_a_later_detection_updates_its_own_disagreement_instead_of_adding_one(published):
    once = merge_entry(published, stamp(fresh_entry(), TODAY), TODAY).entry
    twice = merge_entry(once, stamp(fresh_entry(), LATER), LATER).entry
    assert len(twice["disagreements"]) == 1
    assert LATER in twice["disagreements"][0]["summary"]


def test_a_detection_that_finds_the_claim_again_drops_swindex_own_disagreement(published):
    missed = merge_entry(published, stamp(fresh_entry(), TODAY), TODAY).entry
    found = merge_entry(missed, stamp(fresh_entry(detected(1, 3, 7)), LATER), LATER).entry
    assert "disagreements" not in found


def test_there_is_no_way_to_replace_a_published_entry(published):
    published = dict(published, aliases=["Tiny"], notes="Written by hand.")
    fresh = fresh_entry(detected(2, 5, 11))
    result = merge_entry(published, fresh, TODAY)
    kept = {coordinate(c) for c in published["claims"]}
    assert kept <= {coordinate(c) for c in result.entry["claims"]}
    assert result.entry.get("aliases") == published.get("aliases") and result.entry.get("notes") == published.get(
        "notes"
    )


def test_missing_facts_are_filled_but_recorded_ones_and_unknowns_are_not(make_entry):
    existing = make_entry(dimensions={"num_layers": 4})
    existing.pop("family")
    fresh = fresh_entry(detected(1, 3, 7))
    fresh["family"] = "other"
    result = merge_entry(existing, fresh, TODAY).entry
    assert result["family"] == "other"
    assert result["dimensions"] == {"num_layers": 4, "hidden_size": 64, "intermediate_size": 172}
    assert result["architecture"] == existing["architecture"]


def test_merge_does_not_mutate_its_inputs(published):
    fresh = fresh_entry(detected(2, 5, 11))
    before = copy.deepcopy((published, fresh))
    merge_entry(published, fresh, TODAY)
    assert (published, fresh) == before


def _measurement(classification, ratio=1.0):
    return {
        "metric": "perplexity",
        "original": 10.0,
        "zeroed": 10.0 * ratio,
        "ratio": ratio,
        "classification": classification,
    }


C37 = "model.layers.1.mlp.down_proj.weight[3, 7]"


def test_a_swindex_candidate_takes_its_measured_impact_and_keeps_its_status():
    fresh = merge_entry(None, stamp(fresh_entry(detected(1, 3, 7)), TODAY), TODAY).entry
    settled, changed = reconcile(fresh, {C37: _measurement("inert")})
    claim = settled["claims"][0]
    assert (claim["status"], claim["impact"]["classification"], claim["impact"]["measured_by"]) == (
        "detected",
        "inert",
        "swindex",
    )
    assert settled["verdict"] == {"outcome": "no_critical_weight", "candidates": 1, "measured_by": "swindex"}
    assert changed[0] == f"{C37}: impact inert" and validate_entry_dict(settled) == []
    again, _ = reconcile(settled, {C37: _measurement("critical", 40.0)})
    assert again["claims"][0]["impact"]["classification"] == "critical"
    assert again["verdict"]["outcome"] == "super_weights" and validate_entry_dict(again) == []


def test_swindex_measurement_is_adopted_for_a_published_claim_nobody_measured(published):
    settled, _ = reconcile(published, {C37: _measurement("inert")})
    assert settled["claims"][0]["status"] == "confirmed" and settled["claims"][0]["impact"]["measured_by"] == "swindex"
    assert lookup_free_super_weights(settled) == []


def lookup_free_super_weights(entry):
    from swindex.claims import claims_of, super_weights

    return [c.coordinate for c in super_weights(claims_of(entry))]


def test_a_published_measurement_is_never_replaced_and_a_contradiction_is_recorded(published):
    paper = published["claims"][0]["sources"][0]["citation"]
    claim = dict(published["claims"][0], impact={"classification": "inert", "measured_by": paper})
    entry = dict(published, claims=[claim])
    reconciled, _ = reconcile(entry, {C37: _measurement("critical", 30.0)})
    assert reconciled["claims"][0]["impact"] == {"classification": "inert", "measured_by": paper}
    assert [(d["claims"], d["origin"]) for d in reconciled["disagreements"]] == [([C37], "swindex")]
    assert validate_entry_dict(reconciled) == []
    assert (
        reconcile(reconciled, {C37: _measurement("critical", 30.0)})[0] == reconciled
    )  # running it again changes nothing


def test_a_disagreement_people_wrote_survives_reconciling_whatever_its_words(published):
    note = {"summary": "swindex verification looks wrong here, says a reader", "claims": [C37]}
    reconciled, _ = reconcile(dict(published, disagreements=[note]), {C37: _measurement("critical", 30.0)})
    assert reconciled["disagreements"] == [note]


def test_force_drops_swindex_claims_it_no_longer_finds_but_never_a_published_one(published):
    earlier = merge_entry(published, stamp(fresh_entry(detected(2, 5, 11)), TODAY), TODAY).entry
    assert len(earlier["claims"]) == 2
    kept_by_default = merge_entry(earlier, stamp(fresh_entry(), LATER), LATER).entry
    assert len(kept_by_default["claims"]) == 2
    forced = merge_entry(earlier, stamp(fresh_entry(), LATER), LATER, replace_own=True).entry
    assert [coordinate(c) for c in forced["claims"]] == [coordinate(published["claims"][0])]
    assert validate_entry_dict(forced) == []


def test_force_keeps_a_swindex_claim_that_people_discuss_in_a_disagreement(published):
    earlier = merge_entry(published, stamp(fresh_entry(detected(2, 5, 11)), TODAY), TODAY).entry
    earlier["disagreements"] = [
        {"summary": "Is this the same weight?", "claims": ["model.layers.2.mlp.down_proj.weight[5, 11]"]}
    ]
    forced = merge_entry(earlier, stamp(fresh_entry(), LATER), LATER, replace_own=True).entry
    assert "model.layers.2.mlp.down_proj.weight[5, 11]" in {coordinate(c) for c in forced["claims"]}
    assert validate_entry_dict(forced) == []
