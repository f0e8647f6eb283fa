"""swindex.history: a registry against an earlier one. A removed claim or entry is a problem; every other edit of a
kept claim is described for the reviewer (the CLI's side of it, `validate --against`, is in test_validate.py)."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from conftest import BASE_ENTRY
from swindex.history import claim_changes, compare_registries
from swindex.migrate import downgrade

COORDINATE = "model.layers.1.mlp.down_proj.weight[3, 7]"


def _claim(make_entry) -> dict:
    return copy.deepcopy(make_entry()["claims"][0])


def test_an_unchanged_claim_has_no_changes(make_entry):
    claim = _claim(make_entry)
    assert claim_changes(claim, copy.deepcopy(claim)) == []


def test_a_changed_status_is_described_old_to_new(make_entry):
    before = _claim(make_entry)
    after = dict(before, status="disputed")
    assert claim_changes(before, after) == ["status 'confirmed' -> 'disputed'"]


def test_sources_are_compared_by_citation(make_entry):
    before = _claim(make_entry)
    after = copy.deepcopy(before)
    removed = after["sources"].pop(0)["citation"]
    after["sources"][0]["url"] = "https://example.org/moved"
    after["sources"].append({"citation": "A new reproduction", "kind": "blog", "evidence": "ablation"})
    changes = claim_changes(before, after)
    assert f"source removed: {removed!r}" in changes
    assert "source added: 'A new reproduction'" in changes
    edited = [c for c in changes if c.startswith("source 'someone-else/reproduction@0123abc:README.md' edited")]
    assert edited == [
        "source 'someone-else/reproduction@0123abc:README.md' edited: "
        "url 'https://example.org/repo' -> 'https://example.org/moved'"
    ]


def test_reordered_sources_are_named_as_such(make_entry):
    before = _claim(make_entry)
    after = dict(before, sources=list(reversed(before["sources"])))
    assert claim_changes(before, after) == ["sources reordered"]


def test_each_changed_figure_of_an_impact_is_named(make_entry):
    before = dict(_claim(make_entry), impact={"classification": "critical", "ratio": 4.2, "measured_by": "swindex"})
    after = dict(before, impact={"classification": "significant", "ratio": 1.5, "measured_by": "swindex"})
    assert claim_changes(before, after) == [
        "impact classification 'critical' -> 'significant'",
        "impact ratio 4.2 -> 1.5",
    ]


def test_a_long_value_is_shortened_in_the_description(make_entry):
    before = _claim(make_entry)
    after = dict(before, status="x" * 200)
    (change,) = claim_changes(before, after)
    assert len(change) < 120 and change.endswith("...")


@given(
    field=st.sampled_from(["status", "value", "row", "column", "layer", "expert"]),
    value=st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=30), st.none()),
)
def test_any_change_of_a_watched_field_is_described(field, value):
    before = copy.deepcopy(BASE_ENTRY["claims"][0])
    after = dict(before, **{field: value})
    changes = claim_changes(before, after)
    assert changes == ([] if before.get(field) == value else [changes[0]])
    assert all(change.startswith(f"{field} ") for change in changes)


def test_an_unwatched_field_such_as_the_evidence_is_not_listed(make_entry):
    before = _claim(make_entry)
    after = dict(before, evidence={"detection": {"iteration": 1}})
    assert claim_changes(before, after) == []


def test_identical_registries_have_no_problems_and_no_changes(tmp_path, make_entry, write_registry):
    before = write_registry(make_entry(), root=tmp_path / "before")
    after = write_registry(make_entry(), root=tmp_path / "after")
    result = compare_registries(before, after)
    assert result.problems == () and result.changes == ()


def test_a_removed_claim_is_a_problem_naming_it_and_the_way_to_retire_it(tmp_path, make_entry, write_registry):
    before = write_registry(make_entry(), root=tmp_path / "before")
    after = write_registry(make_entry(claims=[]), root=tmp_path / "after")
    (problem,) = compare_registries(before, after).problems
    assert problem.field == "claims" and COORDINATE in problem.message and "withdrawn or disputed" in problem.message


def test_a_removed_entry_is_a_problem(tmp_path, make_entry, write_registry):
    before = write_registry(make_entry(), root=tmp_path / "before")
    (tmp_path / "after").mkdir()
    (problem,) = compare_registries(before, tmp_path / "after").problems
    assert "acme/tiny-llama was removed" in problem.message


def test_an_edit_is_listed_under_its_model_and_coordinate(tmp_path, make_entry, write_registry):
    entry = make_entry()
    before = write_registry(entry, root=tmp_path / "before")
    edited = copy.deepcopy(entry)
    edited["claims"][0]["status"] = "disputed"
    after = write_registry(edited, root=tmp_path / "after")
    result = compare_registries(before, after)
    assert result.problems == ()
    assert result.changes == (f"acme/tiny-llama: {COORDINATE}: status 'confirmed' -> 'disputed'",)


def test_an_earlier_schema_1_registry_is_read_as_schema_2_before_comparing(tmp_path, make_entry, write_registry):
    """A migration is checked for lost claims: schema 1's super_weights are matched to schema 2's claims."""
    entry = make_entry()
    before = write_registry(downgrade(entry), root=tmp_path / "before")
    after = write_registry(entry, root=tmp_path / "after")
    result = compare_registries(before, after)
    assert result.problems == () and result.changes == ()
