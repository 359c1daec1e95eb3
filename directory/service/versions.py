"""The versions of a child's record: every change that bumps the version goes through
`new_version`, which writes the record's snapshot (`child_version`) beside its outbox row, so the
history can show what each version was."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import repository as repo
from directory.db import Prepared
from directory.errors import StaleVersion
from directory.models import Actor, Child, ChildAddress, ChildIdentifier, ChildName, RelatedPerson, utcnow
from directory.models.details import ChildVersion
from directory.service.common import touch

# The snapshot's reads and the version's insert, straight on the driver (see directory.db.Prepared):
# through the ORM they were half of each change a feed makes. The same rows, in the same order, as
# repo.child_names, child_identifiers, current_address and related_people.
_CHILD = sa.bindparam("child_id", type_=sa.Uuid())
_N = ChildName.__table__  # type: ignore[attr-defined]
_I = ChildIdentifier.__table__  # type: ignore[attr-defined]
_A = ChildAddress.__table__  # type: ignore[attr-defined]
_P = RelatedPerson.__table__  # type: ignore[attr-defined]
_NAMES = Prepared(
    sa.select(_N.c.use, _N.c.given, _N.c.middle, _N.c.family, _N.c.until).where(_N.c.child_id == _CHILD)
)
_IDENTIFIERS = Prepared(
    sa.select(_I.c.system, _I.c.value).where(_I.c.child_id == _CHILD).order_by(_I.c.system)
)
_ADDRESS = Prepared(
    sa.select(_A.c.line1, _A.c.line2, _A.c.town, _A.c.postcode, _A.c.since).where(
        _A.c.child_id == _CHILD, _A.c.until.is_(None)
    )
)
_PEOPLE = Prepared(
    sa.select(
        _P.c.id,
        _P.c.name,
        _P.c.relationship,
        _P.c.parental_responsibility,
        _P.c.phone,
        _P.c.email,
        _P.c.address,
    )
    .where(_P.c.child_id == _CHILD, _P.c.until.is_(None))
    .order_by(_P.c.parental_responsibility.desc(), _P.c.name)
)
_V = ChildVersion.__table__  # type: ignore[attr-defined]
_ADD_VERSION = Prepared(
    sa.insert(_V).values({c.name: sa.bindparam(c.name, type_=c.type) for c in _V.columns})
)


def snapshot(session: Session, child: Child) -> dict[str, Any]:
    """The record's details as they stand (flushed): names, birth, sex, identifiers, address,
    locality, school, GP, current parents and carers, shield and status."""
    conn = session.connection()
    at = {"child_id": child.id}
    names = sorted(_NAMES.rows(conn, at), key=lambda n: repo.name_order(n[0], n[4]))
    address = next(iter(_ADDRESS.rows(conn, at)), None)
    return {
        "status": child.status,
        "names": [
            {"use": use, "given": given, "middle": middle, "family": family, "until": until}
            for use, given, middle, family, until in names
        ],
        "date_of_birth": child.date_of_birth,
        "expected_delivery_date": child.expected_delivery_date,
        "sex": child.sex,
        "identifiers": [{"system": system, "value": value} for system, value in _IDENTIFIERS.rows(conn, at)],
        "address": None
        if address is None
        else dict(zip(("line1", "line2", "town", "postcode", "since"), address, strict=True)),
        "locality_id": child.locality_id,
        "school_id": child.school_id,
        "gp_practice_id": child.gp_practice_id,
        "related_people": [
            dict(
                zip(
                    ("id", "name", "relationship", "parental_responsibility", "phone", "email", "address"),
                    p,
                    strict=True,
                )
            )
            for p in _PEOPLE.rows(conn, at)
        ],
        "shielded": child.shielded,
    }


def record_version(session: Session, *, actor: Actor, child: Child, changed: list[str], source: str) -> None:
    """Write the snapshot of the child's current version (create writes version 1 this way).

    Two writers that both made version N of one record collide on the key: the second is told the
    record changed under it, and its transaction rolls back whole."""
    body = json.dumps(snapshot(session, child), sort_keys=True, default=str)
    version = {
        "child_id": child.id,
        "version": child.version,
        "at": utcnow(),
        "actor_subject": actor.subject,
        "role": actor.role.value,
        "organisation": actor.organisation,
        "source": source,
        "changed": ", ".join(changed),
        "snapshot": body,
    }
    conn = session.connection()
    try:
        session.flush()  # the record's own row first (made, or its version bumped)
        _ADD_VERSION.run(conn, [version])  # (on the driver: the ORM's unit of work cost more)
    except (IntegrityError, conn.dialect.loaded_dbapi.IntegrityError):
        raise StaleVersion(
            "This child's record changed while your change was being made; read it again and "
            "reapply your change.",
            current_version=child.version,
        ) from None


def new_version(session: Session, *, actor: Actor, child: Child, changed: list[str], source: str) -> None:
    """A new version of the child's record: the version bumped, the outbox row for the search index,
    and the snapshot in the history."""
    session.flush()  # the change itself (a clean session: no statement); then the version bumped
    touch(session, child)  # and the outbox row; record_version flushes the one, then reads the snapshot
    record_version(session, actor=actor, child=child, changed=changed, source=source)
