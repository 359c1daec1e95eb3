"""Notices to practitioners, their inbox: what someone else changed on a CAF they hold (told with the
change, here), and the events of the children they work with (told by the people's notifier from the
audit log, directory/inbox.py); each person's choice of email or the inbox only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import Session, select

from directory import repository as repo
from directory.errors import InvalidInput, NotAllowed, NotFound
from directory.models import Actor, Assessment, Notice, NoticeRead
from directory.models.notifications import NoticePreference


def tell(
    session: Session,
    *,
    actor: Actor,
    caf: Assessment,
    to: Iterable[uuid.UUID],
    action: str,
    what: str,
    reason: str | None,
) -> list[Notice]:
    """Leave a notice for each of these practitioners (never the actor themself) that the actor did
    `what` ('closed', 'handed over the Lead Professional role of', ...) to a CAF they hold."""
    by = actor.display_name or actor.subject
    made = []
    for practitioner_id in dict.fromkeys(to):
        if practitioner_id is None or practitioner_id == actor.practitioner_id:
            continue
        notice = Notice(
            practitioner_id=practitioner_id,
            child_id=caf.child_id,
            caf_id=caf.id,
            action=action,
            message=f"{by} ({actor.role.value.replace('_', ' ')}"
            f"{', ' + actor.organisation if actor.organisation else ''}) {what} a CAF you hold.",
            reason=reason,
            by_subject=actor.subject,
            by_name=actor.display_name,
            by_role=actor.role.value,
            by_organisation=actor.organisation,
        )
        session.add(notice)
        made.append(notice)
    session.flush()
    return made


def _mine(actor: Actor) -> uuid.UUID:
    if actor.practitioner_id is None:
        raise NotAllowed(
            "Notices go to practitioners: your sign-in is not linked to a practitioner record. Ask your "
            "directory administrator to link it."
        )
    return actor.practitioner_id


def my_notices(
    session: Session, *, actor: Actor, unread_only: bool = False, limit: int = 100
) -> Sequence[NoticeRead]:
    """The signed-in practitioner's notices, newest first."""
    rows = repo.notices_for(session, _mine(actor), unread_only=unread_only, limit=limit)
    return [NoticeRead.model_validate(n) for n in rows]


def unread(session: Session, *, actor: Actor) -> int:
    """How many notices the signed-in practitioner has not read (0 when not a practitioner)."""
    return repo.unread_notices(session, actor.practitioner_id) if actor.practitioner_id else 0


def mark_read(session: Session, *, actor: Actor, notice_id: uuid.UUID, now: datetime) -> NoticeRead:
    """Mark one of the signed-in practitioner's notices read."""
    notice = repo.get(session, Notice, notice_id, for_update=True)
    if notice is None or notice.practitioner_id != _mine(actor):
        raise NotFound("You have no notice with that id.")
    if notice.read_at is None:
        notice.read_at = now
        session.add(notice)
        session.flush()
    return NoticeRead.model_validate(notice)


def my_notice(session: Session, *, actor: Actor, notice_id: uuid.UUID) -> NoticeRead:
    """One of the signed-in practitioner's notices (anyone else's is, to them, not there)."""
    notice = repo.get(session, Notice, notice_id)
    if notice is None or notice.practitioner_id != _mine(actor):
        raise NotFound("You have no notice with that id.")
    return NoticeRead.model_validate(notice)


CHANNELS = ("email", "inbox")


def channel(session: Session, *, actor: Actor) -> str:
    """How the signed-in practitioner is told: 'email' (email and inbox, the default) or 'inbox' only."""
    pref = session.get(NoticePreference, _mine(actor))
    return pref.channel if pref is not None else "email"


def choose_channel(session: Session, *, actor: Actor, choice: str, now: datetime) -> str:
    """Choose email (and the inbox) or the inbox only."""
    if choice not in CHANNELS:
        raise InvalidInput(
            "Choose 'email' (an email and the inbox) or 'inbox' (the inbox only).", field="channel"
        )
    mine = _mine(actor)
    stmt = select(NoticePreference).where(NoticePreference.practitioner_id == mine).with_for_update()
    pref = session.exec(stmt).first()
    if pref is None:
        pref = NoticePreference(practitioner_id=mine)
    pref.channel, pref.updated_at = choice, now
    session.add(pref)
    session.flush()
    return choice
