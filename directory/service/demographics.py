"""A national demographics service (PDS) brings a record up to date, and a child moves address:
both through the one change of a child's details (service/details.py)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import ValidationError
from sqlmodel import Session

from directory import repository as repo
from directory.errors import InvalidInput, NotAllowed
from directory.identifiers import normalise_postcode
from directory.models import Actor, AddressIn, ChildAddress, DemographicsUpdate, IdentifierIn, NameUse
from directory.models.details import ChildChange, OfficialNameIn
from directory.service.access import DEMOGRAPHICS_UPDATERS
from directory.service.common import active_child, audit_change
from directory.service.details import apply_change
from directory.service.versions import new_version


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
    source: str = "app",
) -> ChildAddress:
    """Move a child to a new address, keeping the old one as history (the caller checks who may)."""
    child = active_child(session, child_id, for_update=True)
    if normalise_postcode(postcode) is None:
        raise InvalidInput(f"'{postcode}' is not a UK postcode (for example 'OX4 1AB').")
    try:
        address = AddressIn(line1=line1, line2=line2, town=town, postcode=postcode, since=since)
    except ValidationError as exc:
        raise InvalidInput(f"The address is not valid: {exc.errors()[0]['msg']}.") from None
    changed = apply_change(session, child, ChildChange(address=address), today=since)
    if changed:
        new_version(session, actor=actor, child=child, changed=changed, source=source)
    audit_change(session, actor, "child.address.change", child.id)
    current = repo.current_address(session, child.id)
    assert current is not None
    return current


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
    child = active_child(session, child_id, for_update=True, actor=actor)
    official = next((n for n in repo.child_names(session, child.id) if n.use == NameUse.OFFICIAL.value), None)
    given = data.given or (official.given if official else None)
    family = data.family or (official.family if official else None)
    change = ChildChange(
        identifiers=[IdentifierIn(system="nhs", value=data.nhs_number)] if data.nhs_number else [],
        official_name=OfficialNameIn(given=given, family=family, middle=official.middle if official else None)
        if given and family
        else None,
        date_of_birth=data.date_of_birth,
        sex=data.sex,
    )
    current = repo.current_address(session, child.id)
    moved = data.postcode and (current is None or normalise_postcode(data.postcode) != current.postcode)
    if moved and data.address_line1 and data.postcode and normalise_postcode(data.postcode) is None:
        raise InvalidInput(
            f"'{data.postcode}' is not a UK postcode (for example 'OX4 1AB')."
        )  # before any write
    changed = apply_change(session, child, change, today=today)
    if changed:
        new_version(session, actor=actor, child=child, changed=changed, source=data.source)
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
            source=data.source,
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
