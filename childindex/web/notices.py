"""The practitioner's notices: changes someone else made to a CAF they hold."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from childindex.web.deps import Practice, check_csrf, flash, render, unit_of_work
from childindex.web.forms import FormData
from directory import notices
from directory.errors import DomainError, NotFound
from directory.models import utcnow

router = APIRouter(include_in_schema=False)


@router.get("/notices", name="web_notices")
def web_notices(request: Request, actor: Practice) -> Response:
    """Your notices, newest first (unread ones marked)."""
    if actor.practitioner_id is None:
        return render(
            request,
            "message.html",
            actor=actor,
            title="No notices",
            message="Notices go to practitioners: your sign-in is not linked to a practitioner record.",
        )
    with unit_of_work(request) as db:
        mine = notices.my_notices(db, actor=actor)
    return render(request, "notices.html", actor=actor, notices=mine)


@router.post("/notices/{notice_id}/read", name="web_notice_read")
def web_notice_read(notice_id: uuid.UUID, request: Request, actor: Practice, form: FormData) -> Response:
    """Mark one of your notices read."""
    if not check_csrf(request, form):
        return render(
            request,
            "message.html",
            actor=actor,
            title="This form has expired",
            message="Reload the page and try again.",
            status_code=400,
        )
    try:
        with unit_of_work(request) as db:
            notices.mark_read(db, actor=actor, notice_id=notice_id, now=utcnow())
    except NotFound as exc:
        return render(
            request, "message.html", actor=actor, title=exc.title, message=exc.message, status_code=404
        )
    except DomainError as exc:
        return render(
            request, "message.html", actor=actor, title=exc.title, message=exc.message, status_code=403
        )
    flash(request, "Marked as read.")
    return RedirectResponse("/notices", status_code=303)
