"""Involvements: a service (and maybe a named practitioner) working with a child, recorded,
changed, confirmed and ended, each version kept in the involvement's history."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

from sqlmodel import Session

from directory import repository as repo
from directory.errors import Conflict, ConsentRequired, InvalidInput, NotFound
from directory.models import (
    Actor,
    Child,
    Consent,
    Involvement,
    InvolvementCreate,
    InvolvementEnd,
    InvolvementStatus,
    InvolvementUpdate,
    InvolvementVersion,
    Service,
    utcnow,
)
from directory.service.access import (
    ask_contact,
    how_to_reach,
    may_see_sensitive,
    may_see_shielded,
    practitioner_to_record,
    require_involvement_change,
)
from directory.service.common import (
    active_child,
    audit_change,
    changed,
    check_version,
    consent_covers,
    load_child,
    new_version,
)


def record_involvement(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: InvolvementCreate
) -> Involvement:
    """Record that a service (and maybe a named practitioner) is working with a child (see
    permissions.practitioner_to_record for who may record which)."""
    # Locked: the check for an active involvement of this service below and the insert must not
    # interleave with another recording for the same child (twenty at once made two on PostgreSQL).
    child = active_child(session, child_id, actor=actor, for_update=True)
    service = repo.get(session, Service, data.service_id)
    if service is None:
        raise NotFound("No service has that id; pick one from /api/v1/services.")
    practitioner_id = practitioner_to_record(session, actor, service, child, data.practitioner_id)
    if data.start_date > date.today() + timedelta(days=1):
        raise InvalidInput("An involvement cannot start in the future.")
    held = repo.active_involvement(session, child.id, service.id)
    if held is not None:
        raise _already_recorded(session, actor, child, service, held)
    sensitive = data.sensitive or service.sensitive
    consent_id = _covering_consent(session, child, service, data.consent_id) if sensitive else None
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
    audit_change(session, actor, "involvement.record", child.id, {"involvement_id": involvement.id.hex})
    return involvement


def _already_recorded(
    session: Session, actor: Actor, child: Child, service: Service, held: Involvement
) -> Conflict:
    """The refusal of a second active involvement of one service: naming the service only to those
    who may see that it works with the child, else whom to ask."""
    held_consent = repo.get(session, Consent, held.consent_id) if held.consent_id else None
    if may_see_shielded(child, actor) and (
        not held.sensitive or may_see_sensitive(actor, held, held_consent)
    ):
        return Conflict(
            f"{service.name} is already recorded as involved with this child; confirm or end "
            "that involvement instead of adding another."
        )
    ask = ask_contact(session, child)
    return Conflict(
        f"This service's involvement with the child is already recorded. Ask {ask.name}"
        f"{how_to_reach(ask)} if it needs changing."
    )


def _covering_consent(
    session: Session, child: Child, service: Service, consent_id: uuid.UUID | None
) -> uuid.UUID:
    """The id of the child's current consent that covers a sensitive involvement, or ConsentRequired."""
    if consent_id is None:
        raise ConsentRequired(
            f"{service.name} is a sensitive involvement: it can be recorded only with a "
            "consent that covers it. Record the consent of the young person (or parent) "
            "first and give its consent_id."
        )
    consent = repo.get(session, Consent, consent_id, for_update=True)
    scope = f"sensitive:{service.sensitive_category or 'all'}"
    if consent is None or consent.child_id != child.id:
        raise NotFound("That consent is not recorded for this child.")
    if not consent_covers(consent, scope):
        raise ConsentRequired(
            f"The consent given does not cover this involvement (it needs scope '{scope}' "
            "or 'sensitive:all' and must not be withdrawn)."
        )
    return consent.id  # type: ignore[no-any-return]


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
        child = load_child(session, involvement.child_id)
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
        session, actor, involvement, load_child(session, involvement.child_id), doing=doing
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
    new_version(involvement)
    session.add(involvement)
    session.flush()
    _snapshot(session, involvement, actor=actor, change=change)
    audit_change(
        session, actor, f"involvement.{change}", involvement.child_id, {"involvement_id": involvement.id.hex}
    )
    return involvement


def confirm_involvement(session: Session, *, actor: Actor, involvement_id: uuid.UUID) -> Involvement:
    """Confirm an involvement is still current (updates last confirmed)."""
    involvement = repo.get(session, Involvement, involvement_id, for_update=True)
    if involvement is None:
        raise NotFound("No active involvement has that id.")
    child = load_child(session, involvement.child_id)
    require_involvement_change(session, actor, involvement, child, doing="confirm this involvement")
    if involvement.status != InvolvementStatus.ACTIVE.value:
        raise NotFound("No active involvement has that id.")
    involvement.last_confirmed_at = utcnow()
    changed(involvement, involvement.last_confirmed_at)
    session.add(involvement)
    session.flush()
    audit_change(
        session, actor, "involvement.confirm", involvement.child_id, {"involvement_id": involvement.id.hex}
    )
    return involvement  # type: ignore[no-any-return]


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
