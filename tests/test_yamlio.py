"""The registry's YAML dialect: YAML 1.2 scalars, nothing executable, nothing ambiguous."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swindex.errors import RegistryFileError
from swindex.yamlio import MAX_FILE_BYTES, MAX_INT_DIGITS, dump_yaml, load_yaml, parse_yaml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: 1e-6", 1e-6),
        ("v: -2.5E+3", -2500.0),
        ("v: .5", 0.5),
        ("v: no", "no"),
        ("v: yes", "yes"),
        ("v: off", "off"),
        ("v: true", True),
        ("v: 2024-11-11", "2024-11-11"),
        ("v: 12:30", "12:30"),
        ("v: ~", None),
        ("v: 1_000", "1_000"),
        ('v: "012"', "012"),
    ],
)
def test_scalars_follow_yaml_1_2(text, expected):
    assert parse_yaml(text)[0] == {"v": expected}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v: 012", "leading zero"),
        ("v: 0x1F", "in decimal \\(31\\)"),
        ("v: 0o7600", "in decimal \\(3968\\)"),
        ("v: .inf", "non-finite"),
        ("v: .nan", "non-finite"),
        ("a: 1\na: 2", "duplicate key 'a'"),
        ("a: &x 1\nb: *x", "anchors and aliases"),
        ("<<: {a: 1}", "merge keys"),
        ("v: !!binary aGk=", "not allowed"),
        ("v: !!python/name:os.system", "not allowed"),
        ("v: !custom 1", "not allowed"),
        ('v: !!int "100"', "explicit tag"),
        ("v: ! 100", "explicit tag"),
        ("v: !!str 3", "explicit tag"),
        ("%YAML 1.1\n---\nv: 1", "directives"),
        ("? [1, 2]\n: x", "must be a string"),
        ("v: [1, 2", "malformed YAML"),
    ],
)
def test_ambiguous_or_unsafe_yaml_is_rejected_with_its_line(text, message):
    with pytest.raises(RegistryFileError, match=message) as info:
        parse_yaml(text, "f.yaml")
    assert info.value.path == "f.yaml"
    assert info.value.line is not None


def test_billion_laughs_is_rejected_without_expanding(tmp_path):
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines))
    with pytest.raises(RegistryFileError, match="aliases"):
        load_yaml(path)


def test_python_tags_never_execute(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'id: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(RegistryFileError, match="tag"):
        load_yaml(path)
    assert not marker.exists()


def test_non_utf8_bytes_are_reported_with_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"id: acme/x\nnotes: caf\xe9\n")
    with pytest.raises(RegistryFileError, match=r"not valid UTF-8 \(byte 0xe9") as info:
        load_yaml(path)
    assert info.value.line == 2


def test_oversized_files_are_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("notes: '" + "x" * (MAX_FILE_BYTES + 1) + "'\n")
    with pytest.raises(RegistryFileError, match="over the"):
        load_yaml(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(RegistryFileError, match="missing.yaml: cannot read"):
        load_yaml(tmp_path / "missing.yaml")


def test_line_map_points_at_keys():
    _, lines = parse_yaml("id: x\nclaims:\n- layer: 1\n  row: 2\n")
    assert lines[("claims", 0, "row")] == 4


def test_dump_adds_header_comment():
    assert dump_yaml({"a": 1}, header="hello\nworld").startswith("# hello\n# world\n")


_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
    | st.sampled_from(
        ["no", "yes", "on", "off", "012", "1e-6", "0x10", "2024-01-01", "~", "null", "True", ".inf", "1_000", ""]
    )
)
_data = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10), _data, max_size=5
    )
)
def test_dump_then_load_round_trips_exactly(data):
    loaded, _ = parse_yaml(dump_yaml(data))
    assert loaded == data
    for key, value in data.items():
        if isinstance(value, float):
            assert math.copysign(1, loaded[key]) == math.copysign(1, value)


def test_an_empty_value_is_null():
    assert parse_yaml("a:\nb: ''\n")[0] == {"a": None, "b": ""}


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50_000,
        "- " * 50_000 + "x",
        "{a: " * 50_000,
        '["]", ' * 20_000,
        "\n".join(" " * i + "a:" for i in range(3_000)),
    ],
    ids=["flow-sequences", "block-sequences", "flow-mappings", "brackets-hidden-in-strings", "indented-mappings"],
)
def test_hostile_nesting_is_an_error_not_a_crash(text):
    with pytest.raises(RegistryFileError, match="nesting deeper than"):
        parse_yaml(text, "deep.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "v: " + "9" * 5000,
        "v: -" + "1" * 4400,
        "v: [1, " + "2" * 21 + "]",
        "v: 0x" + "f" * 30,
        "v: 0" + "1" * 4400,
        "? " + "9" * 4400 + "\n: x",
    ],
    ids=["over-python-limit", "negative", "in-a-list", "hexadecimal", "leading-zero", "as-a-key"],
)
def test_an_integer_too_long_to_be_a_count_is_refused_at_its_line(text):
    with pytest.raises(RegistryFileError, match="digits is too long") as info:
        parse_yaml("id: acme/x\n" + text + "\n", "f.yaml")
    assert info.value.line == 2


def test_a_refused_integer_names_its_field():
    with pytest.raises(RegistryFileError) as info:
        parse_yaml("claims:\n- row: " + "7" * 30 + "\n", "f.yaml")
    assert (info.value.line, info.value.field) == (2, "claims[0].row")


def test_integers_up_to_the_digit_limit_are_read():
    assert parse_yaml("v: " + "9" * MAX_INT_DIGITS)[0] == {"v": int("9" * MAX_INT_DIGITS)}


@pytest.mark.parametrize(
    "mark", ["\u2028", "\u2029", "\x85", "\r"], ids=["line-separator", "paragraph-separator", "nel", "bare-cr"]
)
@pytest.mark.parametrize(
    "notes", ["one{}two", "'one{}two'", '"one{}two"'], ids=["plain", "single-quoted", "double-quoted"]
)
def test_line_breaks_git_does_not_count_are_refused_at_git_line_and_field(mark, notes):
    text = "id: acme/x\nnotes: " + notes.format(mark) + "\nrow: 3\n"
    with pytest.raises(RegistryFileError, match="line break to YAML but not to git") as info:
        parse_yaml(text, "f.yaml")
    assert (info.value.line, info.value.field) == (2, "notes")


def test_a_hidden_line_break_is_counted_as_git_counts_lines():
    with pytest.raises(RegistryFileError) as info:
        parse_yaml("a: 1\u2028b: 2\nc: 3\rd: 4\n", "f.yaml")
    assert info.value.line == 1


def test_windows_line_endings_are_plain_line_breaks():
    assert parse_yaml("a: 1\r\nb: two\r\n")[0] == {"a": 1, "b": "two"}


@pytest.mark.parametrize("value", ["x\u2028y", "\u2029", "a\x85b", "a\rb", "a\r\nb"])
def test_dumped_text_never_holds_a_hidden_line_break(value):
    text = dump_yaml({"notes": value})
    assert not any(c in text for c in "\u2028\u2029\x85\r")
    assert parse_yaml(text)[0] == {"notes": value}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    pipe = tmp_path / "entry.yaml"
    os.mkfifo(pipe)
    with pytest.raises(RegistryFileError, match="not a regular file"):
        load_yaml(pipe)


def test_an_unreadable_file_is_named_escaped(tmp_path):
    path = tmp_path / "evil\x1b[2K\nname.yaml"
    path.write_text("a: [\n", encoding="utf-8")
    with pytest.raises(RegistryFileError) as info:
        load_yaml(path)
    assert str(info.value).isprintable() and "evil\\x1b[2K\\nname.yaml" in str(info.value)
