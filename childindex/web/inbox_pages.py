"""The inbox pages: your notices (what happened to the children you work with, and to CAFs you hold),
one notice (a "still involved?" one with a one-click confirm or end), and email or the inbox only."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from childindex.web.deps import Practice, check_csrf, flash, render, unit_of_work
from childindex.web.forms import FormData
from directory import inbox, notices, service
from directory.errors import DomainError, NotFound
from directory.models import Actor, utcnow
from directory.models.notifications import Notice

router = APIRouter(include_in_schema=False)

NOT_LINKED = "Notices go to practitioners: your sign-in is not linked to a practitioner record."


def _message(request: Request, actor: Actor, title: str, text: str, status: int) -> Response:
    return render(request, "message.html", actor=actor, title=title, message=text, status_code=status)


def _expired(request: Request, actor: Actor) -> Response:
    return _message(request, actor, "This form has expired", "Reload the page and try again.", 400)


@router.get("/inbox", name="web_inbox")
def web_inbox(request: Request, actor: Practice, unread: bool = False) -> Response:
    """Your notices, newest first (unread ones marked)."""
    if actor.practitioner_id is None:
        return _message(request, actor, "No notices", NOT_LINKED, 200)
    with unit_of_work(request) as db:
        mine = notices.my_notices(db, actor=actor, unread_only=unread)
        channel = notices.channel(db, actor=actor)
    return render(request, "inbox.html", actor=actor, notices=mine, unread=unread, channel=channel)


@router.get("/inbox/preference", name="web_inbox_preference_form")
def web_inbox_preference_form(request: Request, actor: Practice) -> Response:
    """Choose email (and the inbox) or the inbox only."""
    if actor.practitioner_id is None:
        return _message(request, actor, "No notices", NOT_LINKED, 200)
    with unit_of_work(request) as db:
        channel = notices.channel(db, actor=actor)
    return render(request, "inbox_preference.html", actor=actor, channel=channel)


@router.post("/inbox/preference", name="web_inbox_preference")
def web_inbox_preference(request: Request, actor: Practice, form: FormData) -> Response:
    """Save the choice."""
    if not check_csrf(request, form):
        return _expired(request, actor)
    try:
        with unit_of_work(request) as db:
            notices.choose_channel(db, actor=actor, choice=str(form.get("channel") or ""), now=utcnow())
    except DomainError as exc:
        return _message(request, actor, exc.title, exc.message, 400)
    flash(request, "Your choice is saved.")
    return RedirectResponse("/inbox", status_code=303)


@router.get("/inbox/{notice_id}", name="web_inbox_notice")
def web_inbox_notice(notice_id: uuid.UUID, request: Request, actor: Practice) -> Response:
    """One of your notices (the link in an email lands here)."""
    try:
        with unit_of_work(request) as db:
            notice = notices.my_notice(db, actor=actor, notice_id=notice_id)
            row = db.get(Notice, notice_id)
            involvement = inbox.still_involved_target(db, row) if row is not None else None
            active = involvement is not None and involvement.status == "active"
    except DomainError as exc:
        return _message(request, actor, exc.title, exc.message, 404)
    return render(
        request,
        "inbox_notice.html",
        actor=actor,
        n=notice,
        involvement=involvement if active else None,
    )


@router.post("/inbox/{notice_id}/read", name="web_inbox_read")
def web_inbox_read(notice_id: uuid.UUID, request: Request, actor: Practice, form: FormData) -> Response:
    """Mark one of your notices read."""
    if not check_csrf(request, form):
        return _expired(request, actor)
    try:
        with unit_of_work(request) as db:
            notices.mark_read(db, actor=actor, notice_id=notice_id, now=utcnow())
    except DomainError as exc:
        return _message(request, actor, exc.title, exc.message, 404)
    flash(request, "Marked as read.")
    return RedirectResponse("/inbox", status_code=303)


@router.post("/inbox/{notice_id}/still-involved", name="web_inbox_still_involved")
def web_inbox_still_involved(
    notice_id: uuid.UUID, request: Request, actor: Practice, form: FormData
) -> Response:
    """ "Yes, still involved": confirm the involvement the notice asks about (one click), and read it."""
    if not check_csrf(request, form):
        return _expired(request, actor)
    try:
        with unit_of_work(request) as db:
            notices.my_notice(db, actor=actor, notice_id=notice_id)
            row = db.get(Notice, notice_id)
            involvement = inbox.still_involved_target(db, row) if row is not None else None
            if involvement is None:
                raise NotFound("This notice does not ask about an involvement.")
            service.confirm_involvement(db, actor=actor, involvement_id=involvement.id)
            notices.mark_read(db, actor=actor, notice_id=notice_id, now=utcnow())
    except NotFound as exc:
        return _message(request, actor, exc.title, exc.message, 404)
    except DomainError as exc:
        return _message(request, actor, exc.title, exc.message, 403)
    flash(request, "Thank you: your involvement is confirmed.")
    return RedirectResponse("/inbox", status_code=303)
