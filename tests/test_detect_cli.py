"""`swindex detect` end to end on planted model directories."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from planted import Plant, build_planted, save_planted  # noqa: E402

from swindex.cli import main  # noqa: E402
from swindex.yamlio import load_yaml  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, planted = build_planted("llama", plants=(Plant(1, 5, 7), Plant(2, 9, 11, input=20.0, weight=30.0)))
    return save_planted(model, tmp_path_factory.mktemp("models") / "planted-llama"), planted


def test_writes_a_yaml_entry_that_validates(model_dir, tmp_path, capsys):
    path, planted = model_dir
    out = tmp_path / "registry" / "acme" / "planted-llama.yaml"
    assert main(["detect", str(path), "--output", str(out), "--id", "acme/planted-llama"]) == 0
    err = capsys.readouterr().err
    assert "2 candidate(s)" in err and "model.layers.2.mlp.down_proj.weight[9, 11]" in err
    entry = load_yaml(out)
    assert [sw["index"] for sw in entry["claims"]] == [list(p.index) for p in planted]
    assert main(["validate", str(out), "--registry", str(tmp_path / "registry")]) == 0


def test_ends_with_the_candidate_count_and_the_command_that_measures_them(model_dir, tmp_path, capsys):
    path, _ = model_dir
    out = tmp_path / "entry.yaml"
    assert main(["detect", str(path), "--output", str(out)]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-3:]
    assert last[0].startswith("2 candidate(s) found")
    assert last[1].split() == ["swindex", "verify", str(path), "--entry", str(out), "--output", str(out)]


def test_the_summary_groups_candidates_by_the_channel_they_feed(model_dir, capsys):
    path, planted = model_dir
    assert main(["detect", str(path), "--json"]) == 0
    err = capsys.readouterr().err
    for weight in planted:
        channel = err.index(f"channel {weight.row}: 1 candidate(s)")
        assert err.index(weight.coordinate) > channel


@pytest.mark.slow
def test_verify_measures_the_candidates_and_records_the_verdict(model_dir, tmp_path, capsys):
    path, planted = model_dir
    out = tmp_path / "entry.yaml"
    assert main(["detect", str(path), "--output", str(out), "--verify"]) == 0
    entry = load_yaml(out)
    assert [c["impact"]["measured_by"] for c in entry["claims"]] == ["swindex"] * len(planted)
    assert entry["verdict"]["outcome"] != "not_measured"
    assert "verdict:" in capsys.readouterr().err


def test_json_goes_to_stdout(model_dir, capsys):
    path, planted = model_dir
    assert main(["detect", str(path), "--json", "--input-ids", "1,40,41,42,43"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry["id"] == "planted-llama"
    assert entry["evidence"]["detection"]["input_ids"] == [1, 40, 41, 42, 43]
    assert len(entry["claims"]) == len(planted)


def test_a_prompt_needs_a_tokenizer(model_dir, capsys):
    assert main(["detect", str(model_dir[0]), "--prompt", "hello"]) == 1
    assert "--input-ids" in capsys.readouterr().err


def test_malformed_input_ids_are_a_usage_error(model_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", str(model_dir[0]), "--input-ids", "1,x"])
    assert exit_info.value.code == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_a_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "absent")]) == 1
    assert "no model directory" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_max_passes_must_be_positive(model_dir, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", str(model_dir[0]), "--max-passes", value])
    assert exit_info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_an_invalid_id_is_refused_before_the_model_is_loaded(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "absent"), "--id", "a/../b"]) == 1
    err = capsys.readouterr().err
    assert "--id" in err and "no model directory" not in err


def test_an_output_that_is_a_directory_is_refused_before_the_model_is_loaded(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "absent"), "--output", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


def test_input_ids_longer_than_the_context_are_refused_with_the_limit(model_dir, capsys):
    from transformers import AutoConfig

    path, _ = model_dir
    limit = AutoConfig.from_pretrained(path).max_position_embeddings
    ids = ",".join(["1"] * (limit + 1))
    assert main(["detect", str(path), "--input-ids", ids]) == 1
    assert f"at most {limit}" in capsys.readouterr().err
