"""Recording a verification in an entry (schema 2 impact and verdict); the dates themselves: test_dates.py."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from fixtures_dependent import dependent_llama, entry_for, largest_weight, unplanted  # noqa: E402

from swindex.dates import DateError  # noqa: E402
from swindex.errors import ValidationError  # noqa: E402
from swindex.validate import validate_entry_dict  # noqa: E402
from swindex.verification import record, verify  # noqa: E402

RUN = {"sequences": 4, "length": 32, "batch_size": 4}
IMPACT_FIELDS = {
    "classification",
    "measured_by",
    "metric",
    "original",
    "zeroed",
    "ratio",
    "super_activation",
    "super_activation_zeroed",
    "date",
}


@pytest.fixture(scope="module")
def critical():
    """A model whose planted weight is critical, an entry claiming it and one ordinary weight, and its report."""
    model, planted = dependent_llama(seed=0)
    ordinary = largest_weight(model, "model.layers.4.mlp.down_proj.weight")
    entry = entry_for(model, planted, ordinary)
    return entry, verify(model, entry, today="2031-02-03", **RUN)


def test_each_measured_claim_records_its_impact_in_schema_2_form(critical):
    entry, report = critical
    recorded = record(entry, report, today="2031-02-03")
    planted, ordinary = recorded.entry["claims"]
    assert set(planted["impact"]) >= IMPACT_FIELDS
    assert planted["impact"]["classification"] == "critical" and ordinary["impact"]["classification"] == "inert"
    assert planted["impact"]["measured_by"] == "swindex" and planted["impact"]["metric"] == "perplexity"
    assert planted["impact"]["original"] == pytest.approx(report.original)
    assert planted["impact"]["ratio"] == pytest.approx(planted["impact"]["zeroed"] / report.original)
    assert planted["impact"]["date"] == "2031-02-03"
    assert "impact" not in (planted.get("evidence") or {})


def test_the_verdict_counts_the_super_weights_and_the_joint_ratio(critical):
    entry, report = critical
    verdict = record(entry, report, today="2031-02-03").entry["verdict"]
    assert verdict["outcome"] == "super_weights" and verdict["super_weights"] == 1
    assert verdict["candidates"] == 2
    assert verdict["joint_ratio"] == pytest.approx(report.all_zeroed / report.original, rel=1e-5)


def test_a_model_without_a_critical_weight_gets_the_no_critical_weight_verdict():
    model = unplanted(seed=0)
    claims = [largest_weight(model, f"model.layers.{layer}.mlp.down_proj.weight") for layer in (1, 3)]
    entry = entry_for(model, *claims)
    report = verify(model, entry, today="2031-02-03", **RUN)
    verdict = record(entry, report, today="2031-02-03").entry["verdict"]
    assert verdict["outcome"] == "no_critical_weight" and verdict["candidates"] == 2
    assert verdict["joint_ratio"] == pytest.approx(report.all_zeroed / report.original, rel=1e-5)


def test_recording_keeps_the_entry_level_run_and_validates(critical):
    entry, report = critical
    recorded = record(entry, report, today="2031-02-03")
    assert validate_entry_dict(recorded.entry) == []
    run = recorded.entry["evidence"]["verification"]
    assert run["date"] == "2031-02-03" and run["all_zeroed"] == pytest.approx(report.all_zeroed)


def test_recording_dates_modified_only_when_something_changed(critical):
    entry, report = critical
    first = record(entry, report, today="2031-02-03").entry
    assert first["modified"] == "2031-02-03"
    again = record(first, report, today="2031-03-04").entry
    assert again["modified"] == "2031-02-03"


def test_recording_never_returns_an_invalid_entry(critical):
    entry, report = critical
    broken = copy.deepcopy(entry)
    broken["dimensions"]["hidden_size"] = "wide"
    with pytest.raises(ValidationError, match="hidden_size"):
        record(broken, report, today="2031-02-03")


def test_the_report_is_dated_with_the_day_it_is_given(critical):
    assert critical[1].date == "2031-02-03"


def test_verify_refuses_a_malformed_date():
    model, planted = dependent_llama(seed=0)
    with pytest.raises(DateError, match="today"):
        verify(model, entry_for(model, planted), today="31.12.2030", **RUN)


def test_the_detector_refuses_a_malformed_swindex_today_too(monkeypatch):
    """It used to fall back to the system date silently while the builder refused the same value."""
    from planted import build_planted

    from swindex.detection import detect

    model, _ = build_planted("llama")
    monkeypatch.setenv("SWINDEX_TODAY", "2030-13-45")
    with pytest.raises(DateError, match="SWINDEX_TODAY"):
        detect(model)


def test_the_cli_refuses_a_malformed_swindex_today_before_loading(tmp_path, monkeypatch, capsys):
    from swindex.cli import main
    from swindex.yamlio import dump_yaml

    model, planted = dependent_llama(seed=0)
    entry_file = tmp_path / "entry.yaml"
    entry_file.write_text(dump_yaml(entry_for(model, planted)), encoding="utf-8")
    monkeypatch.setenv("SWINDEX_TODAY", "2030-13-45")
    code = main(["verify", str(tmp_path / "missing-model"), "--entry", str(entry_file), "--quiet"])
    assert code == 1
    assert "SWINDEX_TODAY='2030-13-45' is not a date" in capsys.readouterr().err
