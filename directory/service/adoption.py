"""Adoption: a new record with the adoptive identity, and the birth record sealed.

The birth record becomes `sealed`: from then on only the adoption team may find or read it
(directory/visibility.py), the search index drops it (its outbox row), and the audit log as anyone
else reads it leaves out every event about it. The one link between the two records is the
`adoption_link` row, which only the adoption team reads. Nothing is carried from the birth record
but the date of birth (unless another is given), the sex (likewise) and the involvements the
adoption officer lists one by one; never an identifier, a name, an address or a related person.
The new record is shielded, so that it is found by its current official family name (or an
identifier) only, and never by a given name and date of birth alone (search/scoring.py).
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlmodel import Session, select

from directory import repository as repo
from directory.errors import InvalidInput, NotAllowed
from directory.models import (
    Actor,
    AdoptionCreate,
    AdoptionLink,
    AdoptionRead,
    Child,
    ChildCreate,
    IdentifierIn,
    Involvement,
    InvolvementStatus,
    RecordStatus,
    Sex,
    utcnow,
)
from directory.service.children import create_child
from directory.service.common import active_child, audit_change
from directory.service.involvements import _snapshot
from directory.service.versions import new_version
from directory.visibility import SEALED_READERS, no_such_child

ADOPTION_SHIELD_REASON = "set when the record was made"
"""The shield reason of an adoptive record: nothing that says why (designated users read it)."""


def adopt(session: Session, *, actor: Actor, child_id: uuid.UUID, data: AdoptionCreate, today: date) -> Child:
    """Make the adoptive record and seal the birth record; return the adoptive record."""
    if actor.role not in SEALED_READERS:
        raise NotAllowed("Only the adoption team can record an adoption.")
    birth = active_child(session, child_id, for_update=True, actor=actor)
    carried = _involvements_to_carry(session, birth, data.carry_involvements)
    identifiers = list(data.identifiers)
    if data.nhs_number:
        identifiers.insert(0, IdentifierIn(system="nhs", value=data.nhs_number))
    born = data.date_of_birth or birth.date_of_birth
    adoptive = create_child(
        session,
        actor=actor,
        data=ChildCreate(
            names=data.names,
            date_of_birth=born,
            expected_delivery_date=None if born else birth.expected_delivery_date,
            sex=data.sex or Sex(birth.sex),
            identifiers=identifiers,
            address=data.address,
        ),
        today=today,
    )
    now = utcnow()
    adoptive.shielded, adoptive.shielded_reason = True, ADOPTION_SHIELD_REASON
    adoptive.shielded_by, adoptive.shielded_at = actor.subject, now
    session.add(adoptive)
    for involvement in carried:
        _carry(session, actor, involvement, adoptive, today)
    birth.status = RecordStatus.SEALED.value
    # a version in its (sealed) history; its outbox row: the search index drops it
    new_version(session, actor=actor, child=birth, changed=["status"], source="adoption")
    link = AdoptionLink(sealed_id=birth.id, adoptive_id=adoptive.id, sealed_at=now, sealed_by=actor.subject)
    session.add(link)
    session.flush()
    # About the sealed record only, so hidden from all but the adoption team; it names no other record.
    audit_change(session, actor, "child.seal", birth.id, {"carried": str(len(carried))})
    return adoptive


def _involvements_to_carry(session: Session, birth: Child, ids: list[uuid.UUID]) -> list[Involvement]:
    """The birth record's active involvements listed to carry over; a sensitive one cannot be (its
    consent belongs to the birth record: it is recorded again with a consent for the new one)."""
    out: list[Involvement] = []
    for involvement_id in ids:
        inv = repo.get(session, Involvement, involvement_id)
        if inv is None or inv.child_id != birth.id or inv.status != InvolvementStatus.ACTIVE.value:
            raise InvalidInput(
                "An involvement to carry over is not an active involvement of this record.",
                involvement_id=str(involvement_id),
            )
        if inv.sensitive:
            raise InvalidInput(
                "A sensitive involvement cannot be carried over: record it on the new record with the "
                "consent given for it.",
                involvement_id=str(involvement_id),
            )
        out.append(inv)
    return out


def _carry(session: Session, actor: Actor, old: Involvement, adoptive: Child, today: date) -> None:
    """The same service working with the child, recorded afresh on the adoptive record (from today:
    its start date on the birth record would be a thread back to it)."""
    new = Involvement(
        child_id=adoptive.id,
        service_id=old.service_id,
        practitioner_id=old.practitioner_id,
        role=old.role,
        level_of_need=old.level_of_need,
        start_date=today,
        recorded_by=actor.subject,
    )
    session.add(new)
    session.flush()
    _snapshot(session, new, actor=actor, change="record")
    audit_change(session, actor, "involvement.record", adoptive.id, {"involvement_id": new.id.hex})


def read_adoption(session: Session, *, actor: Actor, child_id: uuid.UUID) -> AdoptionRead:
    """The adoption a record (sealed or adoptive) is part of: for the adoption team only. Audited."""
    if actor.role not in SEALED_READERS:
        raise no_such_child(child_id)
    link = session.exec(
        select(AdoptionLink).where(
            (AdoptionLink.sealed_id == child_id) | (AdoptionLink.adoptive_id == child_id)
        )
    ).first()
    if link is None:
        raise no_such_child(child_id)
    audit_change(session, actor, "child.adoption.read", link.sealed_id)
    return AdoptionRead.model_validate(link)
