"""The claim rules, each pinned once: what counts as a super weight, what quantization keeps, which status the
sources give, how figures are classified, and how swindex recognises the disagreements it wrote."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swindex.claims import (
    IMPACT_BANDS,
    claims_of,
    classify,
    has_standing_claim,
    is_swindex_disagreement,
    reconcile,
    status_from_sources,
    super_weights,
    weights_to_keep,
)
from swindex.records import Claim, Source

TENSOR = "model.layers.1.mlp.down_proj.weight"
PAPER = {"citation": "Someone (2024), Table 2", "kind": "paper", "evidence": "reported", "party": "Someone 2024"}
THEIR_CODE = {"citation": "someone/code@0123:map.py", "kind": "code", "evidence": "reported", "party": "Someone 2024"}
DETECTOR = {"citation": "other/repo@4567:results.json", "kind": "repository", "evidence": "detected"}
SECOND_DETECTOR = {"citation": "third/blog@89ab:post.md", "kind": "blog", "evidence": "detected"}
ZEROED = {"citation": "fourth/notebook@cdef:nb.ipynb", "kind": "notebook", "evidence": "ablation"}
SWINDEX = {"citation": "swindex 0.1.0 detect", "kind": "swindex", "evidence": "detected"}
SWINDEX_AGAIN = {"citation": "swindex 0.2.0 detect", "kind": "swindex", "evidence": "detected"}
COPY = {"citation": "fifth/fork@0000:map.py", "kind": "repository", "evidence": "copied"}
HEURISTIC = {"citation": "sixth/nb@1111:nb.ipynb", "kind": "notebook", "evidence": "heuristic"}


def _sources(*dicts):
    return [Source.from_dict(d) for d in dicts]


@pytest.mark.parametrize(
    ("sources", "status"),
    [
        ((PAPER,), "reported"),
        ((PAPER, THEIR_CODE), "reported"),  # a paper and its own code are one party
        ((PAPER, DETECTOR), "confirmed"),
        ((DETECTOR,), "unverified"),  # detector-only: nobody zeroed it
        (
            (dict(DETECTOR, party="other/repo"), dict(DETECTOR, citation="other/repo@4567:nb", party="other/repo")),
            "unverified",
        ),
        ((DETECTOR, SECOND_DETECTOR), "confirmed"),  # two independent parties
        ((ZEROED,), "reported"),
        ((SWINDEX,), "detected"),
        ((SWINDEX, SWINDEX_AGAIN), "detected"),  # every swindex run is one party
        ((SWINDEX, DETECTOR), "confirmed"),
        ((COPY,), "unverified"),
        ((HEURISTIC, COPY), "unverified"),
        ((PAPER, COPY, HEURISTIC), "reported"),
    ],
    ids=[
        "paper",
        "paper-and-its-code",
        "paper-and-a-detector",
        "detector-only",
        "one-party-two-citations",
        "two-detectors",
        "one-ablation",
        "swindex-only",
        "two-swindex-runs",
        "swindex-and-a-detector",
        "copy",
        "heuristic-and-copy",
        "paper-copy-heuristic",
    ],
)
def test_the_status_follows_from_the_sources_evidence_and_parties(sources, status):
    assert status_from_sources(_sources(*(dict(s) for s in sources))) == status


def test_the_party_field_decides_independence_and_the_citation_stands_in_without_it():
    fabian = [dict(DETECTOR, party="other/repo"), dict(ZEROED, citation="other/repo@9999:nb.ipynb", party="other/repo")]
    assert status_from_sources(_sources(*fabian)) == "reported"
    assert status_from_sources(_sources(*(dict(s, party=None) for s in fabian))) == "confirmed"


def _claim(status: str, impact: str, column: int = 7) -> Claim:
    return Claim.from_dict(
        {
            "layer": 1,
            "tensor": TENSOR,
            "row": 3,
            "column": column,
            "expert": None,
            "index": [3, column],
            "status": status,
            "impact": {"classification": impact},
            "sources": [SWINDEX if status == "detected" else PAPER],
        }
    )


@pytest.mark.parametrize(
    ("status", "impact", "super_weight", "kept"),
    [
        ("confirmed", "unmeasured", True, True),
        ("reported", "unmeasured", True, True),
        ("detected", "unmeasured", False, True),  # a swindex candidate nobody measured
        ("reported", "critical", True, True),
        ("detected", "critical", True, True),
        ("reported", "significant", False, True),
        ("reported", "inert", False, False),
        ("unverified", "critical", False, False),
        ("disputed", "unmeasured", False, False),
        ("withdrawn", "critical", False, False),
    ],
)
def test_super_weights_and_weights_to_keep_follow_status_and_impact(status, impact, super_weight, kept):
    claim = _claim(status, impact)
    assert (claim.is_super_weight, super_weights([claim]) == (claim,)) == (super_weight, super_weight)
    assert (weights_to_keep([claim]) == (claim,)) == kept


def test_an_entry_dict_and_its_entry_count_the_same_way():
    entry = {
        "claims": [
            _claim("reported", "unmeasured").location.to_dict()
            | {"status": "reported", "impact": {"classification": "unmeasured"}, "sources": [PAPER]}
        ]
    }
    (claim,) = claims_of(entry)
    assert super_weights(claims_of(entry)) == (claim,) and has_standing_claim(entry)
    assert not has_standing_claim({"claims": [dict(entry["claims"][0], status="unverified")]})


@pytest.mark.parametrize(
    ("metric", "figure", "expected"),
    [
        ("perplexity", 497.37, "critical"),
        ("perplexity", 1.0712, "significant"),
        ("perplexity", 1.0267, "inert"),
        ("accuracy", 0.5367, "critical"),
        ("accuracy", 0.7474, "critical"),
        ("accuracy", 0.93, "significant"),
        ("accuracy", 0.9789, "inert"),
        ("row_ablation_nll", 7.989, "critical"),
        ("row_ablation_nll", 1.0237, "significant"),
        ("row_ablation_nll", 1.0092, "inert"),
        ("embedding_shift", 5.46e-05, "inert"),
        ("activation", 3.0, "unmeasured"),
    ],
)
def test_each_metric_has_its_own_documented_bands(metric, figure, expected):
    assert classify(metric, figure) == expected


@given(metric=st.sampled_from(sorted(IMPACT_BANDS)), a=st.floats(0, 1e6), b=st.floats(0, 1e6))
def test_a_worse_figure_never_gets_a_milder_class(metric, a, b):
    order = {"inert": 0, "significant": 1, "critical": 2}
    worse, milder = (max(a, b), min(a, b)) if IMPACT_BANDS[metric].higher_is_worse else (min(a, b), max(a, b))
    assert order[classify(metric, worse)] >= order[classify(metric, milder)]


def test_swindex_recognises_its_own_disagreements_by_origin_and_step_never_by_their_words():
    ours = {"summary": "anything at all", "claims": [f"{TENSOR}[3, 7]"], "origin": "swindex", "step": "verification"}
    people = {"summary": "swindex verification measured this wrongly, says a reader", "claims": [f"{TENSOR}[3, 7]"]}
    assert is_swindex_disagreement(ours, "verification") and not is_swindex_disagreement(ours, "detection")
    assert not is_swindex_disagreement(people, "verification")


def test_reconcile_withdraws_only_the_disagreements_verification_wrote():
    claim = _claim("reported", "inert").location.to_dict() | {
        "status": "reported",
        "sources": [PAPER],
        "impact": {"classification": "inert", "measured_by": PAPER["citation"]},
    }
    coordinate = f"{TENSOR}[3, 7]"
    ours = {"summary": "old words", "claims": [coordinate], "origin": "swindex", "step": "verification"}
    detector = {"summary": "old words", "claims": [coordinate], "origin": "swindex", "step": "detection"}
    people = {"summary": "swindex verification says so, but a reader disagrees", "claims": [coordinate]}
    entry = {"claims": [claim], "disagreements": [ours, detector, people]}
    measured = {"metric": "perplexity", "original": 10.0, "zeroed": 10.1, "ratio": 1.01, "classification": "inert"}
    result, changed = reconcile(entry, {coordinate: measured})
    assert result["disagreements"] == [detector, people] and f"{coordinate}: disagreement withdrawn" in changed


def _enum(*path: str) -> list[str]:
    from swindex.schema import entry_schema

    node = entry_schema()["$defs"]
    for key in path:
        node = node[key]
    return list(node["enum"])


@pytest.mark.parametrize(
    "name, path",
    [
        ("STATUSES", ("status",)),
        ("IMPACTS", ("impact", "properties", "classification")),
        ("OUTCOMES", ("verdict", "properties", "outcome")),
    ],
)
def test_the_records_name_the_schemas_values_in_its_order(name, path):
    """The schema is the file format's one home;
    the records' tuples must spell its enums exactly (a copy that drifts fails here)."""
    from swindex import records

    assert list(getattr(records, name)) == _enum(*path)
