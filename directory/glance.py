"""What a page of search hits shows of each child, loaded for the page at once: the queries behind a
search's answer (search/api.py), kept apart from the domain's other queries (directory/repository.py)
because they are built once as Core statements for speed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlmodel import Session

from directory.db import Prepared, Readable
from directory.models import (
    Assessment,
    Child,
    ChildAddress,
    ChildName,
    Involvement,
    LeadProfessionalAssignment,
    Organisation,
    Practitioner,
)
from directory.repository import NAME_ORDER, OPEN_CAF


@dataclass(frozen=True, slots=True)
class Contactable:
    """A practitioner as a search hit names them: who, where, and the number to ring."""

    name: str
    organisation: str
    phone: str | None
    """The practitioner's own number, else their organisation's."""
    practitioner_id: uuid.UUID | None = None
    sensitive: bool = False
    """Named on a sensitive involvement: shown only as such an involvement would be."""


@dataclass(frozen=True, slots=True)
class Glance:
    """What a search hit shows of one child, loaded for a page of hits at once (see at_a_glance)."""

    child_id: uuid.UUID
    status: str
    shielded: bool
    sex: str
    date_of_birth: date | None
    expected_delivery_date: date | None
    locality_id: uuid.UUID | None
    name: tuple[str, str] | None
    """(given, family) of the name child_names puts first."""
    postcode: str | None
    """The current address's postcode."""
    caf_status: str | None
    caf_holder: Contactable | None
    lead: Contactable | None
    services_involved: int
    highest_level_of_need: int | None


# A search answers with a page of these, so they are Core statements built once: the ORM's
# identity map and row-to-object machinery cost more than the queries on a page of ten children.
_PAGE = 10  # a page of search hits
# A fixed list of ten ids (padded by repeating one) rather than an expanding IN: the statement is
# then compiled once, not rendered again for each page.
_IDS = [bindparam(f"id{i}", type_=sa.Uuid) for i in range(_PAGE)]
_C, _A, _N = Child.__table__, ChildAddress.__table__, ChildName.__table__  # type: ignore[attr-defined]
_CAF, _LP = Assessment.__table__, LeadProfessionalAssignment.__table__  # type: ignore[attr-defined]
_P, _O, _I = Practitioner.__table__, Organisation.__table__, Involvement.__table__  # type: ignore[attr-defined]
_N2 = _N.alias("ranked")
_FIRST_NAME = (  # the name child_names puts first
    sa.select(_N2.c.id)
    .where(_N2.c.child_id == _C.c.id)
    .order_by(
        sa.case(NAME_ORDER, value=_N2.c.use, else_=9),
        sa.func.coalesce(_N2.c.until, sa.literal(date.max, sa.Date)),
    )
    .limit(1)
    .correlate(_C)
    .scalar_subquery()
)
_SHOWN = (_I.c.child_id == _C.c.id, _I.c.status == "active", _I.c.sensitive.is_(False))
_GLANCE_CHILDREN = Prepared(
    sa.select(
        _C.c.id,
        _C.c.status,
        _C.c.shielded,
        _C.c.sex,
        _C.c.date_of_birth,
        _C.c.expected_delivery_date,
        _C.c.locality_id,
        _A.c.postcode,
        _N.c.given,
        _N.c.family,
        sa.select(sa.func.count()).where(*_SHOWN).scalar_subquery(),
        sa.select(sa.func.max(_I.c.level_of_need)).where(*_SHOWN).scalar_subquery(),
    )
    .outerjoin(_A, sa.and_(_A.c.child_id == _C.c.id, _A.c.until.is_(None)))  # one at most: unique index
    .outerjoin(_N, _N.c.id == _FIRST_NAME)
    .where(_C.c.id.in_(_IDS))
)
_I2 = _I.alias("elsewhere")
_CONTACT = (
    _P.c.id,
    # whether they work in a sensitive service (named on a sensitive involvement of any child): see
    # directory.permissions; searched through ix_involvement_practitioner_id
    sa.exists().where(_I2.c.practitioner_id == _P.c.id, _I2.c.sensitive == sa.true()).correlate(_P),
    _P.c.name,
    _O.c.name,
    sa.func.coalesce(_P.c.phone, _O.c.phone),
)
_GLANCE_PEOPLE = Prepared(
    sa.union_all(  # the open CAF and its holder, and the current Lead Professional
        sa.select(sa.literal("caf"), _CAF.c.child_id, _CAF.c.status, *_CONTACT)
        .outerjoin(_P, _P.c.id == sa.func.coalesce(_CAF.c.lead_practitioner_id, _CAF.c.initiator_id))
        .outerjoin(_O, _O.c.id == _P.c.organisation_id)
        .where(_CAF.c.child_id.in_(_IDS), _CAF.c.status.in_([sa.literal(v) for v in OPEN_CAF])),
        sa.select(sa.literal("lead"), _LP.c.child_id, sa.null(), *_CONTACT)
        .join(_P, _P.c.id == _LP.c.practitioner_id)
        .join(_O, _O.c.id == _P.c.organisation_id)
        .where(_LP.c.child_id.in_(_IDS), _LP.c.ended_at.is_(None)),
    )
)


def _contactable(
    practitioner_id: uuid.UUID | None,
    sensitive: bool | None,
    name: str | None,
    organisation: str | None,
    phone: str | None,
) -> Contactable | None:
    if name is None or practitioner_id is None:
        return None
    return Contactable(name, organisation or "", phone, practitioner_id, bool(sensitive))


def at_a_glance(db: Session | Readable, child_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Glance]:
    """For a page of search hits, in two queries: each child with its current postcode, the name
    to show (the one child_names puts first), the count and highest level of need of its active
    involvements that are not sensitive; then open CAFs with their holders and current Lead
    Professionals. Children not found are absent."""
    ids = list(dict.fromkeys(child_ids))
    if not ids:
        return {}
    conn = db.connection() if isinstance(db, Session) else db
    children: dict[uuid.UUID, Any] = {}
    cafs: dict[uuid.UUID, tuple[str, Contactable | None]] = {}
    leads: dict[uuid.UUID, Contactable | None] = {}
    for start in range(0, len(ids), _PAGE):
        page = ids[start : start + _PAGE]
        params = {f"id{i}": page[i] if i < len(page) else page[0] for i in range(_PAGE)}
        found = {row[0]: row for row in _GLANCE_CHILDREN.rows(conn, params)}
        if not found:
            continue
        children.update(found)
        for kind, child_id, status, *contact in _GLANCE_PEOPLE.rows(conn, params):
            if kind == "caf":
                cafs[child_id] = (status, _contactable(*contact))
            else:
                leads[child_id] = _contactable(*contact)
    glances: dict[uuid.UUID, Glance] = {}
    for i in ids:
        if i not in children:
            continue
        _, status, shielded, sex, born, due, locality, postcode, given, family, count, highest = children[i]
        caf_status, holder = cafs.get(i, (None, None))
        glances[i] = Glance(
            child_id=i,
            status=status,
            shielded=bool(shielded),
            sex=sex,
            date_of_birth=born,
            expected_delivery_date=due,
            locality_id=locality,
            name=(given, family) if given is not None else None,
            postcode=postcode,
            caf_status=caf_status,
            caf_holder=holder,
            lead=leads.get(i),
            services_involved=int(count or 0),
            highest_level_of_need=highest,
        )
    return glances
