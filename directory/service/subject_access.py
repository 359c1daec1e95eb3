"""Subject access: everything the directory holds about a child, and every access to the record,
gathered once for the export (a FHIR Bundle and a readable document are made from it above).

A merged duplicate's rows have moved to the record kept; its own access history (the audit log is
never rewritten) is gathered with the kept record's. Gathering is itself an audited event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from directory import audit, merge_moves
from directory import repository as repo
from directory.errors import NotAllowed
from directory.models import (
    Actor,
    Assessment,
    AuditEvent,
    AuditSubject,
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    Consent,
    Involvement,
    InvolvementVersion,
    LeadProfessionalAssignment,
    Organisation,
    Practitioner,
    RelatedPerson,
    Role,
    Service,
    Tac,
    TacAction,
    TacMember,
    TacReview,
)
from directory.plan_repository import actions_of, reviews_of
from directory.service.common import load_child
from directory.service.merge import resolve_merged, unsealed

SUBJECT_ACCESS_READERS = frozenset({Role.DIRECTORY_ADMIN, Role.DATA_MANAGER})
"""Who may export everything held about a child to answer a subject access request."""

VERSION_TABLE = "child_version"
"""A child's record per version (added on another branch); exported when the table exists."""


@dataclass
class SubjectAccess:
    """Everything held about one child (and the records merged into it), as rows."""

    child: Child
    merged_ids: list[uuid.UUID]
    names: list[ChildName]
    identifiers: list[ChildIdentifier]
    addresses: list[ChildAddress]
    related_people: list[RelatedPerson]
    involvements: list[tuple[Involvement, Service, Organisation, Practitioner | None]]
    involvement_versions: list[InvolvementVersion]
    cafs: list[Assessment]
    lead_history: list[LeadProfessionalAssignment]
    tacs: list[tuple[Tac, list[TacMember]]]
    consents: list[Consent]
    accesses: list[AuditEvent]
    versions: list[dict[str, Any]] = field(default_factory=list)
    plans: dict[uuid.UUID, tuple[list[TacAction], list[TacReview]]] = field(default_factory=dict)  # by TAC
    practitioners: dict[uuid.UUID, tuple[Practitioner, Organisation]] = field(default_factory=dict)


def _rows(session: Session, model: Any, child_id: uuid.UUID) -> list[Any]:
    return list(session.exec(select(model).where(model.child_id == child_id)).all())


def _versions(session: Session, child_id: uuid.UUID) -> list[dict[str, Any]]:
    """The record's versions when the version table exists (the details branch), else none."""
    table = SQLModel.metadata.tables.get(VERSION_TABLE)
    if table is None or "child_id" not in table.c:
        return []
    rows = session.execute(sa.select(table).where(table.c.child_id == child_id)).mappings().all()
    return [dict(r) for r in rows]


def accesses(session: Session, child_ids: list[uuid.UUID]) -> list[AuditEvent]:
    """Every audit event that concerned these children, oldest first (no limit: a SAR is everything)."""
    stmt = (
        select(AuditEvent)
        .where(
            col(AuditEvent.seq).in_(select(AuditSubject.seq).where(col(AuditSubject.child_id).in_(child_ids)))
        )
        .order_by(col(AuditEvent.seq))
    )
    return list(session.exec(stmt).all())


def gather(session: Session, *, actor: Actor, child_id: uuid.UUID) -> SubjectAccess:
    """Everything held about a child, for a subject access request (audited as an export)."""
    if actor.role not in SUBJECT_ACCESS_READERS:
        raise NotAllowed("Only a directory admin or a data manager can answer a subject access request.")
    child = unsealed(session, child_id)
    kept = resolve_merged(session, child.id)
    if kept is not None:
        child = load_child(session, kept)
    merged = merge_moves.merged_into_ids(session, child.id)
    involvements = [
        (i, s, o, p)
        for i, s, o, p, _ in repo.involvements_with_service(session, child.id, include_ended=True)
    ]
    cafs = sorted(_rows(session, Assessment, child.id), key=lambda c: c.signalled_at)
    tacs = [(t, list(repo.tac_members(session, t.id))) for t in _rows(session, Tac, child.id)]
    sar = SubjectAccess(
        child=child,
        merged_ids=merged,
        names=list(repo.child_names(session, child.id)),
        identifiers=list(repo.child_identifiers(session, child.id)),
        addresses=sorted(_rows(session, ChildAddress, child.id), key=lambda a: a.since or date.min),
        related_people=_rows(session, RelatedPerson, child.id),
        involvements=involvements,
        involvement_versions=_rows(session, InvolvementVersion, child.id),
        cafs=cafs,
        lead_history=sorted(_rows(session, LeadProfessionalAssignment, child.id), key=lambda a: a.started_at),
        tacs=tacs,
        consents=_rows(session, Consent, child.id),
        accesses=accesses(session, [child.id, *merged]),
        versions=_versions(session, child.id),
    )
    people = {a.practitioner_id for a in sar.lead_history} | {c.initiator_id for c in cafs}
    people |= {m.practitioner_id for _, members in tacs for m in members}
    # each TAC's plan (issue #18 item 6): its actions and reviews, every one of them
    sar.plans = {t.id: (list(actions_of(session, t.id)), list(reviews_of(session, t.id))) for t, _ in tacs}
    people |= {
        a.owner_practitioner_id
        for actions, _ in sar.plans.values()
        for a in actions
        if a.owner_practitioner_id
    }
    for pid in people:
        sar.practitioners[pid] = repo.practitioner_contact(session, pid)
    audit.append(
        session,
        actor=actor,
        action="child.subject-access.export",
        target_type="child",
        target_id=child.id,
        detail={"accesses": len(sar.accesses), "merged": len(merged)},
        children=merged,
    )
    return sar
