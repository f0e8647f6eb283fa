"""--shard K/N and --only: deterministic, complete, disjoint selections."""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.modellist import ModelSpec
from builder.sharding import SelectionError, only, parse_shard, shard

ids = st.lists(st.from_regex(r"[a-z]{1,4}/[A-Za-z0-9]{1,6}", fullmatch=True), unique_by=str.casefold, max_size=40)


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 4 / 4 ", (4, 4))])
def test_parse_shard_accepts_k_of_n(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "1", "a/b", "-1/3", "1/2/3"])
def test_parse_shard_rejects_the_rest(text):
    with pytest.raises(SelectionError, match="K/N|between 1 and N"):
        parse_shard(text)


@given(ids, st.integers(min_value=1, max_value=7), st.randoms())
def test_shards_partition_the_list_whatever_its_order(names, n, rnd):
    specs = [ModelSpec(id=i) for i in names]
    shuffled = list(specs)
    rnd.shuffle(shuffled)
    parts = [shard(specs, k, n) for k in range(1, n + 1)]
    assert parts == [shard(shuffled, k, n) for k in range(1, n + 1)]
    flat = [s.id for part in parts for s in part]
    assert sorted(flat) == sorted(names)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_shards_are_round_robin_over_ids_sorted_case_insensitively():
    specs = [ModelSpec(id=i) for i in ["b/x", "A/y", "c/z", "a/x"]]
    assert [s.id for s in shard(specs, 1, 2)] == ["a/x", "b/x"]
    assert [s.id for s in shard(specs, 2, 2)] == ["A/y", "c/z"]


def test_only_is_case_insensitive_and_keeps_list_order():
    specs = [ModelSpec(id=i) for i in ["acme/one", "acme/two", "acme/three"]]
    assert [s.id for s in only(specs, ["ACME/THREE", "acme/one"])] == ["acme/one", "acme/three"]


def test_only_unknown_id_suggests_the_nearest():
    specs = [ModelSpec(id="huggyllama/llama-7b")]
    with pytest.raises(SelectionError, match="huggyllama/llama-7b"):
        only(specs, ["huggyllama/llama-7"])
