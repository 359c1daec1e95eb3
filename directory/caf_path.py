"""A CAF's path: signalled -> in progress -> completed, then closed (a signal is withdrawn instead).

One home for which moves are allowed and what each step needs. A surface that lets its caller say
where a CAF should be (a FHIR Flag's code and status) asks `advance_caf` to walk it there, one use
case of directory.service per step (`start_caf`, `complete_caf`, `close_caf`), so each step's rules,
audit event and notices are the domain's. `hand_over_if_new` asks someone the caller names to take
the Lead Professional role (a request they accept: directory/service/requests.py), when it is not
already theirs.

A change recorded with a reason (closing, a hand-over) takes the one given; a holder of the CAF may
leave it out (the surface says what to record instead); anyone else is refused, as
`permissions.require_caf_change` says.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from directory import repository as repo
from directory import service
from directory.errors import Conflict, InvalidInput, RuleBroken
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    Assessment,
    CafClose,
    CafComplete,
    CafOutcome,
    CafStart,
    CafStatus,
    Child,
    HandOver,
)
from directory.permissions import Standing, caf_standing, require_caf_change

PATH: tuple[str, ...] = tuple(s.value for s in OPEN_CAF_STATUSES)
"""The open statuses, in the order a CAF walks them (signalled, in_progress, completed)."""
ENDINGS = (CafStatus.CLOSED.value, CafStatus.WITHDRAWN.value)
"""Where an open CAF ends when someone ends it: closed, or withdrawn while only signalled."""


class CafCannotMove(Conflict):
    """A move the path does not allow: back, off the path, or withdrawing a CAF already started.

    `data`: `move` (withdraw | back | off-path), `status` (where the CAF is), `to` (where it was asked
    to go)."""

    code = "caf-cannot-move"
    title = "A CAF cannot move that way"


class CafStepNeeds(RuleBroken):
    """A step that needs what was not given: a consent to start, an outcome to complete.

    `data`: `needs` (consent | outcome)."""

    code = "caf-step-needs"
    title = "This step of the CAF needs more"


class CafInputInvalid(InvalidInput):
    """A value for a step that its input does not take (e.g. a reason too long). `data`: `field`."""


def destination(caf: Assessment, asked: str | None, *, open_: bool) -> str:
    """Where a caller wants the CAF: the status asked for (None: where it is); a caller who says it is
    no longer open ends it: withdrawn while only signalled, closed otherwise."""
    target = asked or caf.status
    if not open_ and target in PATH:
        target = (
            CafStatus.WITHDRAWN.value if caf.status == CafStatus.SIGNALLED.value else CafStatus.CLOSED.value
        )
    return target


def advance_caf(
    session: Session,
    *,
    actor: Actor,
    caf: Assessment,
    to: str,
    reason: str | None,
    default_reason: str,
    consent_id: uuid.UUID | None = None,
    outcome: CafOutcome | None = None,
    now: datetime,
) -> bool:
    """Walk a CAF from where it is to `to`, one domain use case per step: start (needs `consent_id`),
    complete (needs `outcome`), or end it (close; withdraw a signal). Going back, or on from an
    ended CAF, is refused (CafCannotMove). True when the CAF moved."""
    if to == caf.status:
        return False
    if to in ENDINGS:
        _end(session, actor=actor, caf=caf, to=to, reason=reason, default_reason=default_reason, now=now)
        return True
    if to not in PATH or caf.status not in PATH:
        raise CafCannotMove(
            f"This CAF is {caf.status}; it cannot become {to}. A CAF moves signalled -> in progress "
            "-> completed -> closed (signal a new one once it is closed).",
            move="off-path",
            status=caf.status,
            to=to,
        )
    here, there = PATH.index(caf.status), PATH.index(to)
    if there < here:
        raise CafCannotMove(
            f"A CAF cannot go back from {caf.status} to {to}.", move="back", status=caf.status, to=to
        )
    for step in PATH[here + 1 : there + 1]:
        if step == CafStatus.IN_PROGRESS.value:
            _start(session, actor=actor, caf=caf, consent_id=consent_id, reason=reason, now=now)
        else:
            _complete(session, actor=actor, caf=caf, outcome=outcome, reason=reason, now=now)
    return True


def _end(
    session: Session,
    *,
    actor: Actor,
    caf: Assessment,
    to: str,
    reason: str | None,
    default_reason: str,
    now: datetime,
) -> None:
    if to == CafStatus.WITHDRAWN.value and caf.status != CafStatus.SIGNALLED.value:
        raise CafCannotMove(
            f"Only a signalled CAF can be withdrawn; this one is {caf.status}: close it instead.",
            move="withdraw",
            status=caf.status,
            to=to,
        )
    why = change_reason(session, actor, caf, reason, doing="close this CAF", default=default_reason)
    service.close_caf(session, actor=actor, caf_id=caf.id, data=_input(CafClose, reason=why), now=now)


def _start(
    session: Session,
    *,
    actor: Actor,
    caf: Assessment,
    consent_id: uuid.UUID | None,
    reason: str | None,
    now: datetime,
) -> None:
    if consent_id is None:
        raise CafStepNeeds(
            "A CAF is started with consent: give the consent (scope caf) of a parent/carer or the "
            "competent young person.",
            needs="consent",
        )
    data = _input(CafStart, consent_id=consent_id, reason=reason)
    service.start_caf(session, actor=actor, caf_id=caf.id, data=data, now=now)


def _complete(
    session: Session,
    *,
    actor: Actor,
    caf: Assessment,
    outcome: CafOutcome | None,
    reason: str | None,
    now: datetime,
) -> None:
    if outcome is None:
        raise CafStepNeeds(
            f"Say how the CAF completed: one of {', '.join(o.value for o in CafOutcome)}.", needs="outcome"
        )
    data = _input(CafComplete, outcome=outcome, reason=reason)
    service.complete_caf(session, actor=actor, caf_id=caf.id, data=data, now=now)


def hand_over_if_new(
    session: Session,
    *,
    actor: Actor,
    caf: Assessment,
    to: uuid.UUID | None,
    reason: str | None,
    default_reason: str,
    now: datetime,
) -> service.HandOverOutcome | None:
    """Ask `to` to take the Lead Professional role when it is someone other than the current one (and
    the CAF is open: an ended CAF has none): the pending request they accept or decline (asking
    again for the same practitioner returns it), or the assignment when the caller named themselves.
    None when there is nothing to hand over."""
    if to is None or caf.status not in PATH:
        return None
    lead = repo.current_lead(session, caf.child_id)
    if lead is not None and lead.practitioner_id == to:
        return None
    why = change_reason(
        session,
        actor,
        caf,
        reason,
        doing="hand over this CAF's Lead Professional role",
        default=default_reason,
    )
    data = _input(HandOver, to_practitioner_id=to, reason=why)
    return service.request_hand_over(session, actor=actor, caf_id=caf.id, data=data, now=now, source="fhir")


def change_reason(
    session: Session, actor: Actor, caf: Assessment, given: str | None, *, doing: str, default: str
) -> str:
    """The reason recorded for a change that needs one: the one given; else, for one of the CAF's
    holders, `default`. Anyone else must give one: refused, saying so (or that they may not make
    this change at all)."""
    if given:
        return given
    child = session.get(Child, caf.child_id)
    assert child is not None
    if caf_standing(session, actor, caf, child) == Standing.HOLDER:
        return default
    require_caf_change(session, actor, caf, child, reason=None, doing=doing)
    raise AssertionError("require_caf_change refuses a change without a reason by anyone but a holder")


def _input(model: type[BaseModel], **fields: Any) -> Any:
    """A step's input model; a value it does not take is CafInputInvalid naming the field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise CafInputInvalid(f"{field}: {first.get('msg', 'invalid')}", field=field) from None
