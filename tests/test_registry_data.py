"""The shipped registry: seeded from every published coordinate, and its packaged index is fresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from swindex import lookup
from swindex.yamlio import load_yaml

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "published_super_weights.yaml"
RENAMED = {"gpt2": "openai-community/gpt2"}
TENSOR_RENAMES = {"language_model.model.layers.1.mlp.down_proj.weight": "model.language_model.layers.1.mlp.down_proj.weight"}


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
                rows.append({"model": RENAMED.get(item["model"], item["model"]), "layer": claim["layer"], "tensor": tensor, "row": claim["row"], "column": claim["col"]})
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
            sw for sw in entry.claims
            if sw.layer == claim["layer"] and sw.row == claim["row"] and sw.column == claim["column"]
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
    "microsoft/Phi-3-mini-4k-instruct": [(2, 525, 808), (2, 1693, 808), (2, 1113, 808), (4, 525, 2723), (4, 1113, 2723), (4, 1693, 2723)],
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
        assert any(s.kind in ("paper", "code") and "LLMSuperWeight" in (s.url or "") + s.citation or "2411.07191" in s.citation for s in sw.sources)


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


def test_swindex_index_in_another_checkout_writes_that_checkouts_index(tmp_path, make_entry, write_registry, monkeypatch):
    from swindex.cli import main
    from swindex.registry import PACKAGED_INDEX

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
