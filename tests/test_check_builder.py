"""The builder's derived models: each is read with `swindex check` and recorded in evidence.derived_checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.modellist import DerivedModel, ModelListError, ModelSpec, parse_model_list
from builder.pipeline import Backend, RunOptions, run_model
from check_support import down_projections, llama_config, write_folder
from report_support import scripted_report
from swindex.verification import VerificationReport, record
from swindex.validate import validate_entry_dict
from swindex.yamlio import load_yaml

TODAY = "2030-01-02"
SHA = "89abcdef0123456789abcdef0123456789abcdef"


def test_an_item_lists_its_derived_models(tmp_path: Path) -> None:
    data = {
        "models": [
            {
                "id": "acme/tiny-llama",
                "derived": [
                    {"id": "someone/tiny-llama-chat", "revision": SHA},
                    {"id": "someone/tiny-llama-GGUF", "path": "q/model.Q4_1.gguf"},
                ],
            }
        ]
    }
    (spec,) = parse_model_list(data, tmp_path / "models.yaml")
    assert spec.derived == (
        DerivedModel("someone/tiny-llama-chat", SHA, None),
        DerivedModel("someone/tiny-llama-GGUF", None, str((tmp_path / "q" / "model.Q4_1.gguf").resolve())),
    )


@pytest.mark.parametrize(
    ("derived", "message"),
    [
        ([{"id": "a/b", "branch": "main"}], "branch"),
        ([{"id": "a/b", "revision": "main"}], "does not match"),
        ([], "should be non-empty"),
    ],
)
def test_a_malformed_derived_list_is_refused(tmp_path: Path, derived: list, message: str) -> None:
    with pytest.raises(ModelListError, match=message):
        parse_model_list({"models": [{"id": "acme/tiny-llama", "derived": derived}]}, tmp_path / "models.yaml")


def detected_entry() -> dict:
    claim = {
        "layer": 1,
        "tensor": "model.layers.1.mlp.down_proj.weight",
        "row": 5,
        "column": 7,
        "expert": None,
        "index": [5, 7],
        "value": -1.5,
        "value_dtype": "float32",
        "status": "detected",
        "impact": {"classification": "unmeasured"},
        "sources": [{"citation": "swindex-fake 1 detector", "kind": "swindex", "evidence": "detected", "date": TODAY}],
    }
    return {
        "schema_version": 2,
        "id": "acme/tiny-llama",
        "architecture": "LlamaForCausalLM",
        "family": "llama",
        "revision": None,
        "modified": TODAY,
        "dimensions": {"num_layers": 4, "hidden_size": 64, "intermediate_size": 256},
        "claims": [claim],
        "evidence": {"detection": {"tool": "swindex-fake 1", "date": TODAY, "dtype": "float32", "layers": []}},
    }


def measured_critical(
    model: object, entry: dict, spec: ModelSpec | None, today: str = TODAY, say: object = None
) -> VerificationReport:
    """A verification that measured every claim critical (perplexity x5)."""
    return scripted_report(entry, today=today, ratio=5.0)


def test_the_builder_records_whether_each_derived_model_kept_the_super_weights(tmp_path: Path) -> None:
    kept = write_folder(tmp_path / "chat", down_projections(plants={(1, 5, 7): -1.49}), llama_config())
    zeroed = write_folder(tmp_path / "abliterated", down_projections(plants={(1, 5, 7): 0.0}), llama_config())
    spec = ModelSpec(
        id="acme/tiny-llama",
        path=str(tmp_path),
        derived=(
            DerivedModel("someone/tiny-llama-chat", None, str(kept)),
            DerivedModel("someone/tiny-llama-abliterated", SHA, str(zeroed)),
            DerivedModel("someone/tiny-llama-missing", None, str(tmp_path / "nowhere")),
        ),
    )
    backend = Backend(
        tool=lambda: "swindex-fake 1",
        resolve_revision=lambda spec: None,
        load=lambda spec, revision: object(),
        detect=lambda model, spec: detected_entry(),
        verify=measured_critical,
    )
    with pytest.warns(UserWarning, match="someone/tiny-llama-missing could not be checked"):
        outcome = run_model(spec, backend, RunOptions(registry=tmp_path / "registry", today=TODAY))
    assert outcome.ok, outcome.message
    entry = load_yaml(tmp_path / "registry" / "acme" / "tiny-llama.yaml")
    assert entry["evidence"]["derived_checks"] == [
        {"id": "someone/tiny-llama-chat", "revision": None, "date": TODAY, "verdict": "kept", "weights": 1, "kept": 1},
        {
            "id": "someone/tiny-llama-abliterated",
            "revision": SHA,
            "date": TODAY,
            "verdict": "lost",
            "weights": 1,
            "kept": 0,
        },
        {
            "id": "someone/tiny-llama-missing",
            "revision": None,
            "date": TODAY,
            "verdict": "unknown",
            "weights": 1,
            "kept": 0,
        },
    ]
    assert validate_entry_dict(entry) == []


def test_the_model_page_says_how_many_derived_checkpoints_kept_them() -> None:
    markdown = pytest.importorskip("markdown")
    from swindex.records import Entry
    from swindex.sitegen.pages import SiteLinks, model_view
    from swindex.sitegen.render import environment
    from swindex.sitegen.sources import find_sources

    data = record(detected_entry(), measured_critical(None, detected_entry(), None), today=TODAY).entry
    data["evidence"]["derived_checks"] = [
        {"id": "a/kept", "revision": None, "date": TODAY, "verdict": "kept", "weights": 1, "kept": 1},
        {"id": "a/lost", "revision": SHA, "date": TODAY, "verdict": "lost", "weights": 1, "kept": 0},
    ]
    assert validate_entry_dict(data) == []
    view = model_view(
        Entry.from_dict(data, path="acme/tiny-llama.yaml"),
        SiteLinks(repo_url=None, edit_prefix=None, hub_endpoint=None),
    )
    page = environment(find_sources().templates).get_template("model.md.j2").render(m=view, here=view.url)
    html = markdown.markdown(page, extensions=["md_in_html", "tables"])
    assert "Derived checkpoints checked: 2, kept 1" in html
