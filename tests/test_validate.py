"""`swindex validate` and the validator: the registry is valid, and every bad input gets a precise message."""

from __future__ import annotations

from pathlib import Path

import pytest

from swindex.claims import derive_verdict

from swindex.cli import main
from swindex.validate import validate_entry_dict, validate_paths, validate_registry

REPO = Path(__file__).resolve().parent.parent

BAD = Path(__file__).parent / "fixtures" / "bad"

BAD_CASES = {
    "malformed.yaml": (3, "", "malformed YAML"),
    "wrong_type.yaml": (11, "claims[0].row", "'3' is not of type 'integer'"),
    "unknown_field.yaml": (9, "claims[0]", "'colum' was unexpected"),
    "octal_trap.yaml": (8, "", "ambiguous number '012'"),
    "duplicate_key.yaml": (4, "", "duplicate key 'architecture'"),
    "duplicate_key_late.yaml": (6, "", "duplicate key 'claims'"),
    "alias_bomb.yaml": (1, "", "anchors and aliases"),
    "python_tag.yaml": (2, "", "python/object/apply:os.system' is not allowed"),
    "non_utf8.yaml": (3, "", "not valid UTF-8"),
    "id_traversal.yaml": (2, "id", "is not a model id"),
    "id_absolute.yaml": (2, "id", "is not a model id"),
    "html_note.yaml": (5, "notes", "HTML markup is not allowed"),
    "javascript_url.yaml": (24, "claims[0].sources[0].url", "javascript:alert(1)"),
    "tensor_layer_mismatch.yaml": (10, "claims[0].tensor", "does not belong to layer 2"),
    "index_mismatch.yaml": (14, "claims[0].index", "does not hold row 3 and column 7"),
    "outside_shape.yaml": (15, "claims[0].row", "outside the model"),
    "duplicate_coordinate.yaml": (24, "claims[1]", "duplicate coordinate"),
    "bad_date.yaml": (4, "modified", "does not match"),
}


def test_every_bad_fixture_has_a_case():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(BAD_CASES)


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_input_gets_a_precise_message(name):
    line, field, message = BAD_CASES[name]
    problems = validate_paths([BAD / name])
    assert problems, f"{name} was accepted"
    first = problems[0]
    assert first.path.endswith(name)
    assert first.line == line
    assert first.field == field
    assert message in first.message


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_cli_rejects_bad_input_with_one_line_per_problem(name, capsys):
    assert main(["validate", str(BAD / name)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out and all(line.startswith(str(BAD / name)) for line in out)


def test_the_shipped_registry_is_valid():
    assert validate_registry(REPO / "registry") == []


def test_cli_validates_the_registry(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["validate"]) == 0


def test_valid_entry_has_no_problems(make_entry):
    assert validate_entry_dict(make_entry()) == []


def test_file_location_must_match_id(make_entry, write_registry):
    root = write_registry(make_entry())
    (root / "acme" / "tiny-llama.yaml").rename(root / "acme" / "other.yaml")
    problems = validate_registry(root)
    assert [(p.field, "does not match the file's location") for p in problems] == [("id", "does not match the file's location")]
    assert "acme/other" in problems[0].message


def test_ids_and_aliases_are_unique_across_files_ignoring_case(make_entry, write_registry):
    root = write_registry(make_entry(aliases=["Tiny"]), make_entry(id="other/model", aliases=["TINY"]))
    problems = validate_registry(root)
    assert len(problems) == 1
    assert problems[0].field == "aliases[0]" and "already names another model" in problems[0].message


def test_validating_one_file_checks_uniqueness_against_the_registry(make_entry, write_registry, tmp_path):
    root = write_registry(make_entry())
    clash = write_registry(make_entry(id="other/model", aliases=["tiny-llama"]), root=tmp_path / "elsewhere")
    problems = validate_paths([clash / "other" / "model.yaml"], registry=root)
    assert [p.field for p in problems] == ["aliases[0]"]


def test_a_clash_is_blamed_on_the_file_under_review_at_its_line(make_entry, write_registry):
    root = write_registry(make_entry(id="zzz/old", aliases=["shared-name"]))
    write_registry(make_entry(id="aaa/new", aliases=["other", "Shared-Name"]), root=root)
    problems = validate_paths([root / "aaa" / "new.yaml"], registry=root)
    assert [(Path(p.path).name, p.field) for p in problems] == [("new.yaml", "aliases[1]")]
    text = (root / "aaa" / "new.yaml").read_text(encoding="utf-8").splitlines()
    assert "Shared-Name" in text[problems[0].line - 1]


def test_a_date_that_is_not_in_the_calendar_is_rejected(make_entry):
    problems = validate_entry_dict(make_entry(modified="2026-02-30"))
    assert [p.field for p in problems] == ["modified"]


def test_other_findings_must_fit_the_model(make_entry):
    sources = make_entry()["claims"][0]["sources"]
    finding = {"kind": "row", "layer": 9, "row": 3, "status": "reported", "sources": sources}
    problems = validate_entry_dict(make_entry(other_findings=[finding]))
    assert [p.field for p in problems] == ["other_findings[0].layer"]


def test_expert_index_must_lead_with_the_expert(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="model.layers.1.mlp.experts.down_proj", expert=2, index=[3, 3, 7])
    problems = validate_entry_dict(make_entry(claims=[weight]))
    assert [p.field for p in problems] == ["claims[0].index"]


def test_conv1d_index_may_be_transposed(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="transformer.h.1.mlp.c_proj.weight", index=[7, 3])
    assert validate_entry_dict(make_entry(architecture="GPT2LMHeadModel", claims=[weight])) == []


def test_a_linear_index_in_column_row_order_is_rejected_with_the_fix(make_entry):
    weight = dict(make_entry()["claims"][0], index=[7, 3])
    problems = validate_entry_dict(make_entry(architecture="LlamaForCausalLM", claims=[weight]))
    assert [p.field for p in problems] == ["claims[0].index"]
    assert "write [3, 7]" in problems[0].message


@pytest.mark.parametrize("field", ["layer", "row", "column"])
def test_a_whole_number_float_is_not_an_integer(make_entry, field):
    weight = dict(make_entry()["claims"][0])
    weight[field] = float(weight[field])
    problems = validate_entry_dict(make_entry(claims=[weight]))
    assert [p.field for p in problems] == [f"claims[0].{field}"]


def test_disagreements_must_name_claimed_coordinates(make_entry):
    entry = make_entry(disagreements=[{"summary": "layer typo?", "claims": ["model.layers.9.mlp.down_proj.weight[3, 7]"]}])
    problems = validate_entry_dict(entry)
    assert [p.field for p in problems] == ["disagreements[0].claims[0]"]


def test_a_non_mapping_file_is_rejected(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    problems = validate_paths([path])
    assert "must be a mapping" in problems[0].message


def test_missing_path_is_a_problem(tmp_path):
    assert "no such file" in validate_paths([tmp_path / "nope.yaml"])[0].message


def test_cli_validates_another_registry_directory_on_its_own(make_entry, write_registry, tmp_path, monkeypatch):
    write_registry(make_entry(), root=tmp_path / "registry")
    write_registry(make_entry(), root=tmp_path / "scratch" / "registry")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "scratch/registry"]) == 0
    assert main(["validate"]) == 0


def test_cli_checks_a_file_inside_the_local_registry_against_it(make_entry, write_registry, tmp_path, monkeypatch):
    write_registry(make_entry(), make_entry(id="other/model", aliases=["tiny-llama"]), root=tmp_path / "registry")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "registry/other/model.yaml"]) == 1


def test_cli_checks_a_directory_as_a_registry_root(make_entry, write_registry, tmp_path, monkeypatch, capsys):
    root = write_registry(make_entry(), root=tmp_path / "elsewhere")
    (root / "acme" / "tiny-llama.yaml").rename(root / "acme" / "moved.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "elsewhere"]) == 1
    assert "does not match the file's location" in capsys.readouterr().out


def _claim(make_entry, **changes):
    return dict(make_entry()["claims"][0], **changes)


def test_confirmed_needs_two_first_hand_sources(make_entry):
    one = _claim(make_entry)
    one["sources"] = one["sources"][:1]
    problems = validate_entry_dict(make_entry(claims=[one]))
    assert [p.field for p in problems] == ["claims[0].status"] and "'reported'" in problems[0].message


def test_a_copied_source_does_not_make_a_claim_reported(make_entry):
    copied = _claim(make_entry, status="reported")
    copied["sources"] = [dict(copied["sources"][0], evidence="copied")]
    assert [p.field for p in validate_entry_dict(make_entry(claims=[copied]))] == ["claims[0].status"]


def test_detected_needs_a_swindex_source(make_entry):
    claim = _claim(make_entry, status="detected")
    assert [p.field for p in validate_entry_dict(make_entry(claims=[claim]))] == ["claims[0].status"]


def test_disputed_must_be_named_in_the_disagreements(make_entry):
    claim = _claim(make_entry, status="disputed")
    assert [p.field for p in validate_entry_dict(make_entry(claims=[claim]))] == ["claims[0].status"]
    named = make_entry(claims=[claim], disagreements=[{"summary": "layer typo?", "claims": ["model.layers.1.mlp.down_proj.weight[3, 7]"]}])
    assert validate_entry_dict(named) == []


def _problem_fields(entry) -> list[str]:
    return [p.field for p in validate_entry_dict(entry)]


@pytest.mark.parametrize(
    "text",
    ["x\x1b[1A\x1b[2Kfake", "nul\x00", "c1\x9bcontrol", "rtl \u202e002", "zero\u200bwidth", "tab\there"],
    ids=["escape-sequence", "nul", "c1", "bidi-override", "zero-width", "tab"],
)
def test_control_and_invisible_characters_are_refused_in_text(make_entry, text):
    assert _problem_fields(make_entry(notes=text)) == ["notes"]


def test_a_line_break_is_refused_outside_free_text(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="model.layers.1.mlp.down_proj.weight\n")
    assert "claims[0].tensor" in _problem_fields(make_entry(claims=[weight]))
    assert _problem_fields(make_entry(notes="two\nlines")) == []


@pytest.mark.parametrize("alias", ["Llаma-2-7b", " padded", "two  spaces", "Ｌlama"], ids=["cyrillic", "padded", "doubled-space", "fullwidth"])
def test_aliases_are_plain_ascii(make_entry, alias):
    assert _problem_fields(make_entry(aliases=[alias])) == ["aliases[0]"]


def test_an_alias_may_not_repeat_within_an_entry(make_entry):
    assert _problem_fields(make_entry(aliases=["Tiny", "tiny"])) == ["aliases[1]"]


@pytest.mark.parametrize(
    "url",
    ["https://github.com@evil.example/x", "https://user:pass@example.org/", "https:///nohost", "https://example.org/a b", "https://gіthub.com/x"],
    ids=["userinfo", "credentials", "no-host", "space", "non-ascii-host"],
)
def test_urls_that_hide_where_they_go_are_refused(make_entry, url):
    entry = make_entry()
    entry["claims"][0]["sources"][0]["url"] = url
    assert "claims[0].sources[0].url" in _problem_fields(entry)


@pytest.mark.parametrize("model_id", ["index", "acme/index", "acme/README"])
def test_names_the_site_needs_are_not_model_ids(make_entry, model_id):
    assert "id" in _problem_fields(make_entry(id=model_id, aliases=[]))


def test_an_alias_may_not_take_another_models_short_name(make_entry, write_registry):
    root = write_registry(make_entry(id="meta-llama/Llama-2-7b-hf", aliases=[]), make_entry(id="acme/widget", aliases=["llama-2-7b-hf"]))
    problems = validate_registry(root)
    assert [(Path(p.path).name, p.field) for p in problems] == [("widget.yaml", "aliases[0]")]


def test_a_gpt2_index_must_be_column_row(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="transformer.h.1.mlp.c_proj.weight", index=[3, 7])
    problems = validate_entry_dict(make_entry(architecture="GPT2LMHeadModel", claims=[weight]))
    assert [p.field for p in problems] == ["claims[0].index"] and "write [7, 3]" in problems[0].message


def test_a_dense_claim_cannot_use_a_3d_index(make_entry):
    weight = dict(make_entry()["claims"][0], index=[0, 3, 7])
    assert "claims[0].index" in _problem_fields(make_entry(claims=[weight]))


def test_the_expert_must_agree_with_the_tensor_name(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="model.layers.1.mlp.experts.5.down_proj.weight", expert=7)
    assert "claims[0].expert" in _problem_fields(make_entry(claims=[weight], dimensions={"num_layers": 4, "hidden_size": 64, "intermediate_size": 172, "num_experts": 8}))


def test_coordinates_need_dimensions_to_be_checked_against(make_entry):
    entry = make_entry()
    del entry["dimensions"]
    assert _problem_fields(entry) == ["dimensions"]


def test_two_runs_of_swindex_do_not_confirm_a_claim(make_entry):
    swindex = {"citation": "swindex 0.1.0 detect", "kind": "swindex", "evidence": "detected"}
    weight = dict(make_entry()["claims"][0], sources=[swindex, dict(swindex, citation="swindex 0.2.0 detect")])
    assert _problem_fields(make_entry(claims=[weight])) == ["claims[0].status"]


def test_the_same_source_twice_does_not_confirm_a_claim(make_entry):
    weight = make_entry()["claims"][0]
    weight["sources"] = [weight["sources"][0], dict(weight["sources"][0])]
    assert _problem_fields(make_entry(claims=[weight])) == ["claims[0].status"]


def test_a_published_claim_is_not_detected(make_entry):
    weight = make_entry()["claims"][0]
    weight["sources"].append({"citation": "swindex 0.1.0 detect", "kind": "swindex", "evidence": "detected"})
    weight["status"] = "detected"
    assert _problem_fields(make_entry(claims=[weight])) == ["claims[0].status"]


def test_swindex_figures_must_agree_with_the_impact_they_classify(make_entry):
    impact = {"classification": "inert", "measured_by": "swindex", "metric": "perplexity", "ratio": 50.0}
    weight = dict(make_entry()["claims"][0], impact=impact)
    problems = validate_entry_dict(make_entry(claims=[weight]))
    assert [p.field for p in problems] == ["claims[0].impact.classification"] and "critical, not inert" in problems[0].message


def test_an_impact_names_who_measured_it_among_the_claims_sources(make_entry):
    weight = dict(make_entry()["claims"][0], impact={"classification": "inert", "measured_by": "Nobody we cite"})
    problems = validate_entry_dict(make_entry(claims=[weight]))
    assert [p.field for p in problems] == ["claims[0].impact.measured_by"]


def test_an_unmeasured_impact_carries_no_figures(make_entry):
    weight = dict(make_entry()["claims"][0], impact={"classification": "unmeasured", "ratio": 3.0})
    assert _problem_fields(make_entry(claims=[weight])) == ["claims[0].impact.classification"]


def test_inert_is_an_impact_not_a_status(make_entry):
    weight = dict(make_entry()["claims"][0], status="inert")
    assert _problem_fields(make_entry(claims=[weight])) == ["claims[0].status"]


def test_the_verdict_must_agree_with_the_claims_and_says_what_to_write(make_entry):
    problems = validate_entry_dict(make_entry(verdict={"outcome": "not_measured"}))
    assert [p.field for p in problems] == ["verdict"]
    assert "outcome: super_weights, super_weights: 1" in problems[0].message and "1 super weight" in problems[0].message


@pytest.mark.parametrize("name", ["model.YAML", "model.json", "README", ".evil.yaml"])
def test_a_file_in_the_registry_that_is_not_an_entry_is_an_error(make_entry, write_registry, name):
    root = write_registry(make_entry())
    (root / "acme" / name).write_text("garbage: [\n", encoding="utf-8")
    problems = validate_registry(root)
    assert [Path(p.path).name for p in problems] == [name]


def test_a_write_in_progress_is_not_an_error(make_entry, write_registry):
    root = write_registry(make_entry())
    (root / "acme" / ".tiny-llama.yaml.builder-x1.tmp").write_text("partial: [", encoding="utf-8")
    assert validate_registry(root) == []


def _two_registries(tmp_path, write_registry, make_entry, edit):
    before = write_registry(make_entry(), root=tmp_path / "before")
    changed = make_entry()
    edit(changed)
    after = write_registry(changed, root=tmp_path / "after")
    return before, after


def test_a_removed_claim_is_a_problem_against_the_earlier_registry(tmp_path, write_registry, make_entry, capsys):
    before, after = _two_registries(tmp_path, write_registry, make_entry, lambda e: e.update(claims=[]))
    assert main(["validate", "--registry", str(after), "--against", str(before)]) == 1
    assert "was removed; a published claim is never deleted" in capsys.readouterr().out


def test_an_edited_claim_is_listed_for_review_but_allowed(tmp_path, write_registry, make_entry, capsys):
    def withdraw(entry):
        entry["claims"][0]["status"] = "withdrawn"
        entry["verdict"] = derive_verdict(entry)

    before, after = _two_registries(tmp_path, write_registry, make_entry, withdraw)
    assert main(["validate", "--registry", str(after), "--against", str(before)]) == 0
    assert "status 'confirmed' -> 'withdrawn'" in capsys.readouterr().err


def test_a_removed_entry_is_a_problem(tmp_path, write_registry, make_entry, capsys):
    before = write_registry(make_entry(), make_entry(id="acme/other", aliases=[]), root=tmp_path / "before")
    after = write_registry(make_entry(), root=tmp_path / "after")
    assert main(["validate", "--registry", str(after), "--against", str(before)]) == 1
    assert "acme/other was removed" in capsys.readouterr().out


def test_detection_maxima_must_be_of_layers_the_model_has(make_entry):
    entry = make_entry(evidence={"detection": {"tool": "swindex 0.1.0", "date": "2026-11-28", "dtype": "float32", "layers": [{"layer": 9, "input_max": 1.0, "input_channel": 0, "input_token": 0, "output_max": 2.0, "output_channel": 0, "output_token": 0, "expert": None}]}})
    problems = _problem_fields(entry)
    assert "evidence.detection.layers[0].layer" in problems


def test_an_architecture_swindex_does_not_know_may_use_either_index_order(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="transformer.h.1.mlp.c_proj.weight", index=[7, 3])
    assert validate_entry_dict(make_entry(architecture="CustomGPTForCausalLM", claims=[weight])) == []
    assert validate_entry_dict(make_entry(architecture="CustomGPTForCausalLM")) == []
