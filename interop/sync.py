"""Staying in sync with the catalogue (IHE mCSD ITI-91): when each catalogue row last changed, read
for `_history?_since=` and `_lastUpdated`.

Every catalogue table keeps `updated_at` (migration 0019), set where the table is written
(directory/service/practitioners.py, directory/service/catalogue.py). Practitioner and
PractitionerRole share the practitioner's row, so they change together. Nothing in the catalogue is
deleted: a practitioner who leaves is made inactive (an update, `active: false`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory.bounds import date_in_bounds
from directory.models import (
    Assessment,
    Child,
    Consent,
    Involvement,
    Locality,
    Organisation,
    Practitioner,
    Service,
    Tac,
)
from interop.outcome import FhirError

CATALOGUE_TABLES: dict[str, Any] = {
    "Practitioner": Practitioner,
    "PractitionerRole": Practitioner,
    "Organization": Organisation,
    "HealthcareService": Service,
    "Location": Locality,
}
"""Each catalogue resource type and the table (with `updated_at`) it is made from."""
CHILD_TABLES: dict[str, Any] = {
    "Patient": Child,
    "RelatedPerson": Child,  # parents and carers are part of the record and change with it
    "EpisodeOfCare": Involvement,
    "Flag": Assessment,  # a CAF's status and its Lead Professional in place
    "CareTeam": Tac,
    "CarePlan": Tac,  # a TAC's plan: its actions and reviews move the TAC's updated_at
    "Consent": Consent,
}
"""The child's resources with a type-level history, and the table whose change time (`updated_at`,
migration 0020) says each changed."""
HISTORY_TABLES = CATALOGUE_TABLES | CHILD_TABLES

_INSTANT = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
)
_DAY = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?\Z")
_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge")


def _bad_instant(raw: str, name: str, *, dates: bool) -> FhirError:
    also = " or a date (YYYY, YYYY-MM, YYYY-MM-DD)" if dates else ""
    return FhirError(
        400,
        "invalid",
        f"{name}: '{raw[:64]}' is not an instant: give it with seconds and a time zone, e.g. "
        f"2026-12-05T09:30:00Z or 2026-12-05T09:30:00.5+01:00{also}.",
        where=name,
    )


def _instant_range(raw: str, name: str) -> tuple[datetime, datetime] | None:
    """[start, end) that an instant covers at its precision (a whole second, or its fraction)."""
    m = _INSTANT.match(raw)
    if not m:
        return None
    fraction = (m.group(7) or "")[1:]
    digits = min(len(fraction), 6)
    try:
        start = datetime.fromisoformat(
            f"{raw[:19]}{'.' + fraction[:6].ljust(6, '0') if fraction else ''}"
            f"{'+00:00' if m.group(8) == 'Z' else m.group(8)}"
        ).astimezone(UTC)
    except (ValueError, OverflowError):  # no such day or hour, or beyond the calendar in UTC
        raise _bad_instant(raw, name, dates=False) from None
    if not date_in_bounds(start.date()):
        raise FhirError(400, "invalid", f"{name}: '{raw}' is out of range.", where=name)
    return start, start + timedelta(microseconds=10 ** (6 - digits))


def parse_since(raw: str | None, name: str = "_since") -> datetime | None:
    """The instant `_since` names (400 naming the parameter when it is not an instant)."""
    if raw is None:
        return None
    found = _instant_range(raw.strip(), name)
    if found is None:
        raise _bad_instant(raw, name, dates=False)
    return found[0]


_BOUNDS: dict[str, tuple[str | None, str | None, bool]] = {
    "eq": ("start", "end", False),
    "ne": ("start", "end", True),
    "ge": ("start", None, False),
    "gt": ("end", None, False),
    "le": (None, "end", False),
    "lt": (None, "start", False),
}
"""Per prefix, the [lower, upper) of the value's own range it means, and whether it is negated."""


@dataclass(frozen=True)
class InstantTest:
    """One `_lastUpdated` value: its prefix and the [start, end) its precision covers (UTC)."""

    prefix: str
    start: datetime
    end: datetime

    def _range(self) -> tuple[datetime | None, datetime | None, bool]:
        low, high, negated = _BOUNDS[self.prefix]
        return (getattr(self, low) if low else None, getattr(self, high) if high else None, negated)

    def condition(self, column: Any) -> sa.ColumnElement[bool]:
        """The SQL test of a time column against this value."""
        c = col(column)
        low, high, negated = self._range()
        inside = sa.and_(sa.true(), *([c >= low] if low else []), *([c < high] if high else []))
        return sa.not_(inside) if negated else inside

    def holds(self, when: datetime) -> bool:
        """The same test of one time (a resource's meta.lastUpdated, for resources built in memory)."""
        low, high, negated = self._range()
        inside = (low is None or when >= low) and (high is None or when < high)
        return inside != negated


def parse_last_updated(raw: str, name: str = "_lastUpdated") -> InstantTest:
    """A `_lastUpdated` value: a prefix (eq, ne, lt, le, gt, ge) and an instant or a date."""
    prefix = raw[:2] if raw[:2] in _PREFIXES else "eq"
    value = raw[2:] if raw[:2] in _PREFIXES else raw
    found = _instant_range(value, name)
    if found is None:
        day = _DAY.match(value)
        if not day:
            raise _bad_instant(raw, name, dates=True)
        year, month, dd = int(day.group(1)), int(day.group(2) or 1), int(day.group(3) or 1)
        try:
            first = date(year, month, dd)
            if day.group(3):
                after = first + timedelta(days=1)
            elif day.group(2):
                after = date(year + month // 12, month % 12 + 1, 1)
            else:
                after = date(year + 1, 1, 1)
        except (ValueError, OverflowError):
            raise _bad_instant(raw, name, dates=True) from None
        if not (date_in_bounds(first) and date_in_bounds(after)):
            raise FhirError(400, "invalid", f"{name}: '{raw}' is out of range.", where=name)
        found = (_midnight(first), _midnight(after))
    return InstantTest(prefix, *found)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def last_updated_condition(column: Any, groups: Sequence[Sequence[str]]) -> sa.ColumnElement[bool]:
    """`_lastUpdated` as SQL: each occurrence must hold (AND), any value of one occurrence (OR)."""
    return sa.and_(
        sa.true(),
        *(sa.or_(*(parse_last_updated(v.strip()).condition(column) for v in group)) for group in groups),
    )


def last_updated_tests(groups: Sequence[Sequence[str]]) -> list[list[InstantTest]]:
    """`_lastUpdated` parsed (400 naming it when a value is not an instant or a date): each
    occurrence must hold, any value of one occurrence."""
    return [[parse_last_updated(v.strip()) for v in group] for group in groups]


def last_updated_holds(when: datetime | None, tests: Sequence[Sequence[InstantTest]]) -> bool:
    """`_lastUpdated` of one resource's time, as last_updated_condition tests a column (a resource
    without a time matches no `_lastUpdated`)."""
    if not tests:
        return True
    return when is not None and all(any(t.holds(when) for t in group) for group in tests)


# --- history: what changed since an instant, newest first, in pages --------------------------------

Cursor = tuple[datetime, str, uuid.UUID]
"""Where a page of history ends: (last change, resource type, id) of its last entry."""


def encode_cursor(cursor: Cursor) -> str:
    """The cursor as it travels in a `next` link."""
    at, kind, rid = cursor
    return f"{at.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%f')}.{kind}.{rid.hex}"


def decode_cursor(raw: str | None) -> Cursor | None:
    """A cursor from a `next` link (400 naming `_cursor` when it is not one)."""
    if raw is None:
        return None
    parts = raw.split(".")
    try:
        if len(parts) != 4 or parts[2] not in HISTORY_TABLES:
            raise ValueError(raw)
        at = datetime.strptime(f"{parts[0]}.{parts[1]}", "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
        return at, parts[2], uuid.UUID(hex=parts[3])
    except ValueError:
        raise FhirError(
            400,
            "invalid",
            "_cursor is not one this server gave: follow the Bundle's next link as it is.",
            where="_cursor",
        ) from None


def changed_since(
    session: Session,
    kinds: Sequence[str],
    since: datetime | None,
    after: Cursor | None,
    limit: int,
    where: Mapping[str, sa.ColumnElement[bool]] | None = None,
) -> list[Cursor]:
    """Up to `limit` (type, row) changes at or after `since`, newest first (ordered by change time,
    then type, then id, all descending), starting after the cursor; `where`: per type, which rows
    may be listed at all."""
    found: list[Cursor] = []
    for kind in kinds:
        table = HISTORY_TABLES[kind]
        at, rid = col(table.updated_at), col(table.id)
        stmt = select(at, rid)
        if where and kind in where:
            stmt = stmt.where(where[kind])
        if since is not None:
            stmt = stmt.where(at >= since)
        if after is not None:
            c_at, c_kind, c_id = after
            same_time = sa.true() if kind < c_kind else (rid < c_id) if kind == c_kind else sa.false()
            stmt = stmt.where(sa.or_(at < c_at, sa.and_(at == c_at, same_time)))
        rows = session.exec(stmt.order_by(at.desc(), rid.desc()).limit(limit)).all()
        found += [(row_at, kind, row_id) for row_at, row_id in rows]
    found.sort(reverse=True)
    return found[:limit]
