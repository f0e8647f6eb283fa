"""The contributor's path: CONTRIBUTING.md's example validates as written, `swindex new` starts an entry that
validates, and `swindex validate --fix` fills what follows from the data without losing anything."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swindex.cli import main
from swindex.contribute import fill, fix_file
from swindex.validate import entry_files, validate_registry
from swindex.yamlio import load_yaml, parse_yaml

REPO = Path(__file__).resolve().parent.parent
CONTRIBUTING = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
EXAMPLE = re.search(r"<!-- example entry -->\n```yaml\n(.*?)```", CONTRIBUTING, re.S)
TODAY = "2026-12-05"


def _example() -> str:
    assert EXAMPLE is not None, "CONTRIBUTING.md lost its example entry"
    return EXAMPLE.group(1)


def _write(tmp_path: Path, text: str) -> Path:
    data, _ = parse_yaml(text)
    path = tmp_path / "registry" / f"{data['id']}.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_contributing_example_validates_on_the_first_try(tmp_path):
    path = _write(tmp_path, _example())
    assert [str(p) for p in validate_registry(tmp_path / "registry")] == []
    assert load_yaml(path)["schema_version"] == 2


def test_fix_fills_the_verdict_and_unmeasured_impact_and_prints_what_it_wrote(tmp_path, capsys):
    bare = re.sub(r"verdict:\n(  .*\n)+", "", _example())
    bare = re.sub(r"  impact:\n    classification: unmeasured\n", "", bare)
    path = _write(tmp_path, bare)
    assert main(["validate", "--registry", str(tmp_path / "registry"), str(path)]) == 1
    capsys.readouterr()
    assert main(["validate", "--fix", "--registry", str(tmp_path / "registry"), str(path)]) == 0
    err = capsys.readouterr().err
    assert "wrote verdict: {outcome: super_weights, super_weights: 1}" in err and "claims[0].impact" in err
    assert load_yaml(path) == parse_yaml(_example())[0]
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=")


def test_fix_fills_a_missing_status_from_the_sources(tmp_path):
    path = _write(tmp_path, _example().replace("  status: reported\n", ""))
    assert fix_file(path, TODAY) == ("claims[0].status: reported (what its sources give)",)
    assert validate_registry(tmp_path / "registry") == []


def test_fix_writes_nothing_when_nothing_follows(tmp_path):
    path = _write(tmp_path, _example())
    before = path.stat().st_mtime_ns, path.read_bytes()
    assert fix_file(path, TODAY) == ()
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_fix_refuses_to_drop_a_comment_and_leaves_the_file_alone(tmp_path, capsys):
    text = re.sub(r"verdict:\n(  .*\n)+", "", _example())
    text = text.replace("  row: 3968\n", "  row: 3968  # from Table 3, not Table 2\n")
    path = _write(tmp_path, text)
    assert main(["validate", "--fix", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would drop the comment on line" in err
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("path", entry_files(REPO / "registry"), ids=lambda p: p.relative_to(REPO).as_posix())
def test_the_shipped_registry_has_nothing_left_to_fill(path):
    data = load_yaml(path)
    assert fill(data, TODAY) == (data, ())


def test_new_writes_a_skeleton_that_validates_and_never_overwrites(tmp_path, capsys):
    registry = tmp_path / "registry"
    assert main(["new", "acme/Tiny-7B", "--architecture", "LlamaForCausalLM", "--registry", str(registry)]) == 0
    path = registry / "acme" / "Tiny-7B.yaml"
    assert validate_registry(registry) == [] and load_yaml(path)["verdict"] == {"outcome": "not_measured"}
    before = path.read_bytes()
    assert main(["new", "acme/Tiny-7B", "--architecture", "GPT2LMHeadModel", "--registry", str(registry)]) == 1
    assert "already exists" in capsys.readouterr().err and path.read_bytes() == before


def test_new_refuses_an_id_that_is_not_one_in_one_line(tmp_path, capsys):
    assert main(["new", "../escape", "--architecture", "LlamaForCausalLM", "--registry", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a model id" in err and not list(tmp_path.iterdir())


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fill_restores_exactly_what_follows_from_the_data_and_keeps_everything_else(data):
    path = data.draw(st.sampled_from(entry_files(REPO / "registry")))
    original = load_yaml(path)
    stripped = copy.deepcopy(original)
    if data.draw(st.booleans(), label="drop the verdict"):
        stripped.pop("verdict")
    for claim in stripped["claims"]:
        if claim["impact"] == {"classification": "unmeasured"} and data.draw(st.booleans(), label="drop an impact"):
            del claim["impact"]
    filled, wrote = fill(stripped, TODAY)
    assert filled == original and bool(wrote) == (stripped != original)


@pytest.mark.parametrize("path", entry_files(REPO / "registry"), ids=lambda p: p.relative_to(REPO).as_posix())
def test_fix_writes_a_stripped_registry_entry_back_byte_for_byte(path, tmp_path):
    original = path.read_text(encoding="utf-8")
    stripped = re.sub(r"^verdict:\n(  .*\n)+", "", original, flags=re.M)
    stripped = stripped.replace("  impact:\n    classification: unmeasured\n", "")
    copy_path = tmp_path / path.name
    copy_path.write_text(stripped, encoding="utf-8")
    assert fix_file(copy_path, TODAY)
    assert copy_path.read_text(encoding="utf-8") == original
