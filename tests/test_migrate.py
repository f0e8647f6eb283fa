"""swindex.migrate.upgrade: a schema-1 entry read as schema 2, every claim kept, provenance and impact split apart.

Inputs are checked against the published schema 1 first, so each test starts from an entry a schema-1 writer made.
"""

from __future__ import annotations

import copy

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swindex.migrate import downgrade, upgrade
from swindex.schema import entry_schema_v1
from swindex.validate import validate_entry_dict

PAPER = {"citation": "Somebody et al. 2024, Table 2", "kind": "paper", "evidence": "ablation"}
REPRODUCTION = {"citation": "someone-else/reproduction@0123abc:README.md", "kind": "repository", "evidence": "detected"}
DETECTOR = {"citation": "swindex 0.1.0 detector", "kind": "swindex", "evidence": "detected"}
MEASURED = {"metric": "perplexity", "zeroed": 420.0, "ratio": 42.0, "classification": "critical"}


def v1_claim(row: int = 3, status: str = "reported", sources: list | None = None, **fields: object) -> dict:
    claim = {
        "layer": 1,
        "tensor": "model.layers.1.mlp.down_proj.weight",
        "row": row,
        "column": 7,
        "expert": None,
        "index": [row, 7],
        "value": -1.5,
        "status": status,
        "sources": copy.deepcopy(sources if sources is not None else [PAPER]),
    }
    claim.update(copy.deepcopy(fields))
    return claim


def v1_entry(*claims: dict, **fields: object) -> dict:
    """A schema-1 entry holding ``claims``, refused here unless schema 1 accepts it."""
    entry = {
        "schema_version": 1,
        "id": "acme/tiny-llama",
        "architecture": "LlamaForCausalLM",
        "family": "llama",
        "revision": None,
        "modified": "2026-11-28",
        "dimensions": {"num_layers": 4, "hidden_size": 64, "intermediate_size": 172},
        "super_weights": list(claims),
    }
    entry.update(copy.deepcopy(fields))
    jsonschema.Draft202012Validator(entry_schema_v1()).validate(entry)
    return entry


def test_a_schema_2_entry_comes_back_equal_and_as_a_copy(make_entry):
    entry = make_entry()
    upgraded = upgrade(entry)
    assert upgraded == entry and upgraded is not entry
    upgraded["claims"].clear()
    assert entry["claims"]


def test_an_upgraded_entry_is_a_valid_schema_2_entry():
    entry = v1_entry(
        v1_claim(), v1_claim(row=5, status="inert"), v1_claim(row=9, status="detected", sources=[DETECTOR])
    )
    upgraded = upgrade(entry)
    assert upgraded["schema_version"] == 2 and "super_weights" not in upgraded
    assert validate_entry_dict(upgraded) == []


def test_the_claims_list_keeps_its_place_among_the_fields():
    """The fields stay in the order the file wrote them, ``verdict`` just before ``claims``, so a diff stays small."""
    upgraded = upgrade(v1_entry(v1_claim(), notes="kept"))
    assert list(upgraded)[-3:] == ["verdict", "claims", "notes"]


def test_an_inert_status_becomes_provenance_and_an_inert_impact_credited_to_the_source_that_measured_it():
    harmless = dict(PAPER, effect="perplexity rose 0.1%")
    (claim,) = upgrade(v1_entry(v1_claim(status="inert", sources=[REPRODUCTION, harmless])))["claims"]
    assert claim["status"] == "confirmed"  # two independent parties, as the schema-2 counting rule says
    assert claim["impact"] == {
        "classification": "inert",
        "measured_by": PAPER["citation"],
        "note": "perplexity rose 0.1%",
    }


def test_swindexs_own_measurement_moves_from_evidence_into_the_impact():
    claim = v1_claim(evidence={"impact": MEASURED})
    (upgraded,) = upgrade(v1_entry(claim))["claims"]
    assert upgraded["impact"] == dict(MEASURED, measured_by="swindex")
    assert "evidence" not in upgraded  # nothing else was in it


def test_detection_evidence_stays_where_it_was():
    detection = {"iteration": 1, "input_activation": -90.0, "output_activation": 400.0, "token": 0}
    claim = v1_claim(status="detected", sources=[DETECTOR], evidence={"detection": detection, "impact": MEASURED})
    (upgraded,) = upgrade(v1_entry(claim))["claims"]
    assert upgraded["evidence"] == {"detection": detection}


def test_a_claim_nobody_measured_is_unmeasured():
    (claim,) = upgrade(v1_entry(v1_claim()))["claims"]
    assert claim["impact"] == {"classification": "unmeasured"} and claim["status"] == "reported"


def test_the_verdict_is_derived_from_the_upgraded_claims():
    upgraded = upgrade(v1_entry(v1_claim(evidence={"impact": MEASURED})))
    assert upgraded["verdict"]["outcome"] == "super_weights" and upgraded["verdict"]["super_weights"] == 1


def test_people_s_disagreements_are_kept_word_for_word():
    disagreement = {
        "summary": "the paper and the repository disagree",
        "claims": ["model.layers.1.mlp.down_proj.weight[3, 7]"],
    }
    upgraded = upgrade(v1_entry(v1_claim(), disagreements=[disagreement]))
    assert upgraded["disagreements"] == [disagreement]


def test_the_entry_given_is_not_changed():
    entry = v1_entry(v1_claim(status="inert"), v1_claim(row=5, evidence={"impact": MEASURED}))
    before = copy.deepcopy(entry)
    upgrade(entry)
    assert entry == before


V1_STATUSES = tuple(entry_schema_v1()["$defs"]["status"]["enum"])


@given(
    st.lists(
        st.tuples(st.sampled_from(V1_STATUSES), st.sampled_from([[PAPER], [DETECTOR], [PAPER, REPRODUCTION]])),
        max_size=6,
    )
)
def test_no_claim_or_source_is_lost(rows):
    claims = [v1_claim(row=row, status=status, sources=sources) for row, (status, sources) in enumerate(rows)]
    upgraded = upgrade(v1_entry(*claims))["claims"]
    assert [(c["tensor"], c["index"], c["sources"]) for c in upgraded] == [
        (c["tensor"], c["index"], c["sources"]) for c in claims
    ]


@pytest.mark.parametrize("status", ["reported", "confirmed", "disputed", "withdrawn", "unverified"])
def test_a_status_schema_2_still_has_is_kept(status):
    sources = [PAPER, REPRODUCTION] if status == "confirmed" else [PAPER]
    (claim,) = upgrade(v1_entry(v1_claim(status=status, sources=sources)))["claims"]
    assert claim["status"] == status


def test_upgrading_what_downgrade_wrote_gives_the_statuses_back(make_entry):
    """The v1 API is a downgrade; reading it back as schema 2 loses no claim and no status."""
    entry = make_entry()
    again = upgrade(downgrade(entry))
    assert [(c["tensor"], c["index"], c["status"]) for c in again["claims"]] == [
        (c["tensor"], c["index"], c["status"]) for c in entry["claims"]
    ]
