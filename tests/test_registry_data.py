"""The shipped registry: seeded from every published coordinate, and its packaged index is fresh."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest

from swindex import UnknownModelError, lookup
from swindex.claims import status_from_sources
from swindex.migrate import downgrade
from swindex.sitegen.build import v1_schema
from swindex.validate import validate_registry
from swindex.yamlio import load_yaml

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "published_super_weights.yaml"
RENAMED = {"gpt2": "openai-community/gpt2"}
TENSOR_RENAMES = {
    "language_model.model.layers.1.mlp.down_proj.weight": "model.language_model.layers.1.mlp.down_proj.weight"
}


# Every published scalar coordinate of a model with a Hugging Face id, derived from the shared reference
# file and kept in the repository, so this check also runs where that file is not (CI on a fresh clone).
PUBLISHED = Path(__file__).resolve().parent / "fixtures" / "published_coordinates.yaml"


def _derive_published(reference: Path) -> list[dict]:
    rows = []
    for item in load_yaml(reference):
        if "/" not in item["model"] and item["model"] not in RENAMED:
            continue
        for claim in item["claims"]:
            if claim["kind"] == "scalar" and claim["row"] is not None:
                tensor = TENSOR_RENAMES.get(claim["tensor"], claim["tensor"]).split(" ", 1)[0]
                rows.append(
                    {
                        "model": RENAMED.get(item["model"], item["model"]),
                        "layer": claim["layer"],
                        "tensor": tensor,
                        "row": claim["row"],
                        "column": claim["col"],
                    }
                )
    return rows


def _published_scalars():
    for row in load_yaml(PUBLISHED):
        yield row["model"], row


def test_the_published_coordinates_fixture_is_what_the_reference_file_says():
    if not REFERENCE.exists():
        pytest.skip("the shared reference file is not beside this checkout (the fixture derived from it is checked in)")
    assert load_yaml(PUBLISHED) == _derive_published(REFERENCE), "regenerate tests/fixtures/published_coordinates.yaml"


def test_every_published_scalar_coordinate_is_found_as_published():
    missing = []
    published = list(_published_scalars())
    assert len(published) >= 40
    for model, claim in published:
        entry = lookup(model)
        found = [
            sw
            for sw in entry.claims
            if sw.layer == claim["layer"]
            and sw.row == claim["row"]
            and sw.column == claim["column"]
            and (sw.tensor == claim["tensor"] or sw.expert is not None)
        ]
        if not found:
            missing.append((model, claim["layer"], claim["row"], claim["column"]))
    assert missing == []


PAPER_TABLE_2 = {
    "huggyllama/llama-7b": [(2, 3968, 7003)],
    "huggyllama/llama-13b": [(2, 2231, 2278), (2, 2231, 6939)],
    "huggyllama/llama-30b": [(3, 5633, 12817), (3, 5633, 17439), (10, 5633, 14386)],
    "meta-llama/Llama-2-7b-hf": [(1, 2533, 7890)],
    "meta-llama/Llama-2-13b-hf": [(3, 4743, 7678)],
    "mistralai/Mistral-7B-v0.1": [(1, 2070, 7310)],
    "allenai/OLMo-1B-0724-hf": [(1, 1764, 1710), (1, 1764, 8041)],
    "allenai/OLMo-7B-0724-hf": [(1, 269, 7467), (2, 269, 8275), (7, 269, 453), (24, 269, 2300)],
    "microsoft/Phi-3-mini-4k-instruct": [
        (2, 525, 808),
        (2, 1693, 808),
        (2, 1113, 808),
        (4, 525, 2723),
        (4, 1113, 2723),
        (4, 1693, 2723),
    ],
    "meta-llama/Meta-Llama-3-8B": [(1, 788, 2427), (1, 1384, 2427), (1, 4062, 2427)],
}


@pytest.mark.parametrize("model", sorted(PAPER_TABLE_2))
def test_paper_and_official_code_coordinates_are_kept_exactly(model):
    entry = lookup(model)
    have = {(sw.layer, sw.row, sw.column) for sw in entry.claims}
    for layer, row, column in PAPER_TABLE_2[model]:
        assert (layer, row, column) in have
        sw = next(s for s in entry.claims if (s.layer, s.row, s.column) == (layer, row, column))
        assert sw.tensor == f"model.layers.{layer}.mlp.down_proj.weight" and sw.index == (row, column)
        assert any(
            s.kind in ("paper", "code") and "LLMSuperWeight" in (s.url or "") + s.citation or "2411.07191" in s.citation
            for s in sw.sources
        )


def test_every_claim_cites_an_original_source_not_the_research_file():
    for path in (REPO / "registry").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "published_super_weights" not in text, path
        for shorthand in ("PAPERv1", "OFFICIAL", "FABIAN", "GSLAB", "SUPEREXP"):
            assert shorthand not in text, (path, shorthand)


def test_olmo_1b_disagreement_shows_both_layers():
    entry = lookup("allenai/OLMo-1B-0724-hf")
    statuses = {(sw.layer, sw.row, sw.column): sw.status for sw in entry.claims}
    assert statuses[(1, 1764, 8041)] == "disputed"
    assert statuses[(2, 1764, 8041)] == "confirmed"


def test_harmless_and_withdrawn_coordinates_are_kept_on_record_but_never_handed_out():
    gpt2 = lookup("gpt2")
    assert gpt2.claims[0].impact.classification == "inert" and gpt2.super_weights == ()
    assert gpt2.verdict.outcome == "no_critical_weight"
    gemma = lookup("google/gemma-7b")
    assert gemma.claims[0].status == "withdrawn" and gemma.super_weights == ()
    chat = lookup("meta-llama/Llama-2-7b-chat-hf")
    assert {sw.status for sw in chat.claims} == {"disputed"} and chat.super_weights == ()


def test_expert_level_reports_are_findings_not_coordinates():
    entry = lookup("mistralai/Mixtral-8x7B-v0.1")
    assert entry.super_weights == () and entry.other_findings[0].kind == "expert"
    moe = lookup("Qwen/Qwen3-30B-A3B").super_weights[0]
    assert (moe.expert, moe.index, moe.tensor) == (68, (68, 940, 711), "model.layers.1.mlp.experts.down_proj")


def _registry_files() -> list[tuple[Path, dict]]:
    files = sorted((REPO / "registry").rglob("*.yaml"))
    assert len(files) >= 40, f"{len(files)} registry entries found: every check over them would pass on nothing"
    return [(path, load_yaml(path)) for path in files]


def test_every_validator_rule_holds_for_every_entry_of_the_registry():
    assert len(_registry_files()) >= 40
    assert [str(p) for p in validate_registry(REPO / "registry")] == []


def test_every_entry_downgrades_to_a_document_schema_1_readers_accept():
    validator = jsonschema.Draft202012Validator(v1_schema())
    for path, data in _registry_files():
        errors = [e.message for e in validator.iter_errors(downgrade(data))]
        assert errors == [], path.name


def test_every_standing_status_is_what_its_sources_give():
    for _, data in _registry_files():
        entry = lookup(data["id"])
        for claim in entry.claims:
            if claim.status not in ("disputed", "withdrawn"):
                assert claim.status == status_from_sources(claim.sources), (entry.id, claim.coordinate)


def test_llama_2_7b_has_the_papers_one_super_weight():
    entry = lookup("meta-llama/Llama-2-7b-hf")
    assert [c.coordinate for c in entry.super_weights] == ["model.layers.1.mlp.down_proj.weight[2533, 7890]"]
    assert entry.verdict.text == "1 super weight"


def test_mistral_7b_super_weight_is_measured_critical_by_the_notebook_that_zeroed_it():
    (weight,) = lookup("mistralai/Mistral-7B-v0.1").super_weights
    assert weight.impact.classification == "critical" and weight.impact.ratio == pytest.approx(497.37, rel=1e-3)
    assert "validate_super_weights.ipynb" in weight.impact.measured_by


def test_detector_only_layer_1_siblings_of_llama_3_1_8b_are_not_handed_out():
    entry = lookup("meta-llama/Llama-3.1-8B")
    siblings = {c.status for c in entry.claims if c.layer == 1 and c.row in (1384, 4062)}
    assert entry.super_weights == () and siblings == {"unverified"}


def test_a_test_fixture_is_not_a_public_registry_entry():
    with pytest.raises(UnknownModelError):
        lookup("karpathy/stories260K")


def _sources(data: dict):
    for item in [*(data.get("claims") or []), *(data.get("other_findings") or [])]:
        yield from item["sources"]


LATE_LAYER_CANDIDATES = [
    ("meta-llama/Llama-2-7b-hf", 29, 2533, 5162),
    ("meta-llama/Llama-2-7b-hf", 29, 1415, 5162),
    ("meta-llama/Llama-2-7b-hf", 30, 2533, 3721),
    ("meta-llama/Llama-2-7b-hf", 30, 1415, 3721),
    ("mistralai/Mistral-7B-v0.1", 31, 53, 2187),
    ("allenai/OLMo-1B-0724-hf", 15, 1764, 3454),
    ("allenai/OLMo-7B-0724-hf", 30, 269, 10093),
    ("meta-llama/Llama-3.1-8B", 31, 1384, 4581),
    ("meta-llama/Llama-3.1-8B", 31, 4062, 12732),
    ("meta-llama/Llama-3.1-8B", 31, 1384, 12732),
    ("meta-llama/Llama-3.1-8B", 31, 788, 12732),
    ("microsoft/Phi-3-mini-4k-instruct", 4, 2046, 2723),
]


@pytest.mark.parametrize(("model", "layer", "row", "column"), LATE_LAYER_CANDIDATES)
def test_spikes_a_detector_listed_but_nobody_zeroed_are_candidates_lookup_does_not_hand_out(model, layer, row, column):
    entry = lookup(model)
    (claim,) = [c for c in entry.claims if (c.layer, c.row, c.column) == (layer, row, column)]
    assert claim.status == "unverified" and claim.impact.classification == "unmeasured"
    assert claim not in entry.super_weights and claim not in entry.weights_to_keep


def test_llama_7b_impact_is_the_papers_table_1_ablation():
    (claim,) = lookup("huggyllama/llama-7b").claims
    paper = next(s for s in claim.sources if s.citation == claim.impact.measured_by)
    assert paper.kind == "paper" and "Table 1" in paper.citation and paper.evidence == "ablation"
    impact = claim.impact
    assert impact.classification == "critical" and impact.metric == "perplexity"
    assert (impact.original, impact.zeroed) == (5.67, 1211.11) and impact.measured_by == paper.citation
    assert all(figure in paper.effect for figure in ("5.67", "1211.11", "7.08", "763.65", "35.14", "50.09"))
    assert "49.94" not in (lookup("huggyllama/llama-7b").notes or "")


def test_llama_7b_activation_figures_cite_the_official_notebook_not_table_2_or_model_py():
    (claim,) = lookup("huggyllama/llama-7b").claims
    with_figures = [s for s in claim.sources if s.measurements.get("down_proj_output_max") == 1313.0]
    assert [s.kind for s in with_figures] == ["notebook"] and "figures.ipynb" in with_figures[0].url


def test_every_commit_in_a_source_url_is_a_full_sha_unless_its_entry_says_it_was_not_found():
    short = []
    for path, data in _registry_files():
        for item in [*(data.get("claims") or []), *(data.get("other_findings") or [])]:
            for source in item["sources"]:
                for sha in re.findall(r"/(?:blob|tree|commit)/([0-9a-f]+)(?:/|$|#)", source.get("url") or ""):
                    if len(sha) != 40 and f"short sha {sha}" not in (item.get("notes") or ""):
                        short.append((path.name, source["url"]))
    assert short == []


def test_an_entry_pins_the_checkpoint_revision_its_sources_name():
    for path, data in _registry_files():
        named = {
            m
            for s in _sources(data)
            for text in (s.get("citation", ""), s.get("effect") or "")
            for m in re.findall(r"revision ([0-9a-f]{40})", text)
        }
        assert len(named) <= 1, path
        if named:
            assert data.get("revision") == named.pop(), path


# Parameter counts no source or config at hand gives exactly (as transformers counts them: model.parameters()).
PARAMETERS_UNKNOWN = {
    "allenai/OLMo-1B-0724-hf",
    "EuroBERT/EuroBERT-210m",
    "EuroBERT/EuroBERT-610m",
    "EuroBERT/EuroBERT-2.1B",
    "mosaicml/mosaic-bert-base",
}


def test_every_entry_records_its_parameter_count_unless_it_is_listed_as_unknown():
    missing = {data["id"] for _, data in _registry_files() if not data.get("parameters")}
    assert missing <= PARAMETERS_UNKNOWN


def test_a_commented_out_line_is_unverified_not_a_withdrawal():
    falcon = lookup("tiiuae/falcon-7b")
    assert {c.status for c in falcon.claims} == {"unverified"} and falcon.super_weights == ()
    assert {s.evidence for c in falcon.claims for s in c.sources} == {"unlabeled"}


def test_olmo_1b_layer_3_cites_the_notebook_it_is_in_and_issue_6_corroborates_layers_3_and_15():
    entry = lookup("allenai/OLMo-1B-0724-hf")
    layer3 = next(c for c in entry.claims if (c.layer, c.row, c.column) == (3, 1764, 1902))
    assert [s.url.rsplit("/", 1)[-1] for s in layer3.sources if s.kind == "notebook"] == [
        "validate_super_weights.ipynb"
    ]
    assert not any("comprehensive_analysis" in s.citation for s in layer3.sources)
    for column in (1902, 6840):
        claim = next(c for c in entry.claims if c.row == 1764 and c.column == column and c.layer in (3, 15))
        assert any(s.kind == "issue" and s.url.endswith("/issues/6") for s in claim.sources)
        assert claim.impact.classification == "inert" and "validate_super_weights.ipynb" in claim.impact.measured_by


def test_the_notebook_run_that_zeroed_788_2427_alone_belongs_to_llama_3_1_8b():
    llama31 = next(c for c in lookup("meta-llama/Llama-3.1-8B").claims if (c.layer, c.row, c.column) == (1, 788, 2427))
    assert llama31.impact.classification == "inert" and (llama31.impact.original, llama31.impact.zeroed) == (
        11.0021,
        11.296,
    )
    llama3 = lookup("meta-llama/Meta-Llama-3-8B")
    assert all(s.url for c in llama3.claims for s in c.sources), "a source without a URL does not support a claim"
    assert all("x1.027" in (c.notes or "") and "Not known" in (c.notes or "") for c in llama3.claims)


def test_the_official_code_supports_all_six_phi_3_paper_claims():
    entry = lookup("microsoft/Phi-3-mini-4k-instruct")
    for layer, row, column in PAPER_TABLE_2["microsoft/Phi-3-mini-4k-instruct"]:
        claim = next(c for c in entry.claims if (c.layer, c.row, c.column) == (layer, row, column))
        assert any(s.kind == "code" and "outliers/model.py#L31" in s.url for s in claim.sources)


@pytest.mark.parametrize(
    ("model", "layer", "row", "column"),
    [
        ("huggyllama/llama-7b", 2, 3968, 7003),
        ("mistralai/Mistral-7B-v0.1", 1, 2070, 7310),
        ("allenai/OLMo-7B-0724-hf", 1, 269, 7467),
    ],
)
def test_census_sources_say_their_linked_file_supports_only_the_row(model, layer, row, column):
    claim = next(c for c in lookup(model).claims if (c.layer, c.row, c.column) == (layer, row, column))
    (census,) = [s for s in claim.sources if s.citation.startswith("Georgakopoulos-Soares-lab")]
    assert "supports only the row" in census.effect and "not this one weight" in census.effect


def test_every_published_super_expert_is_a_finding():
    qwen = {(f.layer, f.expert) for f in lookup("Qwen/Qwen3-30B-A3B").other_findings}
    assert qwen == {(1, 68), (2, 92), (3, 82)}
    r1 = lookup("deepseek-ai/DeepSeek-R1").other_findings
    assert len(r1) == 10 and all(f.kind == "expert" and f.layer is not None for f in r1)
    assert sum(f.expert is None for f in r1) == 5


def test_llava_claims_name_the_checkpoint_key_beside_the_transformers_5_name():
    for claim in lookup("llava-hf/llava-1.5-7b-hf").claims:
        assert (
            claim.tensor.startswith("model.language_model.layers.1.")
            and "language_model.model.layers.1." in claim.notes
        )


def test_aliases_say_which_checkpoint_they_mean():
    assert lookup("Llama-2-13b").id == "meta-llama/Llama-2-13b-hf"
    mistral = lookup("Mistral-7B")
    assert mistral.id == "mistralai/Mistral-7B-v0.1" and "v0.1 only" in mistral.notes


def test_deepseek_v2_lite_notes_the_papers_versions():
    notes = lookup("deepseek-ai/DeepSeek-V2-Lite").notes
    assert "v1" in notes and "v3" in notes and "Expert 54" in notes


def test_swindex_index_in_another_checkout_writes_that_checkouts_index(
    tmp_path, make_entry, write_registry, monkeypatch
):
    from swindex.cli import main
    from swindex.registry import PACKAGED_INDEX as installed

    PACKAGED_INDEX = Path(installed)
    checkout = tmp_path / "checkout"
    (checkout / "swindex" / "data").mkdir(parents=True)
    write_registry(make_entry(), root=checkout / "registry")
    before = PACKAGED_INDEX.read_bytes() if PACKAGED_INDEX.exists() else None
    monkeypatch.chdir(checkout)
    assert main(["index"]) == 0
    assert "acme/tiny-llama" in (checkout / "swindex" / "data" / "registry.json").read_text(encoding="utf-8")
    assert (PACKAGED_INDEX.read_bytes() if PACKAGED_INDEX.exists() else None) == before


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["index", "--registry", "registry", "--output", "{tmp}"], "is a directory"),
        (["validate", "--registry", "{tmp}/file"], "is a file"),
        (["verify", "some/model", "--entry", "{tmp}"], "Is a directory"),
    ],
    ids=["index-output-dir", "validate-registry-file", "verify-entry-dir"],
)
def test_cli_path_mistakes_are_one_line_errors(tmp_path, capsys, argv, says):
    from swindex.cli import main

    (tmp_path / "file").write_text("x", encoding="utf-8")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code in (1, 2) and says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_names_the_extra_a_missing_module_belongs_to(capsys, monkeypatch):
    from swindex import cli

    def needs_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(needs_torch))
    assert cli.main(["x"]) == 1
    assert 'pip install "swindex[detect]"' in capsys.readouterr().err


def _parser_with(handler):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("x").set_defaults(handler=handler)
    return parser
