"""Today's date for everything swindex records, read in this one place.

Why one place: entries, evidence and reports carry dates, and reproducible runs (the builder in CI, tests)
pin them with ``SWINDEX_TODAY=YYYY-MM-DD``. Library code takes ``today`` as an argument; only the front
ends (the CLI, the builder, the public ``detect``/``verify`` functions when no date is passed) call
`today()`, so a malformed value is refused the same way everywhere instead of being ignored in one place.
"""

from __future__ import annotations

import datetime as _dt
import os
import re

from .constants import TODAY_ENV as ENV
from .errors import SwindexError

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class DateError(SwindexError):
    """A date swindex was given is not a real YYYY-MM-DD date."""


def parse_date(value: str, what: str = "date") -> str:
    """``value`` when it is a real calendar date written YYYY-MM-DD, else DateError naming ``what``."""
    text = str(value)
    try:
        valid = bool(_DATE.match(text)) and _dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        valid = False
    if not valid:
        raise DateError(f"{what}={text!r} is not a date; use YYYY-MM-DD (for example 2026-01-31)")
    return text


def today() -> str:
    """``SWINDEX_TODAY`` when it is set (reproducible runs and tests), otherwise the local date, as YYYY-MM-DD."""
    value = os.environ.get(ENV)
    if value:
        return parse_date(value, ENV)
    return _dt.date.today().isoformat()


__all__ = ["ENV", "DateError", "parse_date", "today"]
