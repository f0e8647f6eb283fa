"""`lookup`: every way a user names a model finds the right entry, offline, and unknown names get suggestions."""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import pytest

import swindex
from swindex import UnknownModelError, entries, lookup, search
from swindex.cli import main
from swindex.errors import RevisionMismatchError

SHA = "4782ad278652c7c71b72204d462d6d01eaaf7549"


def test_llama_7b_super_weight():
    sw = lookup("huggyllama/llama-7b").super_weights[0]
    assert (sw.layer, sw.row, sw.column, sw.expert) == (2, 3968, 7003, None)
    assert sw.tensor == "model.layers.2.mlp.down_proj.weight"
    assert sw.index == (3968, 7003)
    assert sw.status == "confirmed"
    assert sw.coordinate == "model.layers.2.mlp.down_proj.weight[3968, 7003]"


@pytest.mark.parametrize("name", ["HUGGYLLAMA/LLAMA-7B", "huggyllama/llama-7B", "llama-7B", "Llama 7B", "LLaMA-1 7B"])
def test_ids_and_aliases_match_case_insensitively(name):
    assert lookup(name).id == "huggyllama/llama-7b"


def test_a_loaded_model_or_config_is_looked_up_by_its_name():
    config = types.SimpleNamespace(_name_or_path="mistralai/Mistral-7B-v0.1")
    model = types.SimpleNamespace(config=config)
    assert lookup(model).id == lookup(config).id == "mistralai/Mistral-7B-v0.1"


def test_a_local_directory_is_matched_by_its_last_path_components(tmp_path):
    assert lookup(str(tmp_path / "models" / "allenai" / "OLMo-1B-0724-hf")).id == "allenai/OLMo-1B-0724-hf"
    assert lookup(Path("/data/checkpoints/Mistral-7B-v0.1")).id == "mistralai/Mistral-7B-v0.1"


def test_a_folder_whose_config_contradicts_the_entry_is_not_matched_by_its_name(tmp_path):
    folder = tmp_path / "models" / "Mistral-7B-v0.1"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["GPT2LMHeadModel"], "n_embd": 64}), encoding="utf-8"
    )
    with pytest.raises(UnknownModelError):
        lookup(folder)
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["MistralForCausalLM"], "hidden_size": 4096}), encoding="utf-8"
    )
    assert lookup(folder).id == "mistralai/Mistral-7B-v0.1"


def test_a_hub_cache_snapshot_path_gives_id_and_revision(make_entry, write_registry):
    root = write_registry(make_entry(revision=SHA))
    path = f"/cache/hub/models--acme--tiny-llama/snapshots/{'0' * 40}"
    with pytest.warns(UserWarning, match="measured at revision"):
        assert lookup(path, registry=root).id == "acme/tiny-llama"


def test_a_hub_cache_path_of_a_model_without_organisation_is_found():
    assert lookup(f"/cache/hub/models--gpt2/snapshots/{'a' * 40}").id == "openai-community/gpt2"


def test_an_explicit_other_revision_is_refused(make_entry, write_registry):
    root = write_registry(make_entry(revision=SHA))
    with pytest.raises(RevisionMismatchError, match=SHA):
        lookup("acme/tiny-llama", revision="f" * 40, registry=root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lookup("acme/tiny-llama", revision=SHA, registry=root).revision == SHA


def test_another_organisations_model_of_the_same_name_is_not_matched_but_suggested():
    with pytest.raises(UnknownModelError) as info:
        lookup("nobody/llama-7b")
    assert info.value.suggestions[0] == "huggyllama/llama-7b"


def test_a_revision_that_cannot_be_checked_warns(make_entry, write_registry):
    root = write_registry(make_entry(revision=None))
    with pytest.warns(UserWarning, match="does not record which revision"):
        assert lookup("acme/tiny-llama", revision=SHA, registry=root).id == "acme/tiny-llama"


def test_an_empty_search_is_an_error_not_everything():
    with pytest.raises(ValueError, match="non-empty"):
        search("  ")


def test_unknown_model_raises_keyerror_with_suggestions():
    with pytest.raises(KeyError) as info:
        lookup("mistralai/Mistral-7B-v0.2")
    assert isinstance(info.value, UnknownModelError)
    assert "mistralai/Mistral-7B-v0.1" in info.value.suggestions
    assert "Did you mean" in str(info.value)


def test_unknown_object_type_is_a_clear_type_error():
    with pytest.raises(TypeError, match="cannot tell which model"):
        lookup(object())


def test_entries_and_search():
    ids = [e.id for e in entries()]
    assert ids == sorted(ids, key=str.casefold) and len(ids) >= 40
    assert {e.id for e in search("olmo")} == {"allenai/OLMo-1B-0724-hf", "allenai/OLMo-7B-0724-hf"}
    assert search("mistralai")[0].id.startswith("mistralai/")
    assert search("no-such-model-anywhere") == ()
    assert isinstance(search("olmo"), tuple) and isinstance(entries(), tuple)  # one collection type for both


def test_row_only_findings_never_pose_as_coordinates():
    entry = lookup("HuggingFaceTB/SmolLM2-135M")
    assert entry.super_weights == ()
    assert entry.other_findings[0].kind == "row" and entry.other_findings[0].row == 507


def test_disputed_claims_are_kept_and_shown_but_not_active():
    entry = lookup("allenai/OLMo-1B-0724-hf")
    disputed = [sw for sw in entry.claims if sw.status == "disputed"]
    assert [sw.coordinate for sw in disputed] == ["model.layers.1.mlp.down_proj.weight[1764, 8041]"]
    assert disputed[0] not in entry.super_weights
    assert entry.disagreements and "model.layers.2.mlp.down_proj.weight[1764, 8041]" in entry.disagreements[0].claims


def test_registry_argument_and_environment_select_another_registry(make_entry, write_registry, monkeypatch):
    root = write_registry(make_entry())
    assert lookup("tiny-llama", registry=root).id == "acme/tiny-llama"
    monkeypatch.setenv("SWINDEX_REGISTRY", str(root))
    assert [e.id for e in entries()] == ["acme/tiny-llama"]


def test_entry_json_uses_registry_field_names():
    data = json.loads(lookup("huggyllama/llama-7b").to_json())
    assert {"layer", "tensor", "row", "column", "expert", "index", "status", "sources"} <= set(data["claims"][0])


def test_entries_are_immutable():
    sw = lookup("huggyllama/llama-7b").super_weights[0]
    with pytest.raises(AttributeError):
        sw.row = 1  # type: ignore[misc]


def test_nested_fields_of_a_cached_entry_cannot_be_edited_and_to_dict_is_a_free_copy():
    entry = lookup("huggyllama/llama-7b")
    with pytest.raises(TypeError):
        entry.raw["claims"][0]["row"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        entry.dimensions["hidden_size"] = 1  # type: ignore[index]
    mine = entry.to_dict()
    mine["claims"][0]["row"] = 1
    assert lookup("huggyllama/llama-7b").to_dict()["claims"][0]["row"] == 3968


def test_cli_lookup_prints_the_coordinates(capsys):
    assert main(["lookup", "huggyllama/llama-7b"]) == 0
    out = capsys.readouterr().out
    assert "layer 2 row 3968 column 7003" in out


def test_cli_lookup_json(capsys):
    assert main(["lookup", "mistral-7b", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "mistralai/Mistral-7B-v0.1"


def test_cli_unknown_model_exits_1_with_suggestions(capsys):
    assert main(["lookup", "llama-8b"]) == 1
    assert "Did you mean" in capsys.readouterr().err


def test_cli_list_json(capsys):
    assert main(["list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(entries())


@pytest.mark.parametrize(
    ("model_id", "line"),
    [
        ("meta-llama/Llama-2-7b-hf", "1 super weight (0 measured critical)  layers 1"),
        ("mistralai/Mistral-7B-v0.1", "1 super weight (1 measured critical)  layers 1"),
    ],
)
def test_cli_list_says_how_many_super_weights_were_measured_critical(capsys, model_id, line):
    assert main(["list"]) == 0
    (row,) = [r for r in capsys.readouterr().out.splitlines() if r.startswith(model_id + " ")]
    assert line in row


def test_cli_search_exit_status(capsys):
    assert main(["search", "olmo"]) == 0
    assert main(["search", "zzz-nothing"]) == 1


def test_public_api_is_small_and_documented():
    assert "lookup" in swindex.__all__
    assert swindex.lookup.__doc__


@pytest.mark.parametrize("name", ["", "   "], ids=["empty", "blank"])
def test_an_empty_id_is_refused_as_empty(name, capsys):
    with pytest.raises(ValueError, match="the model id is empty"):
        lookup(name)
    assert main(["lookup", name]) == 2
    err = capsys.readouterr().err
    assert "the model id is empty" in err and "no swindex entry" not in err


def test_the_printed_entry_leads_with_the_verdict_and_marks_the_super_weights():
    lines = str(lookup("HuggingFaceTB/SmolLM2-135M-Instruct")).splitlines()
    assert lines[1].startswith("  verdict: 1 super weight (* marks them")
    marked = [line for line in lines if line.startswith("  * ")]
    assert len(marked) == 1 and "[507, 1229]" in marked[0]
