"""swindex._hubcache: the model id and commit a Hub cache path names, on any platform's separators."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swindex._hubcache import is_commit_sha, parse_cache_path, parse_snapshot

SHA = "0123456789abcdef0123456789abcdef01234567"

# Hub repository names: letters, digits, "-", "_" and "."; never "--" (the cache's own separator) nor a leading "-"
_part = st.text(string.ascii_letters + string.digits + "_.", min_size=1, max_size=8)
names = st.lists(_part, min_size=1, max_size=3).map("-".join)
shas = st.text("0123456789abcdef", min_size=40, max_size=40)
separators = st.sampled_from(["/", "\\"])
prefixes = st.sampled_from(
    ["", "/home/me/.cache/huggingface/hub", "C:\\Users\\Me\\.cache\\huggingface\\hub", "relative/hub", "~/hub"]
)
suffixes = st.sampled_from(["", "config.json", "model-00001-of-00002.safetensors", "sub/dir/tiny.Q4_1.gguf"])


def _join(separator: str, *parts: str) -> str:
    return separator.join(p for p in parts if p)


@given(org=names, name=names, sha=shas, separator=separators, prefix=prefixes, suffix=suffixes)
def test_a_snapshot_path_names_its_model_and_commit(org, name, sha, separator, prefix, suffix):
    path = _join(separator, prefix, f"models--{org}--{name}", "snapshots", sha, suffix.replace("/", separator))
    assert parse_cache_path(path) == (f"{org}/{name}", sha)


@given(name=names, sha=shas, separator=separators, prefix=prefixes)
def test_a_model_without_an_organisation_is_named_alone(name, sha, separator, prefix):
    assert parse_cache_path(_join(separator, prefix, f"models--{name}", "snapshots", sha)) == (name, sha)


@given(org=names, name=names, separator=separators, prefix=prefixes, rest=st.sampled_from(["", "blobs", "refs/main"]))
def test_a_model_folder_outside_a_snapshot_names_the_model_but_no_commit(org, name, separator, prefix, rest):
    path = _join(separator, prefix, f"models--{org}--{name}", rest.replace("/", separator))
    assert parse_cache_path(path) == (f"{org}/{name}", None)


@given(st.text(max_size=80).filter(lambda text: "models--" not in text))
def test_a_path_without_a_cache_folder_names_nothing(text):
    assert parse_cache_path(text) == (None, None)


@pytest.mark.parametrize(
    "path, expected",
    [
        ("hub/models--acme--tiny/snapshots/" + SHA + "0/config.json", ("acme/tiny", None)),  # 41 hex digits
        ("hub/models--acme--tiny/snapshots/" + SHA[:39], ("acme/tiny", None)),
        ("hub/models--acme--tiny/snapshots/" + SHA.upper(), ("acme/tiny", None)),  # the cache writes lower case
        ("hub/notmodels--acme--tiny/snapshots/" + SHA, (None, None)),  # a folder that merely ends so
        ("hub/models--acme--tiny--v2/snapshots/" + SHA, ("acme/tiny--v2", SHA)),
        ("models--acme--tiny", ("acme/tiny", None)),
        ("acme/tiny", (None, None)),
        ("", (None, None)),
    ],
)
def test_odd_paths(path, expected):
    assert parse_cache_path(path) == expected


def test_a_local_snapshot_folder_names_its_model_and_commit(tmp_path):
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    assert parse_snapshot(snapshot) == ("acme/tiny", SHA)
    assert parse_snapshot(snapshot.parent.parent) == (None, None), "a model folder is not a snapshot"


def test_a_link_to_a_snapshot_file_is_read_where_it_points(tmp_path):
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    link = tmp_path / "elsewhere.json"
    link.symlink_to(snapshot / "config.json")
    assert parse_snapshot(link) == ("acme/tiny", SHA)


@pytest.mark.parametrize(
    "text, expected", [(SHA, True), (SHA[:12], False), ("main", False), (None, False), ("", False)]
)
def test_only_a_full_lower_case_sha_is_a_commit(text, expected):
    assert is_commit_sha(text) is expected
