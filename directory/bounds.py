"""Bounds on what any caller may send, kept in one place so the app API, FHIR and the pages agree.

Dates: a directory of children has no use for a date before 1900 or after 2199, and dates beyond
them break the arithmetic done on them (9999-12-31T23:59:59-14:00 in UTC is past the last year
Python can hold, and a day after 9999-12-31 does not exist), so every surface refuses them first.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TypeVar

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2199, 12, 31)
DATE_RANGE = f"between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"

T = TypeVar("T")


def date_in_bounds(value: date) -> bool:
    """True when a date (or a date-time, on its own calendar day) lies in the accepted range."""
    day = value.date() if isinstance(value, datetime) else value
    return EARLIEST_DATE <= day <= LATEST_DATE


def bounded(value: T) -> T:
    """The value unchanged, unless it is a date or date-time outside the range (ValueError).

    A pydantic validator for any field: other values pass through untouched.
    """
    if isinstance(value, date) and not date_in_bounds(value):
        raise ValueError(f"dates must fall {DATE_RANGE}")
    return value
