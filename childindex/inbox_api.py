"""/api/v1/inbox: the signed-in practitioner's notices (newest first), marking one read, and their
choice of email or the inbox only (docs/notifications.md). Only the recipient sees a notice: anyone
else's is, to them, not there (404)."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from directory import notices
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import NoticeRead, utcnow

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute, tags=["notices"])


class NoticePreferenceRead(BaseModel):
    """How you are told: 'email' (an email saying there is something to see, and the inbox) or 'inbox'."""

    channel: Literal["email", "inbox"]


@router.get("/inbox", response_model=list[NoticeRead])
def list_inbox(session: SessionDep, actor: CurrentActor, unread: bool = False) -> list[NoticeRead]:
    """Your notices, newest first (`unread=true`: only those not yet read)."""
    return list(notices.my_notices(session, actor=actor, unread_only=unread))


@router.get("/inbox/preference", response_model=NoticePreferenceRead)
def get_notice_preference(session: SessionDep, actor: CurrentActor) -> NoticePreferenceRead:
    """How you are told of new notices."""
    return NoticePreferenceRead(channel=notices.channel(session, actor=actor))


@router.put("/inbox/preference", response_model=NoticePreferenceRead)
def set_notice_preference(
    data: NoticePreferenceRead, session: SessionDep, actor: CurrentActor
) -> NoticePreferenceRead:
    """Choose email (and the inbox) or the inbox only."""
    choice = notices.choose_channel(session, actor=actor, choice=data.channel, now=utcnow())
    return NoticePreferenceRead(channel=choice)


@router.get("/inbox/{notice_id}", response_model=NoticeRead)
def read_inbox_notice(notice_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> NoticeRead:
    """One of your notices."""
    return notices.my_notice(session, actor=actor, notice_id=notice_id)


@router.post("/inbox/{notice_id}/read", response_model=NoticeRead)
def mark_inbox_read(notice_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> NoticeRead:
    """Mark one of your notices read."""
    return notices.mark_read(session, actor=actor, notice_id=notice_id, now=utcnow())
