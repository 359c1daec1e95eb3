"""A child's record: create it and shield it (its details: service/details.py; a national
service's demographics: service/demographics.py; merging two records: service/merge.py; its life
cycle, archive and purge: service/lifecycle.py)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotAllowed, NotFound, RuleBroken
from directory.identifiers import normalise_identifier, normalise_postcode
from directory.models import (
    Actor,
    Child,
    ChildAddress,
    ChildCreate,
    ChildIdentifier,
    ChildName,
    ChildRef,
    Organisation,
    Outbox,
    RelatedPerson,
    ShieldClear,
    ShieldSet,
    utcnow,
)
from directory.service.access import SHIELD_SETTERS
from directory.service.common import active_child, audit_change, oldest_birth_date_in_range
from directory.service.versions import new_version, record_version


def validate_birth(*, date_of_birth: date | None, expected_delivery_date: date | None, today: date) -> None:
    """Refuse dates outside pre-birth..19 inclusive with a message naming the rule."""
    if date_of_birth is None and expected_delivery_date is None:
        raise InvalidInput("Give a date of birth, or an expected date of delivery for an unborn child.")
    if date_of_birth is not None:
        if date_of_birth > today:
            raise InvalidInput(
                "The date of birth is in the future; for an unborn child give the expected "
                "date of delivery instead."
            )
        if date_of_birth < oldest_birth_date_in_range(today):
            raise RuleBroken(
                "The directory covers children from before birth to 19 inclusive; this date "
                "of birth is outside that range.",
                date_of_birth=date_of_birth.isoformat(),
            )
    elif expected_delivery_date is not None:
        if expected_delivery_date < today - timedelta(days=62):
            raise InvalidInput(
                "The expected date of delivery is more than two months ago: record the date of birth instead."
            )
        if expected_delivery_date > today + timedelta(days=300):
            raise InvalidInput("The expected date of delivery is more than 10 months away.")


def create_child(session: Session, *, actor: Actor, data: ChildCreate, today: date) -> Child:
    """Record a child (or an unborn child) with names, identifiers, address and carers."""
    validate_birth(
        date_of_birth=data.date_of_birth,
        expected_delivery_date=data.expected_delivery_date,
        today=today,
    )
    identifiers = _new_identifiers(session, data)
    postcode = None
    if data.address is not None:
        postcode = normalise_postcode(data.address.postcode)
        if postcode is None:
            raise InvalidInput(f"'{data.address.postcode}' is not a UK postcode (for example 'OX4 1AB').")
    if data.mother_id is not None and repo.get(session, RelatedPerson, data.mother_id) is None:
        raise NotFound("No related person has the mother_id given.")
    for org_id in (data.school_id, data.gp_practice_id):
        if org_id is not None and repo.get(session, Organisation, org_id) is None:
            raise NotFound("No organisation has that id.", organisation_id=str(org_id))
    locality = repo.locality_for_postcode(session, postcode) if postcode else None
    child = Child(
        date_of_birth=data.date_of_birth,
        expected_delivery_date=data.expected_delivery_date,
        sex=data.sex.value,
        mother_id=data.mother_id,
        school_id=data.school_id,
        gp_practice_id=data.gp_practice_id,
        locality_id=locality.id if locality else None,
    )
    session.add(child)
    session.flush()
    _add_details(session, child, data, identifiers, postcode)
    try:
        session.flush()
    except IntegrityError:
        # Another request took one of these identifiers between our check and our insert.
        raise Conflict(
            "Another child record already holds one of these identifiers; search for it "
            "instead of creating a second record."
        ) from None
    session.add(Outbox(topic="child", entity_id=child.id.hex))
    record_version(session, actor=actor, child=child, changed=["created"], source="app")
    audit_change(session, actor, "child.create", child.id)
    return child


def _new_identifiers(session: Session, data: ChildCreate) -> list[tuple[str, str]]:
    """The new record's identifiers, normalised: each valid, given once and held by no other record."""
    identifiers: list[tuple[str, str]] = []
    for ident in data.identifiers:
        try:
            value = normalise_identifier(ident.system, ident.value)
        except ValueError as exc:
            raise InvalidInput(str(exc), system=ident.system) from None
        if (ident.system, value) in identifiers:
            raise InvalidInput(f"The {ident.system} identifier is given twice.")
        if repo.identifier_owner(session, ident.system, value) is not None:
            raise Conflict(
                f"Another child record already holds this {ident.system} identifier; "
                "search for it instead of creating a second record.",
                system=ident.system,
            )
        identifiers.append((ident.system, value))
    return identifiers


def _add_details(
    session: Session,
    child: Child,
    data: ChildCreate,
    identifiers: list[tuple[str, str]],
    postcode: str | None,
) -> None:
    """Add a new record's names, identifiers, address and related people (not yet flushed)."""
    for name in data.names:
        session.add(
            ChildName(
                child_id=child.id,
                given=name.given,
                middle=name.middle,
                family=name.family,
                use=name.use.value,
                until=name.until,
            )
        )
    for system, value in identifiers:
        session.add(ChildIdentifier(child_id=child.id, system=system, value=value))
    if data.address is not None and postcode is not None:
        session.add(
            ChildAddress(
                child_id=child.id,
                line1=data.address.line1,
                line2=data.address.line2,
                town=data.address.town,
                postcode=postcode,
                since=data.address.since,
            )
        )
    for person in data.related_people:
        session.add(RelatedPerson(child_id=child.id, **person.model_dump()))


def set_shield(session: Session, *, actor: Actor, child_id: uuid.UUID, data: ShieldSet) -> Child:
    """Shield a child's location and contacts (e.g. a family fleeing violence)."""
    if actor.role not in SHIELD_SETTERS:
        raise NotAllowed(
            "Only a designated practitioner, a child-protection practitioner or a directory "
            "admin can shield a record."
        )
    child = active_child(session, child_id, for_update=True, actor=actor)
    child.shielded = True
    child.shielded_reason = data.reason
    child.shielded_by = actor.subject
    child.shielded_at = utcnow()
    new_version(session, actor=actor, child=child, changed=["shield"], source="app")
    audit_change(session, actor, "child.shield.set", child.id)
    return child


def clear_shield(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: ShieldClear | None = None
) -> Child:
    """Lift the shield from a child's record (the reason, when given, is kept as the audit event's note)."""
    if actor.role not in SHIELD_SETTERS:
        raise NotAllowed(
            "Only a designated practitioner, a child-protection practitioner or a directory "
            "admin can lift a shield."
        )
    child = active_child(session, child_id, for_update=True, actor=actor)
    if not child.shielded:
        raise Conflict("This record is not shielded.")
    child.shielded = False
    child.shielded_reason = None
    child.shielded_by = None
    child.shielded_at = None
    new_version(session, actor=actor, child=child, changed=["shield"], source="app")
    audit_change(session, actor, "child.shield.clear", child.id, note=data.reason.strip() if data else None)
    return child


def child_ref(child: Child) -> ChildRef:
    """The id, status and version of a child."""
    return ChildRef(id=child.id, status=child.status, version=child.version)
