"""Use cases of the directory: typed functions that flush() and never commit()."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import audit, notices
from directory import repository as repo
from directory.errors import (
    CafAlreadyOpen,
    Conflict,
    ConsentRequired,
    InvalidInput,
    NotAllowed,
    NotFound,
    RuleBroken,
    StaleVersion,
)
from directory.identifiers import normalise_identifier, normalise_postcode
from directory.models import (
    OPEN_CAF_STATUSES,
    AccessLogEntry,
    Actor,
    AddressRead,
    Assessment,
    CafClose,
    CafComplete,
    CafRead,
    CafSignal,
    CafStart,
    CafStatus,
    Child,
    ChildAddress,
    ChildCard,
    ChildCreate,
    ChildIdentifier,
    ChildName,
    ChildRef,
    Consent,
    ConsentCreate,
    ConsentGiver,
    ConsentRead,
    ConsentScope,
    ConsentWithdraw,
    Contact,
    DemographicsUpdate,
    HandOver,
    HandOverRead,
    IdentifierRead,
    Involvement,
    InvolvementCreate,
    InvolvementEnd,
    InvolvementRead,
    InvolvementStatus,
    InvolvementUpdate,
    InvolvementVersion,
    LeadProfessionalAssignment,
    LeadProfessionalRead,
    Locality,
    NameRead,
    NameUse,
    Organisation,
    Outbox,
    Practitioner,
    PractitionerCreate,
    RecordStatus,
    RelatedPerson,
    RelatedPersonRead,
    Role,
    Service,
    ShieldClear,
    ShieldNotice,
    ShieldSet,
    Tac,
    TacConvene,
    TacMember,
    TacMemberRead,
    TacRead,
    TacStatus,
    TacUpdate,
    utcnow,
)
from directory.permissions import (  # re-exported: callers read the rules from here
    SENSITIVE_VIEWERS,
    SHIELD_VIEWERS,
    Standing,
    acting_practitioner,
    active_practitioner,
    ask_contact,
    caf_parties,
    caf_standing,
    holder_to_ask,
    how_to_reach,
    may_change_involvement,
    may_see_consent,
    may_see_practitioner,
    may_see_sensitive,
    may_see_shielded,
    may_withdraw_consent,
    on_behalf,
    practitioner_to_record,
    require_caf_change,
    require_catalogue_change,
    require_consent_withdrawal,
    require_involvement_change,
)

__all__ = [
    "SENSITIVE_VIEWERS",
    "SHIELD_VIEWERS",
    "Standing",
    "ask_contact",
    "caf_standing",
    "holder_to_ask",
    "how_to_reach",
    "may_change_involvement",
    "may_withdraw_consent",
    "require_caf_change",
    "may_see_consent",
    "may_see_practitioner",
    "may_see_sensitive",
    "may_see_shielded",
]

MAX_AGE_YEARS = 19  # pre-birth to 19 inclusive
SHIELD_SETTERS = {Role.DESIGNATED_PRACTITIONER, Role.CHILD_PROTECTION, Role.DIRECTORY_ADMIN}
ACCESS_LOG_READERS = {Role.AUDITOR, Role.DIRECTORY_ADMIN, Role.DESIGNATED_PRACTITIONER}
_CAF_CONSENT_SCOPES = {ConsentScope.CAF.value}


# --------------------------------------------------------------------------- helpers


def age_on(born: date, today: date) -> int:
    """Completed years of age on a day."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def oldest_birth_date_in_range(today: date) -> date:
    """Children born on or after this day are within the age range (19 inclusive)."""
    return _add_years(today, -(MAX_AGE_YEARS + 1)) + timedelta(days=1)


def _load_child(session: Session, child_id: uuid.UUID, *, for_update: bool = False) -> Child:
    child = repo.get(session, Child, child_id, for_update=for_update)
    if child is None:
        raise NotFound("No child record has that id.", child_id=str(child_id))
    return child  # type: ignore[no-any-return]


def _active_child(session: Session, child_id: uuid.UUID, *, for_update: bool = False) -> Child:
    child = _load_child(session, child_id, for_update=for_update)
    if child.status == RecordStatus.MERGED.value:
        raise RuleBroken(
            "This record was merged into another; make the change on that record.",
            merged_into_id=str(child.merged_into_id),
        )
    if child.status != RecordStatus.ACTIVE.value:
        raise RuleBroken(
            "This record is archived (the child is outside the 0-19 age range or no longer "
            "in the area); it can be read but not changed.",
            child_id=str(child.id),
        )
    return child


_practitioner = active_practitioner  # (an active practitioner by id, or NotFound)


def _contact(session: Session, practitioner_id: uuid.UUID) -> Contact:
    practitioner, org = repo.practitioner_contact(session, practitioner_id)
    return Contact(
        name=practitioner.name,
        role=practitioner.role,
        organisation=org.name,
        phone=practitioner.phone or org.phone,
        email=practitioner.email or org.email,
    )


def _touch(session: Session, child: Child) -> None:
    child.updated_at = utcnow()
    child.version += 1
    session.add(child)
    session.add(Outbox(topic="child", entity_id=child.id.hex))


def check_version(kind: str, current: int, expected: int | None) -> None:
    """Refuse a change made against an older version of a record (optimistic locking)."""
    if expected is not None and expected != current:
        raise StaleVersion(
            f"This {kind} changed since you read it (you sent version {expected}, it is now at "
            f"version {current}); read it again and reapply your change.",
            current_version=current,
        )


def _snapshot(session: Session, involvement: Involvement, *, actor: Actor, change: str) -> None:
    body = {
        c: getattr(involvement, c)
        for c in (
            "child_id",
            "service_id",
            "practitioner_id",
            "role",
            "level_of_need",
            "start_date",
            "end_date",
            "status",
            "sensitive",
            "consent_id",
            "source",
            "last_confirmed_at",
        )
    }
    session.add(
        InvolvementVersion(
            involvement_id=involvement.id,
            version=involvement.version,
            child_id=involvement.child_id,
            change=change,
            snapshot=json.dumps(body, sort_keys=True, default=str),
            recorded_by=actor.subject,
        )
    )


def _audit_change(
    session: Session, actor: Actor, action: str, child_id: uuid.UUID, detail: dict[str, str] | None = None
) -> None:
    """Append the audit event of a change to one child: the last write of every use case."""
    audit.append(session, actor=actor, action=action, target_type="child", target_id=child_id, detail=detail)


def _require_purpose(actor: Actor) -> None:
    if actor.purpose is None:
        raise InvalidInput(
            "Say why you are looking: give a purpose of use (for example 'considering-caf' or 'direct-care')."
        )


def _current_consent_covers(consent: Consent, scope: str) -> bool:
    if consent.withdrawn_at is not None:
        return False
    if consent.scope == scope:
        return True
    return scope.startswith("sensitive:") and consent.scope == ConsentScope.SENSITIVE_ALL.value


# --------------------------------------------------------------------------- children


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
    try:
        session.flush()
    except IntegrityError:
        # Another request took one of these identifiers between our check and our insert.
        raise Conflict(
            "Another child record already holds one of these identifiers; search for it "
            "instead of creating a second record."
        ) from None
    session.add(Outbox(topic="child", entity_id=child.id.hex))
    _audit_change(session, actor, "child.create", child.id)
    return child


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
    child = _active_child(session, child_id, for_update=True)
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
    _touch(session, child)
    session.flush()
    _audit_change(session, actor, "child.address.change", child.id)
    return address


DEMOGRAPHICS_UPDATERS = {Role.DIRECTORY_ADMIN, Role.SYSTEM}


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
    child = _active_child(session, child_id, for_update=True)
    changed: list[str] = []
    if data.nhs_number is not None:
        value = normalise_identifier("nhs", data.nhs_number)
        held = [i for i in repo.child_identifiers(session, child.id) if i.system == "nhs"]
        if not held or held[0].value != value:
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
            changed.append("nhs number")
    official = next((n for n in repo.child_names(session, child.id) if n.use == NameUse.OFFICIAL.value), None)
    given = data.given or (official.given if official else None)
    family = data.family or (official.family if official else None)
    if given and family and (official is None or (official.given, official.family) != (given, family)):
        if official is not None:
            official.use, official.until = NameUse.PREVIOUS.value, today
            session.add(official)
        session.add(ChildName(child_id=child.id, use=NameUse.OFFICIAL.value, given=given, family=family))
        changed.append("name")
    if data.date_of_birth is not None and data.date_of_birth != child.date_of_birth:
        validate_birth(date_of_birth=data.date_of_birth, expected_delivery_date=None, today=today)
        child.date_of_birth, child.expected_delivery_date = data.date_of_birth, None
        changed.append("date of birth")
    if data.sex is not None and data.sex.value != child.sex:
        child.sex = data.sex.value
        changed.append("sex")
    if changed:
        _touch(session, child)
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
    _audit_change(
        session,
        actor,
        "child.demographics.refresh",
        child.id,
        {"source": data.source, "changed": ", ".join(changed) or "nothing"},
    )
    return changed


def set_shield(session: Session, *, actor: Actor, child_id: uuid.UUID, data: ShieldSet) -> Child:
    """Shield a child's location and contacts (e.g. a family fleeing violence)."""
    if actor.role not in SHIELD_SETTERS:
        raise NotAllowed(
            "Only a designated practitioner, a child-protection practitioner or a directory "
            "admin can shield a record."
        )
    child = _active_child(session, child_id, for_update=True)
    child.shielded = True
    child.shielded_reason = data.reason
    child.shielded_by = actor.subject
    child.shielded_at = utcnow()
    _touch(session, child)
    session.flush()
    _audit_change(session, actor, "child.shield.set", child.id)
    return child


def clear_shield(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: ShieldClear | None = None
) -> Child:
    """Lift the shield from a child's record (the reason, when given, goes into the audit event)."""
    if actor.role not in SHIELD_SETTERS:
        raise NotAllowed(
            "Only a designated practitioner, a child-protection practitioner or a directory "
            "admin can lift a shield."
        )
    child = _active_child(session, child_id, for_update=True)
    if not child.shielded:
        raise Conflict("This record is not shielded.")
    child.shielded = False
    child.shielded_reason = None
    child.shielded_by = None
    child.shielded_at = None
    _touch(session, child)
    session.flush()
    _audit_change(
        session, actor, "child.shield.clear", child.id, {"reason": data.reason.strip()} if data else None
    )
    return child


def archive_aged_out(session: Session, *, actor: Actor, today: date, limit: int = 10_000) -> int:
    """Archive (never delete) active records of young people past 19."""
    cutoff = oldest_birth_date_in_range(today) - timedelta(days=1)
    count = 0
    for child in repo.aged_out_children(session, cutoff, limit):
        child.status = RecordStatus.ARCHIVED.value
        child.archived_reason = "outside the 0-19 age range"
        _touch(session, child)
        count += 1
    session.flush()
    if count:
        audit.append(session, actor=actor, action="child.archive-aged-out", detail={"count": count})
    return count


# --------------------------------------------------------------------------- consent


def record_consent(session: Session, *, actor: Actor, child_id: uuid.UUID, data: ConsentCreate) -> Consent:
    """Record a consent given by a parent/carer or a competent young person."""
    child = _active_child(session, child_id)
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
    _audit_change(
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
    require_consent_withdrawal(session, actor, consent, _load_child(session, consent.child_id))
    if consent.withdrawn_at is not None:
        raise Conflict("This consent was already withdrawn.")
    consent.withdrawn_at = utcnow()
    consent.withdrawn_reason = data.reason
    session.add(consent)
    session.flush()
    _audit_change(session, actor, "consent.withdraw", consent.child_id, {"consent_id": consent.id.hex})
    return consent  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- involvement


def record_involvement(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: InvolvementCreate
) -> Involvement:
    """Record that a service (and maybe a named practitioner) is working with a child (see
    permissions.practitioner_to_record for who may record which)."""
    child = _active_child(session, child_id)
    service = repo.get(session, Service, data.service_id)
    if service is None:
        raise NotFound("No service has that id; pick one from /api/v1/services.")
    practitioner_id = practitioner_to_record(session, actor, service, child, data.practitioner_id)
    if data.start_date > date.today() + timedelta(days=1):
        raise InvalidInput("An involvement cannot start in the future.")
    held = repo.active_involvement(session, child.id, service.id)
    if held is not None:
        held_consent = repo.get(session, Consent, held.consent_id) if held.consent_id else None
        if may_see_shielded(child, actor) and (
            not held.sensitive or may_see_sensitive(actor, held, held_consent)
        ):
            raise Conflict(
                f"{service.name} is already recorded as involved with this child; confirm or end "
                "that involvement instead of adding another."
            )
        ask = ask_contact(session, child)
        raise Conflict(
            f"This service's involvement with the child is already recorded. Ask {ask.name}"
            f"{how_to_reach(ask)} if it needs changing."
        )
    sensitive = data.sensitive or service.sensitive
    consent_id = None
    if sensitive:
        if data.consent_id is None:
            raise ConsentRequired(
                f"{service.name} is a sensitive involvement: it can be recorded only with a "
                "consent that covers it. Record the consent of the young person (or parent) "
                "first and give its consent_id."
            )
        consent = repo.get(session, Consent, data.consent_id, for_update=True)
        scope = f"sensitive:{service.sensitive_category or 'all'}"
        if consent is None or consent.child_id != child.id:
            raise NotFound("That consent is not recorded for this child.")
        if not _current_consent_covers(consent, scope):
            raise ConsentRequired(
                f"The consent given does not cover this involvement (it needs scope '{scope}' "
                "or 'sensitive:all' and must not be withdrawn)."
            )
        consent_id = consent.id
    involvement = Involvement(
        child_id=child.id,
        service_id=service.id,
        practitioner_id=practitioner_id,
        role=data.role,
        level_of_need=data.level_of_need,
        start_date=data.start_date,
        sensitive=sensitive,
        consent_id=consent_id,
        source=data.source,
        recorded_by=actor.subject,
    )
    session.add(involvement)
    session.flush()
    _snapshot(session, involvement, actor=actor, change="record")
    _audit_change(session, actor, "involvement.record", child.id, {"involvement_id": involvement.id.hex})
    return involvement


def end_involvement(
    session: Session,
    *,
    actor: Actor,
    involvement_id: uuid.UUID,
    data: InvolvementEnd,
    expected_version: int | None = None,
) -> Involvement:
    """End an involvement: the service is no longer working with the child."""
    involvement = _involvement_to_change(
        session,
        actor,
        involvement_id,
        expected_version,
        if_ended="This involvement has already ended.",
        doing="end this involvement",
    )
    _end(involvement, data.end_date)
    return _save_involvement_change(session, actor, involvement, "end")


def update_involvement(
    session: Session,
    *,
    actor: Actor,
    involvement_id: uuid.UUID,
    data: InvolvementUpdate,
    expected_version: int | None = None,
) -> Involvement:
    """Change who is working with the child, their role or the level of need; or end it."""
    involvement = _involvement_to_change(
        session,
        actor,
        involvement_id,
        expected_version,
        if_ended="This involvement has ended; record a new one instead of changing it.",
        doing="change this involvement",
    )
    if data.practitioner_id is not None and data.practitioner_id != involvement.practitioner_id:
        service = repo.get(session, Service, involvement.service_id)
        child = _load_child(session, involvement.child_id)
        practitioner_to_record(session, actor, service, child, data.practitioner_id)
    involvement.practitioner_id = data.practitioner_id
    involvement.role = data.role
    involvement.level_of_need = data.level_of_need
    change = "update"
    if data.end_date is not None:
        _end(involvement, data.end_date)
        change = "end"
    involvement.last_confirmed_at = utcnow()
    return _save_involvement_change(session, actor, involvement, change)


def _involvement_to_change(
    session: Session,
    actor: Actor,
    involvement_id: uuid.UUID,
    expected_version: int | None,
    *,
    if_ended: str,
    doing: str,
) -> Involvement:
    """The involvement, locked, once the actor may change it, at the version they saw, not yet ended."""
    involvement = repo.get(session, Involvement, involvement_id, for_update=True)
    if involvement is None:
        raise NotFound("No involvement has that id.")
    require_involvement_change(
        session, actor, involvement, _load_child(session, involvement.child_id), doing=doing
    )
    check_version("involvement", involvement.version, expected_version)
    if involvement.status == InvolvementStatus.ENDED.value:
        raise Conflict(if_ended)
    return involvement  # type: ignore[no-any-return]


def _end(involvement: Involvement, end_date: date) -> None:
    if end_date < involvement.start_date:
        raise InvalidInput("An involvement cannot end before it started.")
    involvement.status = InvolvementStatus.ENDED.value
    involvement.end_date = end_date


def _save_involvement_change(
    session: Session, actor: Actor, involvement: Involvement, change: str
) -> Involvement:
    """A new version of the involvement, with its snapshot in the history and its audit event."""
    involvement.version += 1
    session.add(involvement)
    session.flush()
    _snapshot(session, involvement, actor=actor, change=change)
    _audit_change(
        session, actor, f"involvement.{change}", involvement.child_id, {"involvement_id": involvement.id.hex}
    )
    return involvement


def confirm_involvement(session: Session, *, actor: Actor, involvement_id: uuid.UUID) -> Involvement:
    """Confirm an involvement is still current (updates last confirmed)."""
    involvement = repo.get(session, Involvement, involvement_id, for_update=True)
    if involvement is None:
        raise NotFound("No active involvement has that id.")
    child = _load_child(session, involvement.child_id)
    require_involvement_change(session, actor, involvement, child, doing="confirm this involvement")
    if involvement.status != InvolvementStatus.ACTIVE.value:
        raise NotFound("No active involvement has that id.")
    involvement.last_confirmed_at = utcnow()
    session.add(involvement)
    session.flush()
    _audit_change(
        session, actor, "involvement.confirm", involvement.child_id, {"involvement_id": involvement.id.hex}
    )
    return involvement  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- practitioners

PRACTITIONER_REGISTRARS = {Role.DIRECTORY_ADMIN, Role.SYSTEM}


def register_practitioner(session: Session, *, actor: Actor, data: PractitionerCreate) -> Practitioner:
    """Add a practitioner (and how to reach them) to the catalogue."""
    if actor.role not in PRACTITIONER_REGISTRARS:
        raise NotAllowed("Only a directory admin or a connected system can add practitioners.")
    if repo.get(session, Organisation, data.organisation_id) is None:
        raise NotFound("No organisation has that id.", organisation_id=str(data.organisation_id))
    require_catalogue_change(session, actor, [data.organisation_id])
    practitioner = Practitioner(**data.model_dump())
    session.add(practitioner)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="practitioner.register",
        target_type="practitioner",
        target_id=practitioner.id,
    )
    return practitioner


def update_practitioner(
    session: Session,
    *,
    actor: Actor,
    practitioner_id: uuid.UUID,
    data: PractitionerCreate,
    expected_version: int | None = None,
) -> Practitioner:
    """Change a practitioner's role, organisation or contact point, or mark them inactive.

    A change against an older version is refused (StaleVersion); an update that changes nothing
    keeps the version.
    """
    if actor.role not in PRACTITIONER_REGISTRARS:
        raise NotAllowed("Only a directory admin or a connected system can change practitioners.")
    practitioner = repo.get(session, Practitioner, practitioner_id, for_update=True)
    if practitioner is None:
        raise NotFound("No practitioner has that id.", practitioner_id=str(practitioner_id))
    require_catalogue_change(session, actor, [practitioner.organisation_id, data.organisation_id])
    check_version("practitioner", practitioner.version, expected_version)
    if repo.get(session, Organisation, data.organisation_id) is None:
        raise NotFound("No organisation has that id.", organisation_id=str(data.organisation_id))
    changes = {k: v for k, v in data.model_dump().items() if getattr(practitioner, k) != v}
    if not changes:
        return practitioner  # type: ignore[no-any-return]
    for key, value in changes.items():
        setattr(practitioner, key, value)
    practitioner.version += 1
    session.add(practitioner)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="practitioner.update",
        target_type="practitioner",
        target_id=practitioner.id,
    )
    return practitioner  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- CAF


def _caf_conflict(session: Session, caf: Assessment, child: Child, actor: Actor) -> CafAlreadyOpen:
    holder, named = holder_to_ask(session, actor, caf, child)
    if not named:
        # Naming the holder would say who works with a shielded child and where, or that a child sees
        # a sensitive service: refer to the local delivery team instead.
        why = (
            "The record is shielded, so whoever holds it is not named here: ask" if child.shielded else "Ask"
        )
        return CafAlreadyOpen(
            f"A CAF is already open for this child. {why} {holder.name}{how_to_reach(holder)} to put you "
            "in touch with whoever holds it, and join it instead of starting another.",
            caf_id=str(caf.id),
            caf_status=caf.status,
            holder=holder.model_dump(),
        )
    state = {
        "signalled": "has signalled that they are starting one",
        "in_progress": "is carrying one out",
        "completed": "completed one that is not yet closed",
    }[caf.status]
    how = " or ".join(x for x in (holder.phone, holder.email) if x) or "through their organisation"
    return CafAlreadyOpen(
        f"A CAF is already open for this child: {holder.name} ({holder.role}, "
        f"{holder.organisation}) {state}. Contact them on {how} and join it instead of "
        "starting another.",
        caf_id=str(caf.id),
        caf_status=caf.status,
        holder=holder.model_dump(),
    )


def lapse_expired_signal(session: Session, *, child_id: uuid.UUID, now: datetime) -> bool:
    """Turn a child's overdue signal of intent into 'expired'; True when one lapsed."""
    caf = repo.open_caf(session, child_id, for_update=True)
    if caf is None or caf.status != CafStatus.SIGNALLED.value:
        return False
    if caf.signal_expires_at is None or caf.signal_expires_at > now:
        return False
    _expire(session, caf, now)
    return True


def _expire(session: Session, caf: Assessment, now: datetime) -> None:
    caf.status = CafStatus.EXPIRED.value
    caf.closed_at = now
    caf.closed_reason = "the signal of intent expired before a CAF was started"
    caf.version += 1
    session.add(caf)
    lead = repo.current_lead(session, caf.child_id)
    if lead is not None:
        lead.ended_at = now
        session.add(lead)
    session.flush()


def expire_signals(session: Session, *, actor: Actor, now: datetime) -> int:
    """Expire every overdue signal of intent (the periodic sweep)."""
    overdue = repo.expired_signals(session, now)
    for caf in overdue:
        _expire(session, caf, now)
    if overdue:
        audit.append(session, actor=actor, action="caf.expire-signals", detail={"count": len(overdue)})
    return len(overdue)


def signal_caf(
    session: Session,
    *,
    actor: Actor,
    child_id: uuid.UUID,
    data: CafSignal,
    signal_days: int,
    now: datetime,
) -> Assessment:
    """Signal the intent to start a CAF, as the signed-in practitioner (a connected system: for one of
    its own); refuse, naming the holder, when one is open."""
    if not data.no_risk_of_significant_harm:
        raise InvalidInput(
            "A CAF is not the route when a child may be at risk of significant harm: follow your "
            "safeguarding procedures and refer to children's social care now. Signal a CAF only once you "
            "have confirmed that the child is not at risk of significant harm.",
            field="no_risk_of_significant_harm",
        )
    child = _active_child(session, child_id)
    practitioner = acting_practitioner(session, actor, data.practitioner_id, doing="signal a CAF")
    lapse_expired_signal(session, child_id=child.id, now=now)
    existing = repo.open_caf(session, child.id)
    if existing is not None:
        raise _caf_conflict(session, existing, child, actor)
    caf = Assessment(
        child_id=child.id,
        status=CafStatus.SIGNALLED.value,
        initiator_id=practitioner.id,
        lead_practitioner_id=practitioner.id,
        signalled_at=now,
        signal_expires_at=now + timedelta(days=signal_days),
    )
    try:
        with session.begin_nested():
            session.add(caf)
            session.flush()
    except IntegrityError:
        # Lost the race: another practitioner's CAF committed first. Name them.
        winner = repo.open_caf(session, child.id)
        if winner is None:
            raise
        raise _caf_conflict(session, winner, child, actor) from None
    session.add(
        LeadProfessionalAssignment(
            child_id=child.id,
            assessment_id=caf.id,
            practitioner_id=practitioner.id,
            reason="CAF initiator is Lead Professional until a TAC or panel appoints one",
            assigned_by=actor.subject,
            started_at=now,
        )
    )
    session.flush()
    _audit_change(
        session, actor, "caf.signal", child.id, {"caf_id": caf.id.hex, **on_behalf(actor, practitioner)}
    )
    return caf


def _load_caf(session: Session, caf_id: uuid.UUID) -> Assessment:
    caf = repo.get(session, Assessment, caf_id, for_update=True)
    if caf is None:
        raise NotFound("No CAF has that id.")
    return caf  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _CafChange:
    """A CAF about to change, the child, who the actor is to it, and who held it before the change."""

    caf: Assessment
    child: Child
    standing: Standing
    holders: tuple[uuid.UUID, ...]


def _caf_to_change(
    session: Session, actor: Actor, caf_id: uuid.UUID, *, reason: str | None, doing: str
) -> _CafChange:
    """The CAF, locked, once the actor may change it (see permissions.require_caf_change)."""
    caf = _load_caf(session, caf_id)
    child = _load_child(session, caf.child_id)
    standing = require_caf_change(session, actor, caf, child, reason=reason, doing=doing)
    return _CafChange(caf, child, standing, caf_parties(session, caf).holders)


def _made_known(
    session: Session, actor: Actor, change: _CafChange, *, action: str, what: str, reason: str | None
) -> dict[str, str]:
    """Tell the CAF's holders when someone else changed it; the audit detail of who it was."""
    if change.standing == Standing.HOLDER:
        return {}
    notices.tell(
        session, actor=actor, caf=change.caf, to=change.holders, action=action, what=what, reason=reason
    )
    return {"by": change.standing.value}


def start_caf(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: CafStart, now: datetime
) -> Assessment:
    """Start a signalled CAF; needs a current consent from a parent/carer or competent young person."""
    change = _caf_to_change(session, actor, caf_id, reason=data.reason, doing="start this CAF")
    caf = change.caf
    _active_child(session, caf.child_id)
    if caf.status == CafStatus.SIGNALLED.value and caf.signal_expires_at and caf.signal_expires_at <= now:
        raise RuleBroken(
            "The signal of intent for this CAF expired before it was started; signal again to start one.",
            caf_id=str(caf.id),
        )
    if caf.status != CafStatus.SIGNALLED.value:
        raise Conflict(f"Only a signalled CAF can be started; this one is {caf.status}.")
    consent = repo.get(session, Consent, data.consent_id, for_update=True)
    if consent is None or consent.child_id != caf.child_id:
        raise ConsentRequired(
            "A CAF is done with consent: record the consent of a parent/carer or of the "
            "young person (where competent) for this child first."
        )
    if not _current_consent_covers(consent, ConsentScope.CAF.value):
        raise ConsentRequired(
            "The consent given does not cover a CAF or was withdrawn: record a consent with "
            "scope 'caf' from a parent/carer or the competent young person."
        )
    caf.status = CafStatus.IN_PROGRESS.value
    caf.consent_id = consent.id
    caf.started_at = now
    caf.version += 1
    session.add(caf)
    session.flush()
    by = _made_known(session, actor, change, action="caf.start", what="started", reason=data.reason)
    _audit_change(session, actor, "caf.start", caf.child_id, {"caf_id": caf.id.hex, **by})
    return caf


def complete_caf(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: CafComplete, now: datetime
) -> Assessment:
    """Record that the assessment is complete and its outcome; the CAF stays open until closed."""
    change = _caf_to_change(session, actor, caf_id, reason=data.reason, doing="record this CAF's outcome")
    caf = change.caf
    if caf.status != CafStatus.IN_PROGRESS.value:
        raise Conflict(f"Only a CAF in progress can be completed; this one is {caf.status}.")
    caf.status = CafStatus.COMPLETED.value
    caf.completed_at = now
    caf.outcome = data.outcome.value
    caf.version += 1
    session.add(caf)
    session.flush()
    by = _made_known(
        session, actor, change, action="caf.complete", what="recorded the outcome of", reason=data.reason
    )
    _audit_change(
        session, actor, "caf.complete", caf.child_id, {"caf_id": caf.id.hex, "outcome": caf.outcome, **by}
    )
    return caf


def close_caf(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: CafClose, now: datetime
) -> Assessment:
    """Close a CAF (or withdraw a signal); ends its TAC and the Lead Professional role."""
    change = _caf_to_change(session, actor, caf_id, reason=data.reason, doing="close this CAF")
    caf = change.caf
    if caf.status not in {s.value for s in OPEN_CAF_STATUSES}:
        raise Conflict(f"This CAF is already {caf.status}.")
    tac = repo.tac_for_caf(session, caf.id, for_update=True)
    if tac is not None and tac.status != TacStatus.CLOSED.value:
        tac.status = TacStatus.CLOSED.value
        tac.closed_at = now
        session.add(tac)
    caf.status = (
        CafStatus.WITHDRAWN.value if caf.status == CafStatus.SIGNALLED.value else CafStatus.CLOSED.value
    )
    caf.closed_at = now
    caf.closed_reason = data.reason
    caf.version += 1
    session.add(caf)
    lead = repo.current_lead(session, caf.child_id)
    if lead is not None:
        lead.ended_at = now
        session.add(lead)
    session.flush()
    what = "withdrew the signal of" if caf.status == CafStatus.WITHDRAWN.value else "closed"
    by = _made_known(session, actor, change, action="caf.close", what=what, reason=data.reason)
    _audit_change(
        session, actor, "caf.close", caf.child_id, {"caf_id": caf.id.hex, "status": caf.status, **by}
    )
    return caf


def hand_over_lead(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: HandOver, now: datetime
) -> LeadProfessionalAssignment:
    """Hand the Lead Professional role over: from, to, when, why and by whom are recorded."""
    change = _caf_to_change(
        session, actor, caf_id, reason=data.reason, doing="hand over this CAF's Lead Professional role"
    )
    caf = change.caf
    if caf.status not in {s.value for s in OPEN_CAF_STATUSES}:
        raise Conflict("The Lead Professional can change only while the CAF or TAC is open.")
    to = _practitioner(session, data.to_practitioner_id)
    current = repo.current_lead(session, caf.child_id)
    if current is not None and current.practitioner_id == to.id:
        raise Conflict(f"{to.name} is already the Lead Professional.")
    if current is not None:
        current.ended_at = now
        session.add(current)
        session.flush()
    assignment = LeadProfessionalAssignment(
        child_id=caf.child_id,
        assessment_id=caf.id,
        practitioner_id=to.id,
        from_practitioner_id=current.practitioner_id if current else None,
        reason=data.reason,
        assigned_by=actor.subject,
        started_at=now,
    )
    session.add(assignment)
    caf.lead_practitioner_id = to.id
    caf.version += 1
    session.add(caf)
    session.flush()
    by = _made_known(
        session,
        actor,
        change,
        action="lead-professional.hand-over",
        what="handed over the Lead Professional role of",
        reason=data.reason,
    )
    _audit_change(session, actor, "lead-professional.hand-over", caf.child_id, {"caf_id": caf.id.hex, **by})
    return assignment


# --------------------------------------------------------------------------- TAC


def update_tac(session: Session, *, actor: Actor, caf_id: uuid.UUID, data: TacUpdate, now: datetime) -> Tac:
    """Form a TAC for an open CAF or change its members and review date."""
    change = _caf_to_change(
        session, actor, caf_id, reason=data.reason, doing="change this CAF's Team Around the Child"
    )
    caf = change.caf
    if caf.status not in (CafStatus.IN_PROGRESS.value, CafStatus.COMPLETED.value):
        raise Conflict("A TAC is formed from a CAF that has started and is not closed.")
    tac = repo.tac_for_caf(session, caf.id, for_update=True)
    if tac is None:
        tac = Tac(child_id=caf.child_id, assessment_id=caf.id)
        session.add(tac)
        session.flush()
    elif tac.status == TacStatus.CLOSED.value:
        raise Conflict("This TAC is closed.")
    current = {m.practitioner_id: m for m in repo.tac_members(session, tac.id)}
    for member in data.add_members:
        _practitioner(session, member.practitioner_id)
        if member.practitioner_id not in current:
            row = TacMember(
                tac_id=tac.id, practitioner_id=member.practitioner_id, role=member.role, joined_at=now
            )
            session.add(row)
            current[member.practitioner_id] = row
    remaining = len(current) - len({p for p in data.remove_practitioner_ids if p in current})
    if tac.status == TacStatus.CONVENED.value and remaining < 3:
        raise RuleBroken("A convened TAC needs more than two practitioners; add someone first.")
    lead = repo.current_lead(session, caf.child_id)
    for practitioner_id in data.remove_practitioner_ids:
        if practitioner_id not in current:
            raise NotFound("That practitioner is not a member of this TAC.")
        if lead is not None and lead.practitioner_id == practitioner_id:
            raise RuleBroken("Hand over the Lead Professional role before they leave the TAC.")
        current[practitioner_id].left_at = now
        session.add(current[practitioner_id])
    if data.next_review_date is not None:
        if data.next_review_date < now.date():
            raise InvalidInput("The next review date is in the past.")
        tac.next_review_date = data.next_review_date
    if data.family_participating is not None:
        tac.family_participating = data.family_participating
    tac.version += 1
    session.add(tac)
    session.flush()
    by = _made_known(
        session,
        actor,
        change,
        action="tac.update",
        what="changed the Team Around the Child of",
        reason=data.reason,
    )
    _audit_change(session, actor, "tac.update", caf.child_id, {"tac_id": tac.id.hex, **by})
    return tac


def convene_tac(session: Session, *, actor: Actor, tac_id: uuid.UUID, data: TacConvene, now: datetime) -> Tac:
    """Mark a TAC convened: it needs more than two practitioners and a review date."""
    found = repo.get(session, Tac, tac_id)
    if found is None:
        raise NotFound("No TAC has that id.")
    change = _caf_to_change(
        session,
        actor,
        found.assessment_id,
        reason=data.reason,
        doing="convene this CAF's Team Around the Child",
    )
    tac = repo.get(session, Tac, tac_id, for_update=True)
    assert tac is not None
    if tac.status != TacStatus.FORMING.value:
        raise Conflict(f"This TAC is already {tac.status}.")
    members = repo.tac_members(session, tac.id)
    if len(members) < 3:
        raise RuleBroken(
            f"A TAC needs more than two practitioners before it is convened; it has "
            f"{len(members)}. Add members first.",
            members=len(members),
        )
    if data.next_review_date < now.date():
        raise InvalidInput("The next review date is in the past.")
    lead = repo.current_lead(session, tac.child_id)
    if lead is not None and lead.practitioner_id not in {m.practitioner_id for m in members}:
        raise RuleBroken("The Lead Professional must be a member of the TAC.")
    tac.status = TacStatus.CONVENED.value
    tac.convened_at = now
    tac.next_review_date = data.next_review_date
    tac.version += 1
    session.add(tac)
    session.flush()
    by = _made_known(
        session,
        actor,
        change,
        action="tac.convene",
        what="convened the Team Around the Child of",
        reason=data.reason,
    )
    _audit_change(session, actor, "tac.convene", tac.child_id, {"tac_id": tac.id.hex, **by})
    return tac  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class YourPart:
    """What the actor may do on a child's record, for the pages to offer only that."""

    caf_standing: Standing | None  # None: they may not change the open CAF (or there is none)
    caf_holder: Contact | None  # whom to ask about the CAF (its holder, or the local delivery team)
    involvements: frozenset[uuid.UUID]  # they may end or confirm these
    consents: frozenset[uuid.UUID]  # they may withdraw these


def your_part(session: Session, *, actor: Actor, child_id: uuid.UUID) -> YourPart:
    """What this actor may change on a child's record (see directory.permissions); reads only."""
    child = _load_child(session, child_id)
    caf = repo.open_caf(session, child.id)
    standing = caf_standing(session, actor, caf, child) if caf is not None else None
    holder = holder_to_ask(session, actor, caf, child)[0] if caf is not None else None
    rows = repo.involvements_with_service(session, child.id)
    return YourPart(
        caf_standing=standing,
        caf_holder=holder,
        involvements=frozenset(i.id for i, *_ in rows if may_change_involvement(session, actor, i, child)),
        consents=frozenset(
            c.id
            for c in repo.consents(session, child.id)
            if c.withdrawn_at is None and may_withdraw_consent(session, actor, c, child)
        ),
    )


def _org_contact(org: Organisation | None) -> Contact | None:
    if org is None:
        return None
    return Contact(name=org.name, organisation=org.name, phone=org.phone, email=org.email)


def build_card(
    session: Session, *, actor: Actor, child: Child, now: datetime, fallback_team: Contact
) -> ChildCard:
    """Assemble the involvement card as this actor may see it (no audit: see read_card)."""
    entitled = may_see_shielded(child, actor)
    names = [NameRead.model_validate(n) for n in repo.child_names(session, child.id)]
    card = ChildCard(
        id=child.id,
        status=child.status,
        names=names,
        date_of_birth=child.date_of_birth,
        expected_delivery_date=child.expected_delivery_date,
        age_years=age_on(child.date_of_birth, now.date()) if child.date_of_birth else None,
        sex=child.sex,
        identifiers=[IdentifierRead.model_validate(i) for i in repo.child_identifiers(session, child.id)],
        shielded=child.shielded,
        merged_into_id=child.merged_into_id,
    )
    caf = repo.open_caf(session, child.id) or repo.latest_caf(session, child.id)
    ask = ask_contact(session, child, fallback_team)
    if not entitled:
        card.shield_notice = ShieldNotice(
            message=(
                "This record is shielded: address, contact details and the services involved "
                f"are withheld. Ask {ask.name} to broker contact with the practitioners."
            ),
            ask=ask,
        )
        if caf is not None:
            card.caf = CafRead(
                id=caf.id,
                status=caf.status,
                signalled_at=caf.signalled_at,
                advice=f"Ask {ask.name} before starting an assessment.",
            )
        return card
    address = repo.current_address(session, child.id)
    card.address = AddressRead.model_validate(address) if address else None
    locality = repo.get(session, Locality, child.locality_id) if child.locality_id else None
    card.locality = locality.name if locality else None
    card.school = _org_contact(repo.get(session, Organisation, child.school_id) if child.school_id else None)
    card.gp_practice = _org_contact(
        repo.get(session, Organisation, child.gp_practice_id) if child.gp_practice_id else None
    )
    card.related_people = [
        RelatedPersonRead.model_validate(p) for p in repo.related_people(session, child.id)
    ]
    rows = repo.involvements_with_service(session, child.id, include_ended=True)
    people = _people_on_record(session, child, caf, rows)
    sensitive = repo.sensitive_practitioners(session, list(people))

    def seen(practitioner_id: uuid.UUID | None) -> bool:
        return practitioner_id is not None and may_see_practitioner(actor, practitioner_id, sensitive)

    involvements: list[InvolvementRead] = []
    for inv, service, org, practitioner, consent in rows:
        if inv.status != InvolvementStatus.ACTIVE.value:
            continue
        if inv.sensitive and not may_see_sensitive(actor, inv, consent):
            continue
        named = practitioner if practitioner is not None and seen(practitioner.id) else None
        contact = Contact(
            name=named.name if named else service.name,
            role=named.role if named else inv.role,
            organisation=org.name,
            phone=(named.phone if named else None) or service.phone or org.phone,
            email=(named.email if named else None) or service.email or org.email,
        )
        involvements.append(
            InvolvementRead(
                id=inv.id,
                service_id=service.id,
                service_name=service.name,
                service_type=service.service_type,
                tier=service.tier,
                role=inv.role,
                level_of_need=inv.level_of_need,
                start_date=inv.start_date,
                end_date=inv.end_date,
                status=inv.status,
                sensitive=inv.sensitive,
                source=inv.source,
                last_confirmed_at=inv.last_confirmed_at,
                contact=contact,
                version=inv.version,
            )
        )
    card.involvements = involvements
    card.highest_level_of_need = max((i.level_of_need for i in involvements), default=None)
    withheld = f"withheld: ask {ask.name}"
    if caf is not None:
        holder_id = caf.lead_practitioner_id or caf.initiator_id
        open_ = caf.status in {s.value for s in OPEN_CAF_STATUSES}
        holder = _contact(session, holder_id) if seen(holder_id) else None
        advice = None
        if open_ and holder is not None:
            advice = f"A CAF is open: contact {holder.name} before starting another assessment, and join it."
        elif open_:
            # Whoever holds it works in a sensitive service: that they hold it would say so.
            advice = (
                f"A CAF is open. Ask {ask.name}{how_to_reach(ask)} to put you in touch with whoever holds "
                "it before starting another assessment, and join it."
            )
        card.caf = CafRead(
            id=caf.id,
            status=caf.status,
            holder=holder,
            signalled_at=caf.signalled_at,
            signal_expires_at=caf.signal_expires_at,
            started_at=caf.started_at,
            completed_at=caf.completed_at,
            closed_at=caf.closed_at,
            outcome=caf.outcome,
            advice=advice,
        )
        card.lead_professional_history = [
            _hand_over_read(session, h, seen, withheld) for h in repo.lead_history(session, caf.id)
        ]
        tac = repo.tac_for_caf(session, caf.id)
        if tac is not None and tac.status != TacStatus.CLOSED.value:
            card.tac = TacRead(
                id=tac.id,
                status=tac.status,
                family_participating=tac.family_participating,
                convened_at=tac.convened_at,
                next_review_date=tac.next_review_date,
                members=[
                    TacMemberRead(
                        practitioner_id=m.practitioner_id,
                        role=m.role,
                        contact=_contact(session, m.practitioner_id),
                    )
                    for m in repo.tac_members(session, tac.id)
                    if seen(m.practitioner_id)
                ],
            )
    lead = repo.current_lead(session, child.id)
    if lead is not None and seen(lead.practitioner_id):
        card.lead_professional = LeadProfessionalRead(
            practitioner_id=lead.practitioner_id,
            contact=_contact(session, lead.practitioner_id),
            since=lead.started_at,
            reason=lead.reason,
        )
    covered = [inv for inv, *_ in rows]
    card.consents = [
        ConsentRead(
            id=c.id,
            scope=c.scope,
            given_by_kind=c.given_by_kind,
            given_by_name=c.given_by_name,
            given_at=c.given_at,
            withdrawn_at=c.withdrawn_at,
            withdrawn_reason=c.withdrawn_reason,
            current=c.withdrawn_at is None,
        )
        for c in repo.consents(session, child.id)
        if may_see_consent(actor, c, covered)
    ]
    return card


def _hand_over_read(
    session: Session,
    spell: LeadProfessionalAssignment,
    seen: Callable[[uuid.UUID | None], bool],
    withheld: str,
) -> HandOverRead:
    """One hand-over as the card shows it: who is not shown is withheld, and so is what names them."""
    parties = [p for p in (spell.from_practitioner_id, spell.practitioner_id) if p is not None]
    shown = all(seen(p) for p in parties)
    return HandOverRead(
        from_practitioner=None
        if spell.from_practitioner_id is None
        else _contact(session, spell.from_practitioner_id).name
        if seen(spell.from_practitioner_id)
        else withheld,
        to_practitioner=_contact(session, spell.practitioner_id).name
        if seen(spell.practitioner_id)
        else withheld,
        at=spell.started_at,
        reason=spell.reason if shown else withheld,
        by=spell.assigned_by if shown else withheld,
    )


def _people_on_record(
    session: Session,
    child: Child,
    caf: Assessment | None,
    rows: Sequence[tuple[Involvement, Service, Organisation, Practitioner | None, Consent | None]],
) -> set[uuid.UUID]:
    """Every practitioner a card could name: involvements, the CAF's holders and hand-overs, the TAC."""
    people = {inv.practitioner_id for inv, *_ in rows if inv.practitioner_id}
    lead = repo.current_lead(session, child.id)
    if lead is not None:
        people.add(lead.practitioner_id)
    if caf is not None:
        people.update(p for p in (caf.initiator_id, caf.lead_practitioner_id) if p)
        for h in repo.lead_history(session, caf.id):
            people.update(p for p in (h.practitioner_id, h.from_practitioner_id) if p)
        tac = repo.tac_for_caf(session, caf.id)
        if tac is not None:
            people.update(m.practitioner_id for m in repo.tac_members(session, tac.id))
    return people


def read_card(
    session: Session, *, actor: Actor, child_id: uuid.UUID, now: datetime, fallback_team: Contact
) -> ChildCard:
    """The involvement card of a child, audited; overdue signals lapse first."""
    _require_purpose(actor)
    child = _load_child(session, child_id)
    if child.status == RecordStatus.ACTIVE.value:
        lapse_expired_signal(session, child_id=child.id, now=now)
    card = build_card(session, actor=actor, child=child, now=now, fallback_team=fallback_team)
    override = child.shielded and actor.role == Role.CHILD_PROTECTION and bool(actor.shield_override_reason)
    if override:
        _audit_change(
            session, actor, "child.read.shield-override", child.id, {"reason": actor.shield_override_reason}
        )
        audit.append(
            session,
            actor=actor,
            action="alert.shield-override",
            outcome="alert",
            target_type="child",
            target_id=child.id,
        )
    else:
        audit.append(
            session,
            actor=actor,
            action="child.read",
            target_type="child",
            target_id=child.id,
            detail={"shield_withheld": True} if card.shield_notice else None,
        )
    return card


def access_log(session: Session, *, actor: Actor, child_id: uuid.UUID) -> list[AccessLogEntry]:
    """Who has looked at this child's record: an audited read of the audit log."""
    if actor.role not in ACCESS_LOG_READERS:
        raise NotAllowed(
            "Only auditors, directory admins and designated practitioners can see who has looked at a record."
        )
    _load_child(session, child_id)
    events = audit.who_looked(session, child_id=child_id)
    audit.append(
        session,
        actor=actor,
        action="child.access-log.read",
        target_type="child-access-log",
        target_id=child_id,
    )
    return [AccessLogEntry.model_validate(e) for e in events]


def child_ref(child: Child) -> ChildRef:
    """The id, status and version of a child."""
    return ChildRef(id=child.id, status=child.status, version=child.version)


# --------------------------------------------------------------------------- localities


def configure_localities(session: Session, *, actor: Actor, rows: list[dict[str, str]]) -> tuple[int, int]:
    """Create or update localities and their postcode areas from an authority's table.

    Each row: code, name, authority, team_name, team_phone, team_email, areas (postcode districts
    or sectors separated by spaces or semicolons, e.g. "OX4; OX3 7"). Returns (localities, areas).
    """
    from directory.models import LocalityArea

    seen_areas: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        missing = [k for k in ("code", "name", "team_name", "areas") if not (row.get(k) or "").strip()]
        if missing:
            raise InvalidInput(f"line {number}: missing {', '.join(missing)}")
        for raw in row["areas"].replace(";", ",").split(","):
            area = " ".join(raw.upper().split())
            if not area:
                continue
            district = area.split(" ")[0]
            if not (2 <= len(district) <= 4) or (" " in area and not area.split(" ")[1].isdigit()):
                raise InvalidInput(f"line {number}: '{raw.strip()}' is not a postcode district or sector")
            if area in seen_areas and seen_areas[area] != row["code"]:
                raise InvalidInput(f"line {number}: area {area} is already given to {seen_areas[area]}")
            seen_areas[area] = row["code"].strip()
    localities = 0
    by_code = {loc.code: loc for loc in repo.localities(session)}
    for row in rows:
        code = row["code"].strip()
        loc = by_code.get(code) or Locality(code=code, name="", authority="", team_name="")
        loc.name = row["name"].strip()
        loc.authority = (row.get("authority") or "").strip() or loc.authority or "unknown"
        loc.team_name = row["team_name"].strip()
        loc.team_phone = (row.get("team_phone") or "").strip() or None
        loc.team_email = (row.get("team_email") or "").strip() or None
        session.add(loc)
        by_code[code] = loc
        localities += 1
    session.flush()
    for area, code in seen_areas.items():
        existing = session.get(LocalityArea, area)
        if existing is None:
            session.add(LocalityArea(area=area, locality_id=by_code[code].id))
        else:
            existing.locality_id = by_code[code].id
            session.add(existing)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="localities.configure",
        detail={"localities": localities, "areas": len(seen_areas)},
    )
    return localities, len(seen_areas)


# --------------------------------------------------------------------------- duplicates


def merge_children(session: Session, *, actor: Actor, duplicate_id: uuid.UUID, into_id: uuid.UUID) -> Child:
    """Mark a duplicate record as merged into the record that is kept (never deletes either)."""
    if actor.role != Role.DIRECTORY_ADMIN:
        raise NotAllowed("Only a directory admin can merge duplicate records.")
    if duplicate_id == into_id:
        raise InvalidInput("A record cannot be merged into itself.")
    duplicate = _active_child(session, duplicate_id, for_update=True)
    kept = _active_child(session, into_id, for_update=True)
    if repo.open_caf(session, duplicate.id) is not None and repo.open_caf(session, kept.id) is not None:
        raise CafAlreadyOpen(
            "Both records have an open CAF: the practitioners must agree which one continues and "
            "close the other before the records can be merged."
        )
    duplicate.status = RecordStatus.MERGED.value
    duplicate.merged_into_id = kept.id
    _touch(session, duplicate)
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
