"""swindex.dates: the one reader of SWINDEX_TODAY, and the one rule for what a date swindex records looks like."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swindex.dates import DateError, parse_date, today

REPO = Path(__file__).resolve().parent.parent


@given(st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_every_calendar_date_written_yyyy_mm_dd_is_accepted_as_written(day):
    assert parse_date(day.isoformat()) == day.isoformat()


@pytest.mark.parametrize("value", ["2031-02-29", "2030-04-31", "2030-13-01", "2030-00-10", "2030-01-00"])
def test_a_day_the_calendar_does_not_have_is_refused(value):
    with pytest.raises(DateError, match="not a date"):
        parse_date(value)


@given(st.text(max_size=20).filter(lambda text: not (len(text) == 10 and text[4] == "-" and text[7] == "-")))
def test_text_not_shaped_yyyy_mm_dd_is_refused(text):
    with pytest.raises(DateError):
        parse_date(text)


@pytest.mark.parametrize(
    "value", ["2030-1-2", "20300102", "2030/01/02", " 2030-01-02", "2030-01-02T00:00", "٢٠٣٠-٠١-٠٢"]
)
def test_near_misses_of_the_format_are_refused(value):
    with pytest.raises(DateError):
        parse_date(value)


def test_the_refusal_names_what_was_given_on_one_line():
    with pytest.raises(DateError) as refused:
        parse_date("31.12.2030", "--since")
    assert str(refused.value) == "--since='31.12.2030' is not a date; use YYYY-MM-DD (for example 2026-01-31)"


def test_swindex_today_sets_the_date(monkeypatch):
    monkeypatch.setenv("SWINDEX_TODAY", "2030-01-02")
    assert today() == "2030-01-02"


def test_without_swindex_today_the_date_is_the_local_one(monkeypatch):
    monkeypatch.delenv("SWINDEX_TODAY", raising=False)
    before = dt.date.today().isoformat()
    assert today() in (before, dt.date.today().isoformat())  # the day may turn between the two reads


@pytest.mark.parametrize("value", ["2030-13-45", "yesterday", "2030-1-2", "20300102"])
def test_a_malformed_swindex_today_is_an_error_naming_it(monkeypatch, value):
    monkeypatch.setenv("SWINDEX_TODAY", value)
    with pytest.raises(DateError, match=r"SWINDEX_TODAY=.*YYYY-MM-DD"):
        today()


def test_only_swindex_dates_reads_swindex_today():
    """The environment variable has one reader; everything else asks swindex.dates."""
    files = [path for folder in ("swindex", "builder") for path in (REPO / folder).rglob("*.py")]
    named = [str(p.relative_to(REPO)) for p in files if '"SWINDEX_TODAY"' in p.read_text(encoding="utf-8")]
    readers = [
        str(p.relative_to(REPO))
        for p in files
        if "TODAY_ENV" in p.read_text(encoding="utf-8") and p.name != "constants.py"
    ]
    assert named == ["swindex/constants.py"] and readers == ["swindex/dates.py"]
