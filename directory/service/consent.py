"""Consents: recorded from a parent or carer with parental responsibility, or a competent young
person; withdrawn by whoever recorded them or the local delivery team."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session

from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotFound, RuleBroken
from directory.models import (
    Actor,
    Consent,
    ConsentCreate,
    ConsentGiver,
    ConsentWithdraw,
    RelatedPerson,
    utcnow,
)
from directory.service.access import require_consent_withdrawal
from directory.service.common import active_child, audit_change, load_child


def record_consent(session: Session, *, actor: Actor, child_id: uuid.UUID, data: ConsentCreate) -> Consent:
    """Record a consent given by a parent/carer or a competent young person."""
    child = active_child(session, child_id, actor=actor)
    if data.given_by_kind == ConsentGiver.YOUNG_PERSON:
        if data.young_person_competent is not True:
            raise InvalidInput(
                "A young person can consent for themselves only when judged competent: "
                "set young_person_competent to true once you have assessed that, or record "
                "the consent of a parent or carer."
            )
        if child.date_of_birth is None:
            raise InvalidInput("An unborn child cannot give consent; record the parent's.")
    if data.related_person_id is not None:
        person = repo.get(session, RelatedPerson, data.related_person_id)
        if person is None or person.child_id != child.id:
            raise NotFound("That related person is not recorded for this child.")
        if data.given_by_kind == ConsentGiver.PARENT_CARER and not person.parental_responsibility:
            raise RuleBroken(
                f"{person.name} does not have parental responsibility recorded; consent must "
                "come from someone who has it, or from a competent young person."
            )
    given_at = data.given_at or utcnow()
    if given_at > utcnow() + timedelta(minutes=5):
        raise InvalidInput("Consent cannot be given in the future.")
    consent = Consent(
        child_id=child.id,
        scope=data.scope.value,
        given_by_kind=data.given_by_kind.value,
        given_by_name=data.given_by_name,
        related_person_id=data.related_person_id,
        given_at=given_at,
        recorded_by=actor.subject,
    )
    session.add(consent)
    session.flush()
    audit_change(
        session, actor, "consent.record", child.id, {"consent_id": consent.id.hex, "scope": consent.scope}
    )
    return consent


def withdraw_consent(
    session: Session, *, actor: Actor, consent_id: uuid.UUID, data: ConsentWithdraw
) -> Consent:
    """Withdraw a consent (whoever recorded it, or the local delivery team); sensitive involvements it
    covered are hidden at once."""
    consent = repo.get(session, Consent, consent_id, for_update=True)
    if consent is None:
        raise NotFound("No consent has that id.")
    require_consent_withdrawal(session, actor, consent, load_child(session, consent.child_id))
    if consent.withdrawn_at is not None:
        raise Conflict("This consent was already withdrawn.")
    consent.withdrawn_at = consent.updated_at = utcnow()
    consent.withdrawn_reason = data.reason
    session.add(consent)
    session.flush()
    audit_change(session, actor, "consent.withdraw", consent.child_id, {"consent_id": consent.id.hex})
    return consent  # type: ignore[no-any-return]
