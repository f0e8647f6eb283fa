"""What `swindex.verification.record` refuses, on scripted reports (no model): every front end that records a
verification (`swindex verify --output`, `detect --verify`, the builder) gets these refusals from it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from report_support import scripted_report
from swindex.errors import FingerprintMismatchError, VerificationError
from swindex.verification import VerificationReport, record

TODAY = "2031-02-03"
REPO = Path(__file__).resolve().parent.parent


class StatusRewritingReport(VerificationReport):
    """A report whose recording also rewrites a claim's status: what a bug in reconciling would do."""

    def applied(self, entry):
        updated, changes = super().applied(entry)
        updated["claims"][0]["status"] = "withdrawn"
        return updated, changes


def test_a_report_on_other_weights_is_refused_naming_the_model_and_the_file(make_entry):
    entry = make_entry()
    report = scripted_report(entry, today=TODAY, matches=False)
    with pytest.raises(FingerprintMismatchError) as refused:
        record(entry, report, today=TODAY, where="out/entry.yaml")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{entry['id']}: the verification is not recorded in out/entry.yaml: ")
    assert "loaded weights differ" in message and "verify the model" in message


def test_a_refused_report_leaves_the_entry_as_it_was(make_entry):
    entry = make_entry()
    before = copy.deepcopy(entry)
    with pytest.raises(FingerprintMismatchError):
        record(entry, scripted_report(entry, today=TODAY, matches=False), today=TODAY)
    assert entry == before


def test_a_fingerprint_mismatch_is_a_verification_error(make_entry):
    """Front ends that sort failures by kind (the builder's summary) count it as a verification failure."""
    entry = make_entry()
    with pytest.raises(VerificationError):
        record(entry, scripted_report(entry, today=TODAY, matches=False), today=TODAY)


def test_a_name_from_the_file_is_escaped_in_the_refusal(make_entry):
    entry = make_entry()
    report = scripted_report(entry, today=TODAY, matches=False)
    hostile = dict(entry, id="acme/\x1b[31mred")
    with pytest.raises(FingerprintMismatchError) as refused:
        record(hostile, report, today=TODAY)
    assert "\x1b" not in str(refused.value) and "\\x1b" in str(refused.value)


def test_recording_that_would_change_a_claims_status_is_refused(make_entry):
    entry = make_entry()
    report = scripted_report(entry, today=TODAY)
    rewriting = StatusRewritingReport(**{f.name: getattr(report, f.name) for f in dataclasses.fields(report)})
    with pytest.raises(VerificationError, match="beyond its evidence"):
        record(entry, rewriting, today=TODAY)


def test_a_matching_report_is_recorded_with_the_run_dated_by_the_report(make_entry):
    entry = make_entry()
    recorded = record(entry, scripted_report(entry, today=TODAY), today=TODAY)
    assert recorded.entry["evidence"]["verification"]["date"] == TODAY
    assert recorded.entry["modified"] == TODAY


@pytest.mark.parametrize("front_end", ["builder/pipeline.py", "builder/backend.py", "swindex/commands/verify.py"])
def test_front_ends_record_through_the_library_function(front_end):
    """Applying a report, recording its artifact and dating the run belong to `record`, not to a front end."""
    text = (REPO / front_end).read_text(encoding="utf-8")
    assert ".applied(" not in text and '("verification",)' not in text and '["date"] =' not in text
    assert "record(" in text or front_end == "builder/backend.py"
