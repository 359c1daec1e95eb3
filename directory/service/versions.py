"""The versions of a child's record: every change that bumps the version goes through
`new_version`, which writes the record's snapshot (`child_version`) beside its outbox row, so the
history can show what each version was."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import repository as repo
from directory.errors import StaleVersion
from directory.models import Actor, Child
from directory.models.details import ChildVersion
from directory.service.common import touch


def snapshot(session: Session, child: Child) -> dict[str, Any]:
    """The record's details as they stand (flushed): names, birth, sex, identifiers, address,
    locality, school, GP, current parents and carers, shield and status."""
    with session.no_autoflush:  # (the callers have flushed: five reads, no flush before each)
        return _snapshot(session, child)


def _snapshot(session: Session, child: Child) -> dict[str, Any]:
    address = repo.current_address(session, child.id)
    return {
        "status": child.status,
        "names": [
            {"use": n.use, "given": n.given, "middle": n.middle, "family": n.family, "until": n.until}
            for n in repo.child_names(session, child.id)
        ],
        "date_of_birth": child.date_of_birth,
        "expected_delivery_date": child.expected_delivery_date,
        "sex": child.sex,
        "identifiers": [
            {"system": i.system, "value": i.value} for i in repo.child_identifiers(session, child.id)
        ],
        "address": None
        if address is None
        else {
            "line1": address.line1,
            "line2": address.line2,
            "town": address.town,
            "postcode": address.postcode,
            "since": address.since,
        },
        "locality_id": child.locality_id,
        "school_id": child.school_id,
        "gp_practice_id": child.gp_practice_id,
        "related_people": [
            {
                "id": p.id,
                "name": p.name,
                "relationship": p.relationship,
                "parental_responsibility": p.parental_responsibility,
                "phone": p.phone,
                "email": p.email,
                "address": p.address,
            }
            for p in repo.related_people(session, child.id)
        ],
        "shielded": child.shielded,
    }


def record_version(session: Session, *, actor: Actor, child: Child, changed: list[str], source: str) -> None:
    """Write the snapshot of the child's current version (create writes version 1 this way).

    Two writers that both made version N of one record collide on the key: the second is told the
    record changed under it, and its transaction rolls back whole."""
    body = json.dumps(snapshot(session, child), sort_keys=True, default=str)
    session.add(
        ChildVersion(
            child_id=child.id,
            version=child.version,
            actor_subject=actor.subject,
            role=actor.role.value,
            organisation=actor.organisation,
            source=source,
            changed=", ".join(changed),
            snapshot=body,
        )
    )
    try:
        session.flush()
    except IntegrityError:
        raise StaleVersion(
            "This child's record changed while your change was being made; read it again and "
            "reapply your change.",
            current_version=child.version,
        ) from None


def new_version(session: Session, *, actor: Actor, child: Child, changed: list[str], source: str) -> None:
    """A new version of the child's record: the version bumped, the outbox row for the search index,
    and the snapshot in the history."""
    session.flush()  # the change itself (a clean session: no statement); then the version, the
    touch(session, child)  # outbox row and the snapshot are written by one flush (record_version's)
    record_version(session, actor=actor, child=child, changed=changed, source=source)
