"""A child's record: create it, move its address, refresh its demographics, shield it, and merge a
duplicate into it (its life cycle, archive and purge: directory/service/lifecycle.py)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import audit
from directory import repository as repo
from directory.errors import CafAlreadyOpen, Conflict, InvalidInput, NotAllowed, NotFound, RuleBroken
from directory.identifiers import normalise_identifier, normalise_postcode
from directory.models import (
    Actor,
    Child,
    ChildAddress,
    ChildCreate,
    ChildIdentifier,
    ChildName,
    ChildRef,
    DemographicsUpdate,
    NameUse,
    Organisation,
    Outbox,
    RecordStatus,
    RelatedPerson,
    Role,
    ShieldClear,
    ShieldSet,
    utcnow,
)
from directory.service.access import DEMOGRAPHICS_UPDATERS, SHIELD_SETTERS
from directory.service.common import active_child, audit_change, oldest_birth_date_in_range, touch


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


def change_address(
    session: Session,
    *,
    actor: Actor,
    child_id: uuid.UUID,
    line1: str,
    postcode: str,
    town: str | None = None,
    line2: str | None = None,
    since: date,
) -> ChildAddress:
    """Move a child to a new address, keeping the old one as history."""
    child = active_child(session, child_id, for_update=True)
    canonical = normalise_postcode(postcode)
    if canonical is None:
        raise InvalidInput(f"'{postcode}' is not a UK postcode (for example 'OX4 1AB').")
    current = repo.current_address(session, child.id)
    if current is not None:
        current.until = since
        session.add(current)
        session.flush()
    address = ChildAddress(
        child_id=child.id, line1=line1, line2=line2, town=town, postcode=canonical, since=since
    )
    session.add(address)
    locality = repo.locality_for_postcode(session, canonical)
    child.locality_id = locality.id if locality else None
    touch(session, child)
    session.flush()
    audit_change(session, actor, "child.address.change", child.id)
    return address


def apply_demographics(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: DemographicsUpdate, today: date
) -> list[str]:
    """Bring a record up to date with a national service's demographics; return what changed.

    A superseded NHS number is replaced by the current one; a new official name keeps the old one
    as a previous name; a new postcode moves the child (the old address stays as history). The
    audit event names the fields that changed, never their values.
    """
    if actor.role not in DEMOGRAPHICS_UPDATERS:
        raise NotAllowed("Only a directory admin or a connected system can refresh demographics.")
    child = active_child(session, child_id, for_update=True)
    changed: list[str] = []
    if data.nhs_number is not None and _refresh_nhs_number(session, child, data.nhs_number):
        changed.append("nhs number")
    if _refresh_name(session, child, data, today):
        changed.append("name")
    if data.date_of_birth is not None and data.date_of_birth != child.date_of_birth:
        validate_birth(date_of_birth=data.date_of_birth, expected_delivery_date=None, today=today)
        child.date_of_birth, child.expected_delivery_date = data.date_of_birth, None
        changed.append("date of birth")
    if data.sex is not None and data.sex.value != child.sex:
        child.sex = data.sex.value
        changed.append("sex")
    if changed:
        touch(session, child)
        session.flush()
    current = repo.current_address(session, child.id)
    moved = data.postcode and (current is None or normalise_postcode(data.postcode) != current.postcode)
    if moved and data.address_line1 and data.postcode:
        change_address(
            session,
            actor=actor,
            child_id=child.id,
            line1=data.address_line1,
            line2=data.address_line2,
            town=data.town,
            postcode=data.postcode,
            since=today,
        )
        changed.append("address")
    audit_change(
        session,
        actor,
        "child.demographics.refresh",
        child.id,
        {"source": data.source, "changed": ", ".join(changed) or "nothing"},
    )
    return changed


def _refresh_nhs_number(session: Session, child: Child, nhs_number: str) -> bool:
    """Replace a superseded NHS number with the current one (or record it); True when it changed."""
    value = normalise_identifier("nhs", nhs_number)
    held = [i for i in repo.child_identifiers(session, child.id) if i.system == "nhs"]
    if held and held[0].value == value:
        return False
    clash = repo.child_by_identifier(session, "nhs", value)
    if clash is not None and clash.id != child.id:
        raise Conflict(
            "Another record holds the current NHS number: the two records are probably the "
            "same child; merge them instead.",
            other_child_id=str(clash.id),
        )
    if held:
        held[0].value = value
        session.add(held[0])
    else:
        session.add(ChildIdentifier(child_id=child.id, system="nhs", value=value))
    return True


def _refresh_name(session: Session, child: Child, data: DemographicsUpdate, today: date) -> bool:
    """Record a new official name, keeping the old one as a previous name; True when it changed."""
    official = next((n for n in repo.child_names(session, child.id) if n.use == NameUse.OFFICIAL.value), None)
    given = data.given or (official.given if official else None)
    family = data.family or (official.family if official else None)
    if not (given and family and (official is None or (official.given, official.family) != (given, family))):
        return False
    if official is not None:
        official.use, official.until = NameUse.PREVIOUS.value, today
        session.add(official)
    session.add(ChildName(child_id=child.id, use=NameUse.OFFICIAL.value, given=given, family=family))
    return True


def set_shield(session: Session, *, actor: Actor, child_id: uuid.UUID, data: ShieldSet) -> Child:
    """Shield a child's location and contacts (e.g. a family fleeing violence)."""
    if actor.role not in SHIELD_SETTERS:
        raise NotAllowed(
            "Only a designated practitioner, a child-protection practitioner or a directory "
            "admin can shield a record."
        )
    child = active_child(session, child_id, for_update=True)
    child.shielded = True
    child.shielded_reason = data.reason
    child.shielded_by = actor.subject
    child.shielded_at = utcnow()
    touch(session, child)
    session.flush()
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
    child = active_child(session, child_id, for_update=True)
    if not child.shielded:
        raise Conflict("This record is not shielded.")
    child.shielded = False
    child.shielded_reason = None
    child.shielded_by = None
    child.shielded_at = None
    touch(session, child)
    session.flush()
    audit_change(session, actor, "child.shield.clear", child.id, note=data.reason.strip() if data else None)
    return child


def merge_children(session: Session, *, actor: Actor, duplicate_id: uuid.UUID, into_id: uuid.UUID) -> Child:
    """Mark a duplicate record as merged into the record that is kept (never deletes either)."""
    if actor.role != Role.DIRECTORY_ADMIN:
        raise NotAllowed("Only a directory admin can merge duplicate records.")
    if duplicate_id == into_id:
        raise InvalidInput("A record cannot be merged into itself.")
    duplicate = active_child(session, duplicate_id, for_update=True)
    kept = active_child(session, into_id, for_update=True)
    if repo.open_caf(session, duplicate.id) is not None and repo.open_caf(session, kept.id) is not None:
        raise CafAlreadyOpen(
            "Both records have an open CAF: the practitioners must agree which one continues and "
            "close the other before the records can be merged."
        )
    duplicate.status = RecordStatus.MERGED.value
    duplicate.merged_into_id = kept.id
    touch(session, duplicate)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="child.merge",
        target_type="child",
        target_id=duplicate.id,
        detail={"into": kept.id.hex},
        children=[kept.id],
    )
    return duplicate


def child_ref(child: Child) -> ChildRef:
    """The id, status and version of a child."""
    return ChildRef(id=child.id, status=child.status, version=child.version)
