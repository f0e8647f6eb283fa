"""`swindex validate` and the validator: the registry is valid, and every bad input gets a precise message."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from swindex.claims import derive_verdict

from swindex.cli import main
from swindex.schema import entry_schema
from swindex.validate import Problem, entry_files, validate_entry_dict, validate_paths, validate_registry
from swindex.yamlio import dump_yaml

REPO = Path(__file__).resolve().parent.parent

BAD = Path(__file__).parent / "fixtures" / "bad"

BAD_CASES = {
    "malformed.yaml": (3, "", "malformed YAML"),
    "wrong_type.yaml": (11, "claims[0].row", "'3' is not of type 'integer'"),
    "unknown_field.yaml": (12, "claims[0].colum", "unknown field 'colum': did you mean 'column'?"),
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
    "http_url.yaml": (24, "claims[0].sources[0].url", "'http://example.org/paper': links must use https"),
    "huge_integer.yaml": (4, "parameters", "a number of 4000 digits is too long"),
    "line_separator.yaml": (5, "notes", "LINE SEPARATOR (U+2028) is a line break to YAML but not to git or grep"),
    "empty.yaml": (1, "", "the file is empty"),
    "windows_reserved.yaml": (2, "id", "Windows reserves the name 'CON'"),
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
    assert [(p.field, "does not match the file's location") for p in problems] == [
        ("id", "does not match the file's location")
    ]
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
    finding = {"kind": "row", "layer": 9, "row": 3, "status": "confirmed", "sources": sources}
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
    entry = make_entry(
        disagreements=[{"summary": "layer typo?", "claims": ["model.layers.9.mlp.down_proj.weight[3, 7]"]}]
    )
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
    named = make_entry(
        claims=[claim],
        disagreements=[{"summary": "layer typo?", "claims": ["model.layers.1.mlp.down_proj.weight[3, 7]"]}],
    )
    assert validate_entry_dict(named) == []


def _problem_fields(entry) -> list[str]:
    return [p.field for p in validate_entry_dict(entry)]


@pytest.mark.parametrize(
    "text",
    [
        "x\x1b[1A\x1b[2Kfake",
        "nul\x00",
        "c1\x9bcontrol",
        "rtl \u202e002",
        "zero\u200bwidth",
        "tab\there",
        "tag\U000e0041\U000e007f",
        "tag-space\U000e0020",
        "choseong\u115ffiller",
        "jungseong\u1160filler",
        "hangul\u3164filler",
        "halfwidth\uffa0filler",
        "line\u2028separator",
        "paragraph\u2029separator",
    ],
    ids=[
        "escape-sequence",
        "nul",
        "c1",
        "bidi-override",
        "zero-width",
        "tab",
        "tag-block",
        "tag-space",
        "hangul-choseong-filler",
        "hangul-jungseong-filler",
        "hangul-filler",
        "halfwidth-hangul-filler",
        "line-separator",
        "paragraph-separator",
    ],
)
def test_control_and_invisible_characters_are_refused_in_text(make_entry, text):
    assert _problem_fields(make_entry(notes=text)) == ["notes"]


def test_a_line_break_is_refused_outside_free_text(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="model.layers.1.mlp.down_proj.weight\n")
    assert "claims[0].tensor" in _problem_fields(make_entry(claims=[weight]))
    assert _problem_fields(make_entry(notes="two\nlines")) == []


@pytest.mark.parametrize(
    "alias",
    ["Llаma-2-7b", " padded", "two  spaces", "Ｌlama"],
    ids=["cyrillic", "padded", "doubled-space", "fullwidth"],
)
def test_aliases_are_plain_ascii(make_entry, alias):
    assert _problem_fields(make_entry(aliases=[alias])) == ["aliases[0]"]


def test_an_alias_may_not_repeat_within_an_entry(make_entry):
    assert _problem_fields(make_entry(aliases=["Tiny", "tiny"])) == ["aliases[1]"]


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com@evil.example/x",
        "https://user:pass@example.org/",
        "https:///nohost",
        "https://example.org/a b",
        "https://gіthub.com/x",
    ],
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
    root = write_registry(
        make_entry(id="meta-llama/Llama-2-7b-hf", aliases=[]), make_entry(id="acme/widget", aliases=["llama-2-7b-hf"])
    )
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
    assert "claims[0].expert" in _problem_fields(
        make_entry(
            claims=[weight], dimensions={"num_layers": 4, "hidden_size": 64, "intermediate_size": 172, "num_experts": 8}
        )
    )


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
    assert [p.field for p in problems] == ["claims[0].impact.classification"] and "critical, not inert" in problems[
        0
    ].message


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
    entry = make_entry(
        evidence={
            "detection": {
                "tool": "swindex 0.1.0",
                "date": "2026-11-28",
                "dtype": "float32",
                "layers": [
                    {
                        "layer": 9,
                        "input_max": 1.0,
                        "input_channel": 0,
                        "input_token": 0,
                        "output_max": 2.0,
                        "output_channel": 0,
                        "output_token": 0,
                        "expert": None,
                    }
                ],
            }
        }
    )
    problems = _problem_fields(entry)
    assert "evidence.detection.layers[0].layer" in problems


def test_an_architecture_swindex_does_not_know_may_use_either_index_order(make_entry):
    weight = dict(make_entry()["claims"][0], tensor="transformer.h.1.mlp.c_proj.weight", index=[7, 3])
    assert validate_entry_dict(make_entry(architecture="CustomGPTForCausalLM", claims=[weight])) == []
    assert validate_entry_dict(make_entry(architecture="CustomGPTForCausalLM")) == []


def _integer_fields(schema, where="") -> list[tuple[str, dict]]:
    found = []
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
            found.append((where, schema))
        for key, value in schema.items():
            found += _integer_fields(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found += _integer_fields(value, f"{where}/{i}")
    return found


def test_every_integer_field_has_a_maximum():
    fields = _integer_fields(entry_schema())
    assert len(fields) > 20
    assert [where for where, schema in fields if "maximum" not in schema] == []


def test_an_integer_over_the_schema_maximum_is_refused_at_its_field(make_entry):
    problems = validate_entry_dict(make_entry(parameters=10**19))
    assert [p.field for p in problems] == ["parameters"]


def _entry_with_sources(make_entry, claims: int, sources: int) -> dict:
    """An entry of ``claims`` claims with ``sources`` published sources each: a valid file of any size."""
    base = make_entry()["claims"][0]
    made = []
    for c in range(claims):
        cited = [
            dict(base["sources"][0], citation=f"Paper {c}-{i}", url=f"https://example.org/{c}/{i}")
            for i in range(sources)
        ]
        made.append(dict(base, column=c, index=[3, c], sources=[*base["sources"], *cited]))
    return make_entry(claims=made, dimensions={"num_layers": 4, "hidden_size": 64, "intermediate_size": 100_000})


def _cpu_seconds(path: Path, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        assert validate_paths([path]) == []
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.slow
def test_validating_takes_time_in_proportion_to_the_sources_of_one_claim(make_entry, tmp_path):
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    small.write_text(dump_yaml(_entry_with_sources(make_entry, 1, 45)), encoding="utf-8")
    large.write_text(dump_yaml(_entry_with_sources(make_entry, 1, 900)), encoding="utf-8")
    assert 15 < large.stat().st_size / small.stat().st_size < 25
    assert _cpu_seconds(large, 2) < 40 * _cpu_seconds(
        small, 5
    )  # linear is about 20x; a step quadratic in sources is hundreds


@pytest.mark.slow
def test_a_one_megabyte_file_validates_in_time_proportional_to_its_size(make_entry, tmp_path):
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    small.write_text(dump_yaml(_entry_with_sources(make_entry, 1, 450)), encoding="utf-8")
    large.write_text(dump_yaml(_entry_with_sources(make_entry, 10, 900)), encoding="utf-8")
    assert 0.8e6 < large.stat().st_size < 1 << 20 and 16 < large.stat().st_size / small.stat().st_size < 24
    assert _cpu_seconds(large, 2) < 40 * _cpu_seconds(small, 3)  # best of two: one run can meet a busy core


def test_an_over_long_list_is_refused_in_one_line_without_checking_each_item(make_entry):
    def best(entry):
        times = []
        for _ in range(3):
            start = time.process_time()
            problems = validate_entry_dict(entry)
            times.append(time.process_time() - start)
        return min(times), problems

    huge_time, problems = best(_entry_with_sources(make_entry, 1, 18_500))
    assert [(p.field, p.message) for p in problems] == [
        ("claims[0].sources", "18502 items: at most 1000 are allowed here")
    ]
    allowed_time, _ = best(_entry_with_sources(make_entry, 1, 900))
    assert huge_time < allowed_time


def _can_symlink(tmp_path: Path) -> bool:
    try:
        (tmp_path / "probe-link").symlink_to(tmp_path)
    except (OSError, NotImplementedError):
        return False
    (tmp_path / "probe-link").unlink()
    return True


def test_a_symbolic_link_to_a_file_is_refused_and_never_read(make_entry, write_registry, tmp_path):
    if not _can_symlink(tmp_path):
        pytest.skip("cannot create symbolic links here")
    root = write_registry(make_entry())
    outside = write_registry(make_entry(id="other/model", aliases=[]), root=tmp_path / "outside")
    (root / "other").mkdir()
    (root / "other" / "model.yaml").symlink_to(outside / "other" / "model.yaml")
    problems = validate_registry(root)
    assert [(Path(p.path).name, "symbolic link" in p.message) for p in problems] == [("model.yaml", True)]
    assert entry_files(root) == [root / "acme" / "tiny-llama.yaml"]


def test_a_symbolic_link_to_a_folder_is_refused_and_not_walked(make_entry, write_registry, tmp_path):
    if not _can_symlink(tmp_path):
        pytest.skip("cannot create symbolic links here")
    root = write_registry(make_entry())
    outside = write_registry(make_entry(id="other/model", aliases=[]), root=tmp_path / "outside")
    (root / "other").symlink_to(outside / "other", target_is_directory=True)
    problems = validate_registry(root)
    assert [(Path(p.path).name, "symbolic link" in p.message) for p in problems] == [("other", True)]
    assert entry_files(root) == [root / "acme" / "tiny-llama.yaml"]


def test_a_symbolic_link_named_on_the_command_line_is_refused(make_entry, write_registry, tmp_path):
    if not _can_symlink(tmp_path):
        pytest.skip("cannot create symbolic links here")
    root = write_registry(make_entry())
    (tmp_path / "link.yaml").symlink_to(root / "acme" / "tiny-llama.yaml")
    assert ["symbolic link" in p.message for p in validate_paths([tmp_path / "link.yaml"])] == [True]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_in_the_registry_is_refused_without_hanging(make_entry, write_registry):
    root = write_registry(make_entry())
    os.mkfifo(root / "acme" / "pipe.yaml")
    problems = validate_registry(root)
    assert [(Path(p.path).name, "not a regular file" in p.message) for p in problems] == [("pipe.yaml", True)]
    assert ["not a regular file" in p.message for p in validate_paths([root / "acme" / "pipe.yaml"])] == [True]


@pytest.mark.parametrize("model_id", ["acme/CON", "nul/model", "acme/com1.v2", "acme/Lpt9", "AUX/x", "acme/prn.yaml"])
def test_names_windows_reserves_are_not_model_ids(make_entry, model_id):
    problems = validate_entry_dict(make_entry(id=model_id, aliases=[]))
    assert [p.field for p in problems] == ["id"] and "Windows reserves" in problems[0].message


@pytest.mark.parametrize("model_id", ["acme/console", "acme/com10", "acme/nullable", "auxiliary/model", "acme/lpt"])
def test_names_that_only_start_like_a_reserved_one_are_fine(make_entry, model_id):
    assert validate_entry_dict(make_entry(id=model_id, aliases=[])) == []


def _case_sensitive(tmp_path: Path) -> bool:
    (tmp_path / "probe").mkdir()
    sensitive = not (tmp_path / "PROBE").exists()
    (tmp_path / "probe").rmdir()
    return sensitive


def test_folders_that_differ_only_in_case_are_refused(make_entry, write_registry, tmp_path):
    if not _case_sensitive(tmp_path):
        pytest.skip("the file system ignores case")
    root = write_registry(make_entry(id="Foo/a", aliases=[]), make_entry(id="foo/b", aliases=[]))
    problems = validate_registry(root)
    assert [(Path(p.path).name, "only in case" in p.message) for p in problems] == [("foo", True)]


def test_entries_that_differ_only_in_case_get_one_line(make_entry, write_registry, tmp_path):
    if not _case_sensitive(tmp_path):
        pytest.skip("the file system ignores case")
    root = write_registry(make_entry(), make_entry(id="acme/Tiny-Llama", aliases=["Tiny Llama", "TL"]))
    problems = validate_registry(root)
    assert [(p.field, "only in case" in p.message) for p in problems] == [("id", True)]


def test_a_duplicated_id_gets_one_line_not_one_per_alias(make_entry, write_registry, tmp_path):
    root = write_registry(make_entry(aliases=["tiny-llama", "Tiny Llama", "TL"]))
    copy = write_registry(make_entry(aliases=["tiny-llama", "Tiny Llama", "TL"]), root=tmp_path / "new")
    problems = validate_paths([copy / "acme" / "tiny-llama.yaml"], registry=root)
    assert [(p.field, p.line) for p in problems] == [("id", 2)]
    assert "is already the id of" in problems[0].message


def test_file_names_are_printed_escaped(make_entry, write_registry, capsys):
    root = write_registry(make_entry())
    for name in ("evil\x1b[2K\x1b[1A.yaml", "two\nlines.yaml"):
        (root / "acme" / name).write_text("garbage: [\n", encoding="utf-8")
    assert main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2K\\x1b[1A.yaml" in out and "two\\nlines.yaml" in out
    assert len(out.strip().splitlines()) == 2


def test_a_problem_prints_on_one_line_whatever_its_parts_hold():
    text = str(Problem("a\x1b]8;;x\x07.yaml", "notes\u2028x", "bad \u202evalue\n", 3))
    assert text.isprintable() and text.startswith("a\\x1b]8;;x\\x07.yaml:3: notes\\u2028x: bad \\u202evalue\\n")


def test_a_misspelled_key_is_reported_at_its_own_line_with_the_nearest_field(make_entry, tmp_path):
    entry = make_entry()
    entry["architecure"] = entry.pop("architecture")
    path = tmp_path / "entry.yaml"
    path.write_text(dump_yaml(entry), encoding="utf-8")
    problems = validate_paths([path])
    assert [(p.field, p.message) for p in problems] == [
        ("architecure", "unknown field 'architecure': did you mean 'architecture'?")
    ]
    assert path.read_text(encoding="utf-8").splitlines()[problems[0].line - 1].startswith("architecure:")


def test_an_unknown_key_with_no_near_field_lists_the_allowed_ones(make_entry):
    entry = make_entry()
    entry["dimensions"]["zzz"] = 1
    problems = validate_entry_dict(entry)
    assert [p.field for p in problems] == ["dimensions.zzz"] and "hidden_size" in problems[0].message


@pytest.mark.parametrize(
    "content",
    ["", "\n\n", "# only a comment\n", "---\n"],
    ids=["no-bytes", "blank-lines", "comment", "document-marker"],
)
def test_an_empty_file_says_so(tmp_path, content):
    path = tmp_path / "entry.yaml"
    path.write_text(content, encoding="utf-8")
    assert [(p.line, p.message.split(":")[0]) for p in validate_paths([path])] == [(1, "the file is empty")]


def test_a_plain_http_link_says_links_must_use_https(make_entry):
    entry = make_entry()
    entry["claims"][0]["sources"][0]["url"] = "http://example.org/paper"
    problems = validate_entry_dict(entry)
    assert [p.field for p in problems] == ["claims[0].sources[0].url"]
    assert "links must use https" in problems[0].message and "^https" not in problems[0].message


def test_against_names_sources_added_removed_and_edited_by_citation(tmp_path, write_registry, make_entry, capsys):
    def edit(entry):
        first, second = entry["claims"][0]["sources"]
        entry["claims"][0]["sources"] = [
            dict(first, evidence="ablation", url="https://example.org/paper-v2"),
            {"citation": "Third 2025", "kind": "paper", "evidence": "reported", "url": "https://example.org/third"},
        ]

    before, after = _two_registries(tmp_path, write_registry, make_entry, edit)
    assert main(["validate", "--registry", str(after), "--against", str(before)]) == 0
    err = capsys.readouterr().err
    assert "source removed: 'someone-else/reproduction@0123abc:README.md'" in err
    assert "source added: 'Third 2025'" in err
    assert (
        "source 'Somebody et al. 2024, Table 2' edited: evidence 'reported' -> 'ablation'; "
        "url 'https://example.org/paper' -> 'https://example.org/paper-v2'"
    ) in err
    assert "(or their text)" not in err


def test_against_names_each_changed_figure_of_an_impact(tmp_path, write_registry, make_entry, capsys):
    def measure(entry):
        entry["claims"][0]["impact"] = {
            "classification": "critical",
            "measured_by": "swindex",
            "metric": "perplexity",
            "original": 10.0,
            "zeroed": 30.0,
            "ratio": 3.0,
        }
        entry["verdict"] = derive_verdict(entry)

    before, after = _two_registries(tmp_path, write_registry, make_entry, measure)
    main(["validate", "--registry", str(after), "--against", str(before)])
    err = capsys.readouterr().err
    assert "impact classification 'unmeasured' -> 'critical'" in err and "impact ratio None -> 3.0" in err


DETECTOR_ONLY = {
    "citation": "someone/detector@0123abc:results.json",
    "kind": "repository",
    "evidence": "detected",
    "url": "https://example.org/d",
}


def test_a_detector_only_claim_is_unverified_and_the_message_says_what_to_write(make_entry, write_registry):
    claim = dict(_claim(make_entry), status="reported", sources=[DETECTOR_ONLY])
    root = write_registry(make_entry(claims=[claim]))
    (problem,) = validate_registry(root)
    assert problem.field == "claims[0].status" and problem.path.endswith("acme/tiny-llama.yaml") and problem.line
    assert "model.layers.1.mlp.down_proj.weight[3, 7]" in problem.message
    assert "write status: unverified" in problem.message


def test_two_independent_parties_make_a_claim_confirmed_not_reported(make_entry):
    claim = _claim(make_entry, status="reported")
    assert _problem_fields(make_entry(claims=[claim])) == ["claims[0].status"]
    claim["sources"][1]["party"] = claim["sources"][0]["citation"]  # the second source is the first party's own
    assert _problem_fields(make_entry(claims=[claim])) == []


def test_a_source_that_zeroed_the_weight_and_says_what_happened_means_it_is_measured(make_entry):
    zeroed = dict(DETECTOR_ONLY, evidence="ablation", effect="perplexity 10 -> 5000 with only this weight zeroed")
    claim = _claim(make_entry, status="reported", sources=[zeroed])
    problems = validate_entry_dict(make_entry(claims=[claim]))
    assert [p.field for p in problems] == ["claims[0].impact"] and "measured_by" in problems[0].message
    impact = {
        "classification": "critical",
        "measured_by": zeroed["citation"],
        "metric": "perplexity",
        "original": 10.0,
        "zeroed": 5000.0,
        "ratio": 500.0,
    }
    measured = dict(claim, impact=impact)
    assert validate_entry_dict(make_entry(claims=[measured])) == []


@pytest.mark.parametrize(
    ("metric", "ratio", "written", "expected"),
    [
        ("perplexity", 1.03, "significant", "inert"),
        ("accuracy", 0.52, "inert", "critical"),
        ("row_ablation_nll", 1.5, "inert", "critical"),
    ],
)
def test_an_impact_class_follows_its_own_figures_whoever_measured_them(make_entry, metric, ratio, written, expected):
    source = make_entry()["claims"][0]["sources"][0]
    impact = {"classification": written, "measured_by": source["citation"], "metric": metric, "ratio": ratio}
    problems = validate_entry_dict(make_entry(claims=[dict(_claim(make_entry), impact=impact)]))
    assert [p.field for p in problems] == ["claims[0].impact.classification"]
    assert f"write classification: {expected}" in problems[0].message


def test_a_ratio_must_be_zeroed_over_original(make_entry):
    source = make_entry()["claims"][0]["sources"][0]
    impact = {
        "classification": "critical",
        "measured_by": source["citation"],
        "metric": "perplexity",
        "original": 5.67,
        "zeroed": 1211.11,
        "ratio": 2136.0,
    }
    assert _problem_fields(make_entry(claims=[dict(_claim(make_entry), impact=impact)])) == ["claims[0].impact.ratio"]
