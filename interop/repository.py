"""The queries the FHIR surface runs (searches the app API does not need)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory.models import (
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    Involvement,
    Locality,
    LocalityArea,
    Organisation,
    Practitioner,
    Service,
    ServiceLocality,
)
from directory.names import name_matches_allowed
from interop.sync import last_updated_condition

MAX_MATCHES = 1000
"""A Patient search that matches more children than this is refused as too costly."""


def _starts(column: Any, value: str, exact: bool) -> sa.ColumnElement[bool]:
    if exact:
        return cast(sa.ColumnElement[bool], column == value)
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.func.lower(column).like(escaped + "%", escape="\\")


def patient_ids(
    session: Session,
    *,
    ids: Sequence[uuid.UUID] = (),
    identifiers: Sequence[tuple[str | None, str]] = (),
    family: Sequence[str] = (),
    given: Sequence[str] = (),
    name: Sequence[str] = (),
    exact: frozenset[str] = frozenset(),
    birth: Sequence[tuple[date | None, date | None, bool]] = (),
    gender: Sequence[str] = (),
    postcodes: Sequence[str] = (),
    location_of_shielded: bool = False,
    statuses: Collection[str] = ("active", "merged"),
    last_updated: Sequence[Sequence[str]] = (),
    within: sa.ColumnElement[bool] | None = None,
) -> list[uuid.UUID]:
    """Ids of children matching every criterion (values in one list OR-ed), by id; at most MAX_MATCHES + 1.
    Only records in `statuses` (those the caller may read: directory.visibility) and `within` (the
    localities the caller's grant restricts them to: directory.reach) are looked at."""
    stmt = select(Child.id).where(col(Child.status).in_(list(statuses)))
    if within is not None:
        stmt = stmt.where(within)
    if not (ids or identifiers):
        # a shielded child (an adopted child's new record is one) is found by demographics only when
        # its current official family name is asked for: a given name and a date of birth (what a
        # birth family knows) lead nowhere
        stmt = stmt.where(
            _family_named(list(family) + list(name), exact="family" in exact, entitled=location_of_shielded)
        )
    if ids:
        stmt = stmt.where(col(Child.id).in_(list(ids)))
    if last_updated:  # _lastUpdated (interop/sync.py): only narrows
        stmt = stmt.where(last_updated_condition(Child.updated_at, last_updated))
    if identifiers:
        ors = []
        for system, value in identifiers:
            cond: sa.ColumnElement[bool] = col(ChildIdentifier.value) == value
            if system is not None:
                cond = sa.and_(cond, col(ChildIdentifier.system) == system)
            ors.append(cond)
        stmt = stmt.where(col(Child.id).in_(select(ChildIdentifier.child_id).where(sa.or_(*ors))))
    for values, columns, key in (
        (family, (ChildName.family,), "family"),
        (given, (ChildName.given, ChildName.middle), "given"),
        (name, (ChildName.family, ChildName.given, ChildName.middle), "name"),
    ):
        if values:
            conds = [_starts(c, v, key in exact) for v in values for c in columns]
            # a shielded child's former names and aliases match nobody who may not see the record
            named = (
                select(ChildName.child_id)
                .join(Child, col(Child.id) == col(ChildName.child_id))
                .where(sa.or_(*conds), name_matches_allowed(entitled=location_of_shielded))
            )
            stmt = stmt.where(col(Child.id).in_(named))
    for low, high, negate in birth:
        when: sa.ColumnElement[bool] = sa.true()
        if low is not None:
            when = sa.and_(when, col(Child.date_of_birth) >= low)
        if high is not None:
            when = sa.and_(when, col(Child.date_of_birth) <= high)
        stmt = stmt.where(sa.not_(when) if negate else when, col(Child.date_of_birth).is_not(None))
    if gender:
        stmt = stmt.where(col(Child.sex).in_(list(gender)))
    if postcodes:
        conds = [_starts(ChildAddress.postcode, p, False) for p in postcodes]
        sub = select(ChildAddress.child_id).where(col(ChildAddress.until).is_(None), sa.or_(*conds))
        stmt = stmt.where(col(Child.id).in_(sub))
        if not location_of_shielded:
            # a shielded child's address must not be findable by those who may not see it
            stmt = stmt.where(Child.shielded == False)  # noqa: E712
    stmt = stmt.order_by(col(Child.id)).limit(MAX_MATCHES + 1)
    return list(session.exec(stmt).all())


def _family_named(values: Sequence[str], *, exact: bool, entitled: bool) -> sa.ColumnElement[bool]:
    """Not shielded, or a family name of its own is among `values` (by prefix unless exact): its current
    official one, or for a reader who may see shielded records any it has (directory.names)."""
    if not values:
        return col(Child.shielded).is_(False)
    official = (
        select(ChildName.child_id)
        .join(Child, col(Child.id) == col(ChildName.child_id))
        .where(
            name_matches_allowed(entitled=entitled),
            sa.or_(*(_starts(ChildName.family, v, exact) for v in values)),
        )
    )
    return sa.or_(col(Child.shielded).is_(False), col(Child.id).in_(official))


def children(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Child]:
    """Children by id."""
    if not ids:
        return {}
    return {c.id: c for c in session.exec(select(Child).where(col(Child.id).in_(list(ids)))).all()}


def involvement(session: Session, involvement_id: uuid.UUID) -> Involvement | None:
    """One involvement."""
    return session.get(Involvement, involvement_id)


def service_with_org(session: Session, service_id: uuid.UUID) -> tuple[Service, Organisation] | None:
    """A service and the organisation that runs it."""
    row = session.exec(
        select(Service, Organisation)
        .join(Organisation, col(Organisation.id) == col(Service.organisation_id))
        .where(Service.id == service_id)
    ).first()
    return None if row is None else (row[0], row[1])


def organisations(
    session: Session,
    *,
    ids: Sequence[uuid.UUID] = (),
    name: str | None = None,
    identifier: tuple[str | None, str] | None = None,
    kinds: Sequence[str] | None = None,
    offset: int = 0,
    limit: int = 20,
    last_updated: Sequence[Sequence[str]] = (),
) -> tuple[int, list[Organisation]]:
    """Organisations matching the criteria: (total, one page)."""
    stmt = select(Organisation)
    if ids:
        stmt = stmt.where(col(Organisation.id).in_(list(ids)))
    if name:
        stmt = stmt.where(_starts(Organisation.name, name, False))
    if identifier is not None:
        system, value = identifier
        if system in (None, "ods"):
            stmt = stmt.where(
                sa.or_(col(Organisation.ods_code) == value, col(Organisation.urn) == value)
                if system is None
                else col(Organisation.ods_code) == value
            )
        else:
            stmt = stmt.where(Organisation.urn == value)
    if kinds is not None:  # a type token (interop.mapping.organization.kinds_of_type): any of these
        stmt = stmt.where(col(Organisation.kind).in_(list(kinds)))
    if last_updated:  # _lastUpdated (interop/sync.py)
        stmt = stmt.where(last_updated_condition(Organisation.updated_at, last_updated))
    page: tuple[int, list[Organisation]] = _page(session, stmt, col(Organisation.name), offset, limit)
    return page


def _page(session: Session, stmt, order, offset: int, limit: int):  # type: ignore[no-untyped-def]
    total = session.exec(select(sa.func.count()).select_from(stmt.subquery())).one()
    rows = list(session.exec(stmt.order_by(order, "id").offset(offset).limit(limit)).all())
    return int(total), rows


def practitioners(
    session: Session,
    *,
    ids: Sequence[uuid.UUID] = (),
    name: str | None = None,
    organisation_ids: Sequence[uuid.UUID] = (),
    role: str | None = None,
    active: bool | None = None,
    offset: int = 0,
    limit: int = 20,
    last_updated: Sequence[Sequence[str]] = (),
) -> tuple[int, list[Practitioner]]:
    """Practitioners matching the criteria: (total, one page)."""
    stmt = select(Practitioner)
    if ids:
        stmt = stmt.where(col(Practitioner.id).in_(list(ids)))
    if name:
        stmt = stmt.where(
            sa.or_(
                _starts(Practitioner.name, name, False),
                sa.func.lower(Practitioner.name).like(f"% {name.lower()}%"),
            )
        )
    if organisation_ids:
        stmt = stmt.where(col(Practitioner.organisation_id).in_(list(organisation_ids)))
    if role:
        stmt = stmt.where(sa.func.lower(Practitioner.role) == role.replace("-", " ").lower())
    if active is not None:
        stmt = stmt.where(Practitioner.active == active)
    if last_updated:  # _lastUpdated (interop/sync.py)
        stmt = stmt.where(last_updated_condition(Practitioner.updated_at, last_updated))
    page: tuple[int, list[Practitioner]] = _page(session, stmt, col(Practitioner.name), offset, limit)
    return page


def services(
    session: Session,
    *,
    ids: Sequence[uuid.UUID] = (),
    organisation_ids: Sequence[uuid.UUID] = (),
    service_type: str | None = None,
    locality_ids: Sequence[uuid.UUID] = (),
    level: int | None = None,
    tier: str | None = None,
    offset: int = 0,
    limit: int = 20,
    last_updated: Sequence[Sequence[str]] = (),
) -> tuple[int, list[Service]]:
    """Services matching the criteria: (total, one page)."""
    stmt = select(Service)
    if ids:
        stmt = stmt.where(col(Service.id).in_(list(ids)))
    if organisation_ids:
        stmt = stmt.where(col(Service.organisation_id).in_(list(organisation_ids)))
    if service_type:
        stmt = stmt.where(Service.service_type == service_type)
    if locality_ids:
        stmt = stmt.where(
            col(Service.id).in_(
                select(ServiceLocality.service_id).where(
                    col(ServiceLocality.locality_id).in_(list(locality_ids))
                )
            )
        )
    if level is not None:
        stmt = stmt.where(Service.level_of_need == level)
    if tier:
        stmt = stmt.where(Service.tier == tier)
    if last_updated:  # _lastUpdated (interop/sync.py)
        stmt = stmt.where(last_updated_condition(Service.updated_at, last_updated))
    page: tuple[int, list[Service]] = _page(session, stmt, col(Service.name), offset, limit)
    return page


def service_localities(
    session: Session, service_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The localities each service covers."""
    out: dict[uuid.UUID, list[uuid.UUID]] = {s: [] for s in service_ids}
    if service_ids:
        for row in session.exec(
            select(ServiceLocality).where(col(ServiceLocality.service_id).in_(list(service_ids)))
        ).all():
            out[row.service_id].append(row.locality_id)
    return out


def localities(
    session: Session,
    *,
    ids: Sequence[uuid.UUID] = (),
    code: str | None = None,
    name: str | None = None,
    offset: int = 0,
    limit: int = 20,
    last_updated: Sequence[Sequence[str]] = (),
) -> tuple[int, list[Locality]]:
    """Localities matching the criteria: (total, one page)."""
    stmt = select(Locality)
    if ids:
        stmt = stmt.where(col(Locality.id).in_(list(ids)))
    if code:
        stmt = stmt.where(Locality.code == code)
    if name:
        stmt = stmt.where(_starts(Locality.name, name, False))
    if last_updated:  # _lastUpdated (interop/sync.py)
        stmt = stmt.where(last_updated_condition(Locality.updated_at, last_updated))
    page: tuple[int, list[Locality]] = _page(session, stmt, col(Locality.name), offset, limit)
    return page


def locality_areas(session: Session, locality_id: uuid.UUID) -> list[str]:
    """The postcode areas of a locality."""
    return sorted(
        session.exec(select(LocalityArea.area).where(LocalityArea.locality_id == locality_id)).all()
    )
