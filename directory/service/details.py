"""Changing a child's details: names, date of birth, sex, address, school and GP, parents and carers,
identifiers, and the birth of an unborn child. Everything is checked before anything is written; a
change that changes something makes one new version (snapshot, outbox row) and one audit event that
names the fields, never their values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotFound
from directory.identifiers import NHS_NUMBER_SYSTEM, UPN_SYSTEM, normalise_identifier, normalise_postcode
from directory.models import (
    Actor,
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    Locality,
    NameUse,
    Organisation,
    RelatedPerson,
)
from directory.models.details import ChildChange
from directory.service.access import require_details_change
from directory.service.children import validate_birth
from directory.service.common import active_child, audit_change, check_version
from directory.service.versions import new_version

IDENTIFIER_LABELS = {NHS_NUMBER_SYSTEM: "nhs number", UPN_SYSTEM: "upn"}
"""The changed-field name of an identifier ("identifiers" for any other system)."""


def requested_fields(change: ChildChange) -> list[str]:
    """The names of the fields a change asks to set (what the access rule is asked about)."""
    asked = [
        *(IDENTIFIER_LABELS.get(i.system, "identifiers") for i in change.identifiers),
        "name" if change.official_name else "",
        "other names" if change.add_names else "",
        "date of birth" if change.date_of_birth or change.born_on else "",
        "sex" if change.sex else "",
        "address" if change.address else "",
        "school" if change.school_id or change.clears("school_id") else "",
        "gp practice" if change.gp_practice_id or change.clears("gp_practice_id") else "",
        "related people"
        if change.add_related_people or change.end_related_people or change.parental_responsibility
        else "",
    ]
    return list(dict.fromkeys(a for a in asked if a))


def change_child(
    session: Session,
    *,
    actor: Actor,
    child_id: uuid.UUID,
    change: ChildChange,
    today: date,
    source: str,
    expected_version: int | None = None,
) -> list[str]:
    """Change a child's details; return the names of the fields that changed (empty: nothing did,
    and no new version is made). A stale `expected_version` is refused before anything is written."""
    child = active_child(session, child_id, for_update=True, actor=actor)
    require_details_change(session, actor, child, requested_fields(change))
    check_version("child's record", child.version, expected_version)
    changed = apply_change(session, child, change, today=today)
    if changed:
        new_version(session, actor=actor, child=child, changed=changed, source=source)
        audit_change(
            session,
            actor,
            "child.details.change",
            child.id,
            {"changed": ", ".join(changed), "source": source},
        )
    return changed


def authorise_change(session: Session, *, actor: Actor, child_id: uuid.UUID, change: ChildChange) -> None:
    """Refuse, as change_child would, an actor who may not make this change to this record (so that a
    request missing its version is told who may change the record before what to send)."""
    child = active_child(session, child_id, actor=actor)
    require_details_change(session, actor, child, requested_fields(change))


@dataclass
class _Checked:
    """A change with every value checked and normalised, ready to write."""

    identifiers: list[tuple[str, str, ChildIdentifier | None]] = field(default_factory=list)
    postcode: str | None = None
    locality: Locality | None = None
    born: date | None = None
    people: dict[uuid.UUID, RelatedPerson] = field(default_factory=dict)


def apply_change(session: Session, child: Child, change: ChildChange, *, today: date) -> list[str]:
    """Check every part of a change, then write the parts that differ from the record; return the
    names of the fields that changed. Writes no version and no audit event (the callers do)."""
    checked = _check(session, child, change, today)
    changed: list[str] = []
    for system, value, held in checked.identifiers:
        if held is not None and held.value == value:
            continue
        if held is not None:
            held.value = value
            session.add(held)
        else:
            session.add(ChildIdentifier(child_id=child.id, system=system, value=value))
        changed.append(IDENTIFIER_LABELS.get(system, "identifiers"))
    if change.official_name is not None and _new_official_name(session, child, change, today):
        changed.append("name")
    if _add_names(session, child, change):
        changed.append("other names")
    if checked.born is not None and checked.born != child.date_of_birth:
        child.date_of_birth, child.expected_delivery_date = checked.born, None
        changed.append("date of birth")
    if change.sex is not None and change.sex.value != child.sex:
        child.sex = change.sex.value
        changed.append("sex")
    if checked.postcode is not None and _move(session, child, change, checked, today):
        changed.append("address")
    for label, column in (("school", "school_id"), ("gp practice", "gp_practice_id")):
        wanted = getattr(change, column)
        if (wanted is not None or change.clears(column)) and wanted != getattr(child, column):
            setattr(child, column, wanted)
            changed.append(label)
    if _change_people(session, child, change, checked, today):
        changed.append("related people")
    session.add(child)
    try:
        session.flush()
    except IntegrityError:
        # Another request took one of these identifiers between our check and our write.
        raise Conflict("Another child record already holds one of these identifiers.") from None
    return list(dict.fromkeys(changed))


def _check(session: Session, child: Child, change: ChildChange, today: date) -> _Checked:
    """Every value of the change checked against the rules and the record, nothing written."""
    checked = _Checked()
    seen: set[str] = set()
    held_ids = repo.child_identifiers(session, child.id) if change.identifiers else ()
    for ident in change.identifiers:
        try:
            value = normalise_identifier(ident.system, ident.value)
        except ValueError as exc:
            raise InvalidInput(str(exc), system=ident.system) from None
        if ident.system in seen:
            raise InvalidInput(f"The {ident.system} identifier is given twice.", system=ident.system)
        seen.add(ident.system)
        owner = repo.identifier_owner(session, ident.system, value)
        if owner is not None and owner != child.id:
            raise Conflict(
                f"Another record holds this {ident.system} identifier: the two records are probably the "
                "same child; merge them instead.",
                system=ident.system,
            )
        held = next((i for i in held_ids if i.system == ident.system), None)
        checked.identifiers.append((ident.system, value, held))
    born = change.born_on or change.date_of_birth
    if change.born_on is not None and child.date_of_birth is not None:
        raise InvalidInput("This child's birth is already recorded: to correct the date, send date_of_birth.")
    if born is not None and born != child.date_of_birth:
        validate_birth(date_of_birth=born, expected_delivery_date=None, today=today)
        checked.born = born
    if change.address is not None:
        checked.postcode = normalise_postcode(change.address.postcode)
        if checked.postcode is None:
            raise InvalidInput(f"'{change.address.postcode}' is not a UK postcode (for example 'OX4 1AB').")
        checked.locality = repo.locality_for_postcode(session, checked.postcode)
    for org_id in (change.school_id, change.gp_practice_id):
        if org_id is not None and repo.get(session, Organisation, org_id) is None:
            raise NotFound("No organisation has that id.", organisation_id=str(org_id))
    for person_id in [p.id for p in change.end_related_people] + [
        p.id for p in change.parental_responsibility
    ]:
        person = repo.get(session, RelatedPerson, person_id)
        if person is None or person.child_id != child.id or person.until is not None:
            raise NotFound("None of this child's current parents or carers has that id.", id=str(person_id))
        checked.people[person_id] = person
    return checked


def _new_official_name(session: Session, child: Child, change: ChildChange, today: date) -> bool:
    """Record a new official name, keeping the old one as a previous name; True when it changed."""
    new = change.official_name
    assert new is not None
    names = repo.child_names(session, child.id)
    official = next((n for n in names if n.use == NameUse.OFFICIAL.value), None)
    if official is not None and (official.given, official.middle, official.family) == (
        new.given,
        new.middle,
        new.family,
    ):
        return False
    if official is not None:
        official.use, official.until = NameUse.PREVIOUS.value, today
        session.add(official)
    session.add(
        ChildName(
            child_id=child.id,
            use=NameUse.OFFICIAL.value,
            given=new.given,
            middle=new.middle,
            family=new.family,
        )
    )
    return True


def _add_names(session: Session, child: Child, change: ChildChange) -> bool:
    """Add known-as names and aliases the record does not hold yet; True when one was added."""
    if not change.add_names:
        return False  # (no read of the names for a change that adds none)
    held = {(n.use, n.given, n.middle, n.family) for n in repo.child_names(session, child.id)}
    added = False
    for name in change.add_names:
        key = (name.use, name.given, name.middle, name.family)
        if key not in held:
            held.add(key)
            session.add(
                ChildName(
                    child_id=child.id, use=name.use, given=name.given, middle=name.middle, family=name.family
                )
            )
            added = True
    return added


def _move(session: Session, child: Child, change: ChildChange, checked: _Checked, today: date) -> bool:
    """Move the child to the new address (the old one kept, with the day it ended) and recompute the
    locality from the postcode; True when the address differs from the current one."""
    new = change.address
    assert new is not None and checked.postcode is not None
    current = repo.current_address(session, child.id)
    if current is not None and (current.line1, current.line2, current.town, current.postcode) == (
        new.line1,
        new.line2,
        new.town,
        checked.postcode,
    ):
        return False
    since = new.since or today
    if current is not None:
        current.until = since
        session.add(current)
        session.flush()  # one current address: the old one ends before the new one starts
    session.add(
        ChildAddress(
            child_id=child.id,
            line1=new.line1,
            line2=new.line2,
            town=new.town,
            postcode=checked.postcode,
            since=since,
        )
    )
    child.locality_id = checked.locality.id if checked.locality else None
    return True


def _change_people(
    session: Session, child: Child, change: ChildChange, checked: _Checked, today: date
) -> bool:
    """Add, end and change the parental responsibility of parents and carers; True when any changed."""
    if not (change.add_related_people or change.end_related_people or change.parental_responsibility):
        return False  # (no read of the carers for a change that touches none)
    changed = False
    current = {(p.name, p.relationship) for p in repo.related_people(session, child.id)}
    for person in change.add_related_people:
        if (person.name, person.relationship) not in current:
            current.add((person.name, person.relationship))
            session.add(RelatedPerson(child_id=child.id, **person.model_dump()))
            changed = True
    for ended in change.end_related_people:
        row = checked.people[ended.id]
        row.until = ended.until or today
        session.add(row)
        changed = True
    for pr in change.parental_responsibility:
        row = checked.people[pr.id]
        if row.parental_responsibility != pr.parental_responsibility:
            row.parental_responsibility = pr.parental_responsibility
            session.add(row)
            changed = True
    return changed
