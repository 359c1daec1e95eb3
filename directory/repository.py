"""The domain's queries. Two groups live beside it: what a page of search hits shows
(directory/glance.py) and the locality overview's counts (directory/aggregates.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import func, or_
from sqlalchemy.exc import NoResultFound
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from directory.identifiers import postcode_district, postcode_sector
from directory.models import (
    OPEN_CAF_STATUSES,
    Assessment,
    AuditEvent,
    AuditNote,
    AuditSubject,
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    Consent,
    Involvement,
    InvolvementVersion,
    LeadProfessionalAssignment,
    Locality,
    LocalityArea,
    Notice,
    Organisation,
    Practitioner,
    RelatedPerson,
    Role,
    Service,
    Tac,
    TacMember,
)
from directory.models.details import ChildVersion
from directory.visibility import events_shown

OPEN_CAF = [s.value for s in OPEN_CAF_STATUSES]
"""The statuses of an open CAF, as values (for IN lists)."""


def get(session: Session, model: type[SQLModel], id_: uuid.UUID, *, for_update: bool = False) -> Any:
    """Load one row by primary key, optionally locking it for the rest of the transaction.

    (Typed Any, as it always was: typing it as the model's row, or None, is for when its callers in
    search/ and childindex/web/ can narrow the None away.)"""
    stmt: SelectOfScalar[SQLModel] = select(model).where(model.id == id_)  # type: ignore[attr-defined]
    if for_update:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


NAME_ORDER = {"official": 0, "usual": 1, "alias": 2, "previous": 3}  # any other use: 9


def name_order(use: str, until: date | None) -> tuple[int, date]:
    """The order a child's names are listed in: current names first, then previous names and aliases."""
    return NAME_ORDER.get(use, 9), until or date.max


def child_names(session: Session, child_id: uuid.UUID) -> Sequence[ChildName]:
    """Current names first, then previous names and aliases."""
    rows = session.exec(select(ChildName).where(ChildName.child_id == child_id)).all()
    return sorted(rows, key=lambda n: name_order(n.use, n.until))


def child_identifiers(session: Session, child_id: uuid.UUID) -> Sequence[ChildIdentifier]:
    """All identifiers of a child."""
    return session.exec(
        select(ChildIdentifier)
        .where(ChildIdentifier.child_id == child_id)
        .order_by(col(ChildIdentifier.system))
    ).all()


def child_by_identifier(session: Session, system: str, value: str) -> Child | None:
    """The child holding an identifier, if any."""
    return session.exec(
        select(Child)
        .join(ChildIdentifier, col(ChildIdentifier.child_id) == col(Child.id))
        .where(ChildIdentifier.system == system, ChildIdentifier.value == value)
    ).first()


def identifier_owner(session: Session, system: str, value: str) -> uuid.UUID | None:
    """The id of the child that already holds an identifier."""
    return session.exec(
        select(ChildIdentifier.child_id).where(
            ChildIdentifier.system == system, ChildIdentifier.value == value
        )
    ).first()


def current_address(session: Session, child_id: uuid.UUID) -> ChildAddress | None:
    """The address with no end date."""
    return session.exec(
        select(ChildAddress).where(ChildAddress.child_id == child_id, col(ChildAddress.until).is_(None))
    ).first()


def related_people(session: Session, child_id: uuid.UUID) -> Sequence[RelatedPerson]:
    """Parents and carers of a child (current: those ended are kept for history only)."""
    return session.exec(
        select(RelatedPerson)
        .where(RelatedPerson.child_id == child_id, col(RelatedPerson.until).is_(None))
        .order_by(col(RelatedPerson.parental_responsibility).desc(), col(RelatedPerson.name))
    ).all()


def locality_for_postcode(session: Session, postcode: str) -> Locality | None:
    """The locality of a postcode: by its sector first, then by its district."""
    for area in (postcode_sector(postcode), postcode_district(postcode)):
        locality = session.exec(
            select(Locality)
            .join(LocalityArea, col(LocalityArea.locality_id) == col(Locality.id))
            .where(LocalityArea.area == area)
        ).first()
        if locality is not None:
            return locality
    return None


def open_caf(session: Session, child_id: uuid.UUID, *, for_update: bool = False) -> Assessment | None:
    """The child's open CAF (signalled, in progress, or completed and not closed)."""
    stmt = select(Assessment).where(Assessment.child_id == child_id, col(Assessment.status).in_(OPEN_CAF))
    if for_update:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def latest_caf(session: Session, child_id: uuid.UUID) -> Assessment | None:
    """The most recent CAF of a child, open or not."""
    return session.exec(
        select(Assessment)
        .where(Assessment.child_id == child_id)
        .order_by(col(Assessment.signalled_at).desc())
    ).first()


def current_lead(session: Session, child_id: uuid.UUID) -> LeadProfessionalAssignment | None:
    """The child's current Lead Professional assignment."""
    return session.exec(
        select(LeadProfessionalAssignment).where(
            LeadProfessionalAssignment.child_id == child_id,
            col(LeadProfessionalAssignment.ended_at).is_(None),
        )
    ).first()


def lead_history(session: Session, assessment_id: uuid.UUID) -> Sequence[LeadProfessionalAssignment]:
    """Every Lead Professional spell of one CAF, oldest first."""
    return session.exec(
        select(LeadProfessionalAssignment)
        .where(LeadProfessionalAssignment.assessment_id == assessment_id)
        .order_by(col(LeadProfessionalAssignment.started_at))
    ).all()


def tac_for_caf(session: Session, assessment_id: uuid.UUID, *, for_update: bool = False) -> Tac | None:
    """The TAC formed from a CAF."""
    stmt = select(Tac).where(Tac.assessment_id == assessment_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def tac_members(session: Session, tac_id: uuid.UUID) -> Sequence[TacMember]:
    """Current members of a TAC."""
    return session.exec(
        select(TacMember).where(TacMember.tac_id == tac_id, col(TacMember.left_at).is_(None))
    ).all()


InvolvementRow = tuple[Involvement, Service, Organisation, Practitioner | None, Consent | None]
"""An involvement with its service, the service's organisation, its practitioner and its consent."""


def involvements_with_service(
    session: Session, child_id: uuid.UUID, *, include_ended: bool = False
) -> Sequence[InvolvementRow]:
    """A child's involvements with their service, organisation, practitioner and consent."""
    stmt = (
        select(Involvement, Service, Organisation, Practitioner, Consent)  # type: ignore[call-overload]
        .join(Service, col(Service.id) == col(Involvement.service_id))
        .join(Organisation, col(Organisation.id) == col(Service.organisation_id))
        .outerjoin(Practitioner, col(Practitioner.id) == col(Involvement.practitioner_id))
        .outerjoin(Consent, col(Consent.id) == col(Involvement.consent_id))
        .where(Involvement.child_id == child_id)
        .order_by(col(Service.level_of_need).desc(), col(Involvement.start_date))
    )
    if not include_ended:
        stmt = stmt.where(Involvement.status == "active")
    return cast(Sequence[InvolvementRow], session.exec(stmt).all())


def active_involvement(session: Session, child_id: uuid.UUID, service_id: uuid.UUID) -> Involvement | None:
    """A child's active involvement with one service."""
    return session.exec(
        select(Involvement).where(
            Involvement.child_id == child_id,
            Involvement.service_id == service_id,
            Involvement.status == "active",
        )
    ).first()


def consents(session: Session, child_id: uuid.UUID) -> Sequence[Consent]:
    """All consents of a child, newest first."""
    return session.exec(
        select(Consent).where(Consent.child_id == child_id).order_by(col(Consent.given_at).desc())
    ).all()


def practitioner_contact(session: Session, practitioner_id: uuid.UUID) -> tuple[Practitioner, Organisation]:
    """A practitioner and their organisation."""
    row = session.exec(
        select(Practitioner, Organisation)
        .join(Organisation, col(Organisation.id) == col(Practitioner.organisation_id))
        .where(Practitioner.id == practitioner_id)
    ).first()
    if row is None:
        raise NoResultFound(str(practitioner_id))
    return row


def locality_code(session: Session, locality_id: uuid.UUID | None) -> str | None:
    """The code of a locality (None when the child has none)."""
    if locality_id is None:
        return None
    return session.exec(select(Locality.code).where(Locality.id == locality_id)).first()


def sensitive_practitioners(session: Session, practitioner_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of these practitioners named on a sensitive involvement of any child: their name and role
    say which kind of service a child sees (a sexual health nurse), so they are shown only as the
    sensitive involvement itself would be."""
    ids = list({p for p in practitioner_ids if p is not None})
    if not ids:
        return set()
    rows = session.exec(
        select(Involvement.practitioner_id)
        .where(col(Involvement.practitioner_id).in_(ids), col(Involvement.sensitive) == True)  # noqa: E712
        .distinct()
    ).all()
    return {r for r in rows if r is not None}


def practitioners_of_org(session: Session, organisation_id: uuid.UUID) -> Sequence[uuid.UUID]:
    """The ids of an organisation's practitioners."""
    return session.exec(select(Practitioner.id).where(Practitioner.organisation_id == organisation_id)).all()


def organisations_named(session: Session, name: str) -> Sequence[uuid.UUID]:
    """Organisations a grant's organisation names: by name, NHS ODS code or school URN (any case)."""
    key = name.strip().lower()
    return session.exec(
        select(Organisation.id).where(
            or_(
                func.lower(Organisation.name) == key,
                func.lower(Organisation.ods_code) == key,
                func.lower(Organisation.urn) == key,
            )
        )
    ).all()


def notices_for(
    session: Session, practitioner_id: uuid.UUID, *, unread_only: bool, limit: int
) -> Sequence[Notice]:
    """A practitioner's notices, newest first."""
    stmt = select(Notice).where(Notice.practitioner_id == practitioner_id)
    if unread_only:
        stmt = stmt.where(col(Notice.read_at).is_(None))
    newest = (col(Notice.created_at).desc(), col(Notice.audit_seq).desc())
    return session.exec(stmt.order_by(*newest).limit(limit)).all()


def unread_notices(session: Session, practitioner_id: uuid.UUID) -> int:
    """How many notices a practitioner has not read."""
    return int(
        session.exec(
            select(func.count())
            .select_from(Notice)
            .where(Notice.practitioner_id == practitioner_id, col(Notice.read_at).is_(None))
        ).one()
    )


def expired_signals(session: Session, now: datetime) -> Sequence[Assessment]:
    """Signals of intent whose time ran out without a start."""
    return session.exec(
        select(Assessment).where(Assessment.status == "signalled", col(Assessment.signal_expires_at) <= now)
    ).all()


def services(session: Session, *, service_type: str | None = None) -> Sequence[Service]:
    """The service catalogue."""
    stmt = select(Service).order_by(col(Service.name))
    if service_type:
        stmt = stmt.where(Service.service_type == service_type)
    return session.exec(stmt).all()


def practitioners(session: Session, *, organisation_id: uuid.UUID | None = None) -> Sequence[Practitioner]:
    """Practitioners, optionally of one organisation."""
    stmt = select(Practitioner).where(Practitioner.active == True).order_by(col(Practitioner.name))  # noqa: E712
    if organisation_id:
        stmt = stmt.where(Practitioner.organisation_id == organisation_id)
    return session.exec(stmt).all()


def practitioner_by_subject(session: Session, subject: str) -> Practitioner | None:
    """The practitioner a sign-in subject belongs to."""
    return session.exec(select(Practitioner).where(Practitioner.subject == subject)).first()


def localities(session: Session) -> Sequence[Locality]:
    """All localities."""
    return session.exec(select(Locality).order_by(col(Locality.name))).all()


# --------------------------------------------------------------------------- the audit log, searched


def audit_events(
    session: Session,
    *,
    child_id: uuid.UUID | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actions: Sequence[str] | None = None,
    action_prefix: str | None = None,
    limit: int = 200,
    role: Role | None = None,
) -> Sequence[AuditEvent]:
    """Audit events, newest first, by child, user, time window and action; as `role` may see them
    (none about a sealed record unless the adoption team asks: directory.visibility)."""
    stmt = select(AuditEvent).where(events_shown(session, role))
    if child_id is not None:
        stmt = stmt.join(AuditSubject, col(AuditSubject.seq) == col(AuditEvent.seq)).where(
            AuditSubject.child_id == child_id
        )
    if subject:
        stmt = stmt.where(AuditEvent.actor_subject == subject)
    if since is not None:
        stmt = stmt.where(col(AuditEvent.at) >= since)
    if until is not None:
        stmt = stmt.where(col(AuditEvent.at) < until)
    if actions:
        stmt = stmt.where(col(AuditEvent.action).in_(list(actions)))
    if action_prefix:
        stmt = stmt.where(col(AuditEvent.action).startswith(action_prefix))
    return session.exec(stmt.order_by(col(AuditEvent.seq).desc()).limit(limit)).all()


def involvement_history(session: Session, involvement_id: uuid.UUID) -> Sequence[InvolvementVersion]:
    """Every version of an involvement, newest first."""
    return session.exec(
        select(InvolvementVersion)
        .where(InvolvementVersion.involvement_id == involvement_id)
        .order_by(col(InvolvementVersion.version).desc())
    ).all()


def child_versions(
    session: Session, child_id: uuid.UUID, version: int | None = None
) -> Sequence[ChildVersion]:
    """The versions of a child's record, oldest first (or the one version asked for)."""
    stmt = select(ChildVersion).where(ChildVersion.child_id == child_id)
    if version is not None:
        stmt = stmt.where(ChildVersion.version == version)
    return session.exec(stmt.order_by(col(ChildVersion.version))).all()


def organisations_of_kind(session: Session, kinds: Sequence[str]) -> Sequence[Organisation]:
    """Organisations of these kinds (schools and early years settings; GP practices), by name."""
    return session.exec(
        select(Organisation).where(col(Organisation.kind).in_(list(kinds))).order_by(col(Organisation.name))
    ).all()


def audit_notes(session: Session, seqs: Sequence[int]) -> dict[int, str]:
    """The notes (free text kept beside the chain, e.g. a reason) of these audit events, by seq."""
    if not seqs:
        return {}
    rows = session.exec(select(AuditNote).where(col(AuditNote.seq).in_(list(seqs)))).all()
    return {r.seq: r.text for r in rows}
