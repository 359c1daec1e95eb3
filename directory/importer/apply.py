"""How a feed row meets the record it matched: the record as it stands (loaded a batch at a time),
which fields differ, which of those the row's source is trusted for, and the one place a row's
trusted fields are applied (through the domain's function for changing a child's details).

Used by the feed run (reconcile.py) and by a person's decision on a held row (reviews.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session

from directory.identifiers import NHS_NUMBER_SYSTEM, UPN_SYSTEM
from directory.importer.precedence import Precedence
from directory.importer.rows import AddressRow, ChildRow
from directory.models import (
    Actor,
    AddressIn,
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    IdentifierIn,
)
from directory.models.details import ChildChange, OfficialNameIn
from directory.service.details import change_child

_IN = 500


@dataclass
class Standing:
    """A record as it stands, as far as a feed row is compared with it."""

    child_id: uuid.UUID
    status: str
    shielded: bool
    date_of_birth: date | None
    sex: str
    name: tuple[str, str | None, str] | None = None  # the official (given, middle, family)
    identifiers: dict[str, str] = field(default_factory=dict)  # system -> value
    address: tuple[str, str | None, str | None, str] | None = None  # current (line1, line2, town, postcode)
    merged_into: uuid.UUID | None = None  # a merged record's kept record


def load_standings(conn: Connection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Standing]:
    """The records with these ids as they stand (four queries per 500 ids)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[uuid.UUID, Standing] = {}
    child = Child.__table__  # type: ignore[attr-defined]
    name = ChildName.__table__  # type: ignore[attr-defined]
    ident = ChildIdentifier.__table__  # type: ignore[attr-defined]
    addr = ChildAddress.__table__  # type: ignore[attr-defined]
    for i in range(0, len(wanted), _IN):
        chunk = wanted[i : i + _IN]
        for r in conn.execute(
            sa.select(
                child.c.id,
                child.c.status,
                child.c.shielded,
                child.c.date_of_birth,
                child.c.sex,
                child.c.merged_into_id,
            ).where(child.c.id.in_(chunk))
        ):
            found[r.id] = Standing(r.id, r.status, bool(r.shielded), r.date_of_birth, r.sex)
            found[r.id].merged_into = r.merged_into_id
        for r in conn.execute(
            sa.select(name.c.child_id, name.c.given, name.c.middle, name.c.family).where(
                name.c.child_id.in_(chunk), name.c.use == "official"
            )
        ):
            found[r.child_id].name = (r.given, r.middle, r.family)
        for r in conn.execute(
            sa.select(ident.c.child_id, ident.c.system, ident.c.value).where(ident.c.child_id.in_(chunk))
        ):
            found[r.child_id].identifiers.setdefault(r.system, r.value)
        for r in conn.execute(
            sa.select(addr.c.child_id, addr.c.line1, addr.c.line2, addr.c.town, addr.c.postcode).where(
                addr.c.child_id.in_(chunk), addr.c.until.is_(None)
            )
        ):
            found[r.child_id].address = (r.line1, r.line2, r.town, r.postcode)
    return found


def _row_address(row: ChildRow) -> AddressRow | None:
    return next((a for a in row.addresses if a.until is None), None)


def differences(row: ChildRow, standing: Standing) -> set[str]:
    """The fields (precedence.FIELDS) on which the row says something the record does not.

    A row that leaves a field out (no address, sex unknown) says nothing about it."""
    data = row.data
    diff: set[str] = set()
    official = data.names[0]
    if standing.name != (official.given, official.middle, official.family):
        diff.add("name")
    if data.date_of_birth is not None and data.date_of_birth != standing.date_of_birth:
        diff.add("date_of_birth")
    if data.sex.value != "unknown" and data.sex.value != standing.sex:
        diff.add("sex")
    row_ids = dict(row.identifiers)
    for system, fld in ((NHS_NUMBER_SYSTEM, "nhs_number"), (UPN_SYSTEM, "upn")):
        if system in row_ids and standing.identifiers.get(system) != row_ids[system]:
            diff.add(fld)
    current = _row_address(row)
    if current is not None and standing.address != (
        current.line1,
        current.line2,
        current.town,
        current.postcode,
    ):
        diff.add("address")
    return diff


@dataclass(frozen=True)
class Plan:
    """What a row would do to the record it matched."""

    apply: frozenset[str]  # trusted fields that differ
    ignored: frozenset[str]  # untrusted fields that differ (counted, never applied)
    hold: bool  # a person must decide (see `plan`)


APPLIED_BY_FEEDS = frozenset({"name", "date_of_birth", "sex", "nhs_number", "upn", "address"})
"""The trusted fields a feed row can apply (the rows of today's formats carry no school)."""


def plan(row: ChildRow, standing: Standing, precedence: Precedence, source: str) -> Plan:
    """Split the differences into applied and ignored; hold when the record is shielded and the
    row would move it from a source not trusted for addresses, or the row asks for a shield the
    record does not have (a person decides both; nothing in the report says why)."""
    diff = differences(row, standing)
    trusted = precedence.trusted(source) & APPLIED_BY_FEEDS
    hold = (standing.shielded and "address" in diff and "address" not in trusted) or (
        row.shielded and not standing.shielded
    )
    return Plan(frozenset(diff & trusted), frozenset(diff - trusted), hold)


def apply_row(
    session: Session,
    *,
    actor: Actor,
    child_id: uuid.UUID,
    row: ChildRow,
    fields: frozenset[str],
    source: str,
    today: date,
) -> list[str]:
    """Apply a row's trusted, differing `fields` to a record through the domain's one change of a
    child's details (it checks, versions, audits field names and publishes to the index)."""
    if not fields:
        return []
    data = row.data
    official = data.names[0]
    current = _row_address(row)
    ids = dict(row.identifiers)
    wanted = [(NHS_NUMBER_SYSTEM, "nhs_number"), (UPN_SYSTEM, "upn")]
    change = ChildChange(
        official_name=OfficialNameIn(given=official.given, middle=official.middle, family=official.family)
        if "name" in fields
        else None,
        date_of_birth=data.date_of_birth if "date_of_birth" in fields else None,
        sex=data.sex if "sex" in fields else None,
        address=AddressIn(
            line1=current.line1,
            line2=current.line2,
            town=current.town,
            postcode=current.postcode,
            since=current.since,
        )
        if "address" in fields and current is not None
        else None,
        identifiers=[IdentifierIn(system=s, value=ids[s]) for s, f in wanted if f in fields and s in ids],
    )
    return change_child(
        session, actor=actor, child_id=child_id, change=change, today=today, source=f"feed:{source}"
    )
