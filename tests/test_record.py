"""swindex._record: the records lookups hand out behave as frozen dataclasses do, without importing dataclasses."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swindex._record import FrozenRecordError, Record, field, fields
from swindex.records import Claim, Coordinate, Disagreement, Entry, Finding, Impact, RatioBound, Source, Verdict


class Point(Record):
    x: int
    y: int = 0
    tags: dict = field(default_factory=dict, compare=False)
    secret: str = field(default="", repr=False)


def test_fields_are_the_annotations_in_declaration_order():
    assert [f.name for f in fields(Point)] == ["x", "y", "tags", "secret"]
    assert Point.__match_args__ == ("x", "y", "tags", "secret")


def test_arguments_are_taken_by_position_or_name_with_defaults_filled_in():
    assert Point(1, 2).y == 2
    point = Point(x=1)
    assert (point.x, point.y, point.tags, point.secret) == (1, 0, {}, "")


def test_a_default_factory_gives_each_record_its_own_value():
    assert Point(1).tags is not Point(1).tags


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        ((), {}, "missing required argument 'x'"),
        ((1,), {"x": 2}, "multiple values for argument 'x'"),
        ((1,), {"z": 2}, "unexpected keyword argument 'z'"),
        ((1, 2, {}, "", 5), {}, "takes 4 positional arguments but 5 were given"),
    ],
)
def test_wrong_arguments_are_a_type_error_naming_the_argument(args, kwargs, says):
    with pytest.raises(TypeError, match=says):
        Point(*args, **kwargs)


def test_a_field_without_default_after_one_with_a_default_is_refused_when_the_class_is_made():
    with pytest.raises(TypeError, match="'b' has no default but follows 'a'"):

        class Bad(Record):  # noqa: F841
            a: int = 0
            b: int


def test_a_field_takes_a_default_or_a_factory_not_both():
    with pytest.raises(ValueError, match="not both"):
        field(default=1, default_factory=int)


@pytest.mark.parametrize("change", [lambda p: setattr(p, "x", 2), lambda p: delattr(p, "x")])
def test_records_are_immutable(change):
    point = Point(1)
    with pytest.raises(FrozenRecordError, match="immutable"):
        change(point)
    assert point.x == 1
    assert issubclass(FrozenRecordError, AttributeError)


def test_equality_and_hash_leave_out_fields_excluded_from_comparison():
    assert Point(1, 2, {"a": 1}) == Point(1, 2, {"b": 2})
    assert hash(Point(1, 2, {"a": 1})) == hash(Point(1, 2, {"b": 2}))
    assert Point(1, 2) != Point(1, 3)


def test_records_of_different_classes_are_never_equal():
    class Other(Record):
        x: int
        y: int = 0
        tags: dict = field(default_factory=dict, compare=False)
        secret: str = field(default="", repr=False)

    assert Point(1) != Other(1)


def test_repr_names_the_fields_it_shows():
    assert repr(Point(1, secret="hidden")) == "Point(x=1, y=0, tags={})"


def test_replace_makes_a_changed_copy():
    point = Point(1, 2)
    assert point.__replace__(y=5) == Point(1, 5)
    assert point.y == 2


@pytest.mark.parametrize("duplicate", [pickle.loads, copy.copy, copy.deepcopy])
def test_records_survive_pickling_and_copying(duplicate):
    record = Coordinate(
        layer=2, tensor="model.layers.2.mlp.down_proj.weight", row=3968, column=7003, expert=None, index=(3968, 7003)
    )
    assert (duplicate(pickle.dumps(record)) if duplicate is pickle.loads else duplicate(record)) == record


coordinates = st.builds(
    Coordinate,
    layer=st.integers(0, 200),
    tensor=st.sampled_from(["model.layers.1.mlp.down_proj.weight", "transformer.h.1.mlp.c_proj.weight"]),
    row=st.integers(0, 10**5),
    column=st.integers(0, 10**5),
    expert=st.none() | st.integers(0, 64),
    index=st.tuples(st.integers(0, 10**5), st.integers(0, 10**5)),
)


@given(coordinates, coordinates)
def test_records_are_equal_exactly_when_their_compared_fields_are(a, b):
    same = all(getattr(a, f.name) == getattr(b, f.name) for f in fields(Coordinate))
    assert (a == b) is same
    if same:
        assert hash(a) == hash(b)


@pytest.mark.parametrize(
    "record", [Source, Coordinate, RatioBound, Impact, Claim, Verdict, Finding, Disagreement, Entry]
)
def test_every_registry_record_is_a_frozen_record(record):
    assert issubclass(record, Record) and fields(record)


def _field_types(record: type) -> dict[str, str]:
    import dataclasses

    found = dataclasses.fields(record) if dataclasses.is_dataclass(record) else fields(record)
    return {f.name: str(record.__annotations__[f.name]) for f in found}


@pytest.mark.parametrize(
    "record",
    ["swindex.records:Claim", "swindex.detection.result:DetectedWeight", "swindex.checkpoint.report:WeightCheck"],
)
def test_every_record_of_a_weight_carries_its_position_as_one_coordinate(record):
    """A position is one type: claims, detected candidates and checked weights hold a Coordinate and derive the rest."""
    import importlib

    module, name = record.split(":")
    cls = getattr(importlib.import_module(module), name)
    types = _field_types(cls)
    assert types["location"] == "Coordinate"
    assert not {"layer", "row", "column", "expert"} & set(types), "a position field copied beside the Coordinate"
    assert all(isinstance(getattr(cls, n), property) for n in ("layer", "row", "column", "expert", "coordinate"))


def test_a_settled_impact_shows_its_ratio_as_an_estimate_with_the_bound_it_settled_on() -> None:
    bound = RatioBound(2.796, 6.419, 0.999)
    settled = Impact("critical", "swindex", "perplexity", 5.88, 24.9, 4.236, tokens=762, bound=bound)
    assert str(settled) == "critical (perplexity ~x4.24, 99.9% bound [2.796, 6.419] after 762 tokens)"


def test_an_impact_measured_on_the_whole_text_shows_its_ratio_plainly() -> None:
    whole = Impact("critical", "swindex", "perplexity", 5.88, 24.9, 4.2396, tokens=2032)
    assert str(whole) == "critical (perplexity x4.24)"
