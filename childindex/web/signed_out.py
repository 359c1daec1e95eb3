"""The end of a page session, said plainly (issue #20): "You were signed out because ...", and the two
calls the time-out warning makes (how long is left; stay signed in).

Why a session ended comes from the request itself (the middleware found its cookie timed out, too old
or refused on renewal: childindex/web/session.py) or from the sealed comeback cookie set when it
sent the person here (childindex/web/comeback.py). A sign-in refused on renewal is explained by the
access grant's own reason when there is one (suspended, revoked: auth.grants.current_grant, the one
home of those messages).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from auth.errors import AuthRefused
from auth.grants import current_grant
from auth.models import SubjectKind
from childindex.web import session as sessions
from childindex.web.deps import check_csrf, render, web_session
from childindex.web.forms import FormData
from directory.http.deps import actor_of

router = APIRouter(include_in_schema=False)


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds >= 60:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"


def _grant_says(request: Request, subject: str | None) -> str | None:
    """Why this person's access grant no longer lets them in, if it does not."""
    if not subject:
        return None
    auth = request.app.state.auth
    with Session(request.app.state.engine) as db:
        try:
            current_grant(db, subject=subject, kind=SubjectKind.USER, cfg=auth.cfg)
        except AuthRefused as exc:
            return exc.message
    return None


def reason_for(request: Request, why: str | None, subject: str | None) -> str | None:
    """The sentence that says why the session ended."""
    cookies = request.app.state.web.cookies
    if why == "timeout":
        return (
            f"You were signed out because you had not used the service for {_span(cookies.idle_seconds)}. "
            "This protects children's information on a computer left unattended."
        )
    if why == "too-long":
        return (
            f"You were signed out because you had been signed in for {_span(cookies.max_seconds)}, "
            "the longest a sign-in lasts."
        )
    if why in ("ended", "grant"):
        said = _grant_says(request, subject)
        if said:
            return f"You were signed out. {said}"
        return (
            "You were signed out because your sign-in was ended: you may have signed out in another "
            "window, or an administrator ended it."
        )
    return None


def signed_out_page(
    request: Request,
    *,
    why: str | None,
    subject: str | None,
    data: dict[str, Any],
    said: str | None = None,
    status_code: int = 200,
) -> Response:
    """The "You were signed out" page (the layout shows no one as signed in; the cookie is cleared)."""
    request.state.web_session = None
    return render(
        request,
        "signed_out.html",
        why=why,
        reason=f"You were signed out. {said}" if said else reason_for(request, why, subject),
        back=bool(data.get("back")),
        kept=bool(data.get("form")),
        too_big=bool(data.get("form_too_big")),
        status_code=status_code,
    )


@router.get("/signed-out", name="web_signed_out", response_class=HTMLResponse)
def web_signed_out(request: Request) -> Response:
    """Why you were signed out, what was kept, and "Sign in again"."""
    data = request.app.state.web.comeback.read(request.cookies)
    ended = getattr(request.state, "web_signed_out", None)
    if ended is not None:
        why, subject = ended[0], ended[1].subject
    else:
        why, subject = data.get("why"), data.get("subject")
    if web_session(request) is not None:  # signed in (again): nothing to explain here
        return RedirectResponse("/", status_code=303)
    return signed_out_page(request, why=why, subject=subject, data=data)


@router.get("/session/left", name="web_session_left")
def web_session_left(request: Request) -> Response:
    """Seconds before this session times out (asking does not count as using it)."""
    session = web_session(request)
    idle = request.app.state.web.cookies.idle_seconds
    left = 0 if session is None else max(0, math.ceil(session.seen + idle - sessions.now()))
    return JSONResponse({"seconds": left}, headers={"cache-control": "no-store"})


@router.post("/session/keep", name="web_session_keep")
def web_session_keep(request: Request, form: FormData) -> Response:
    """'Stay signed in': this request itself renews the session (the middleware); the grant is checked."""
    if web_session(request) is None or not check_csrf(request, form):
        return JSONResponse({"seconds": 0}, status_code=401, headers={"cache-control": "no-store"})
    try:
        actor_of(request)  # a lapsed or suspended grant is refused here, as on any page
    except AuthRefused as exc:  # (the page the warning then reloads says why)
        return JSONResponse({"seconds": 0}, status_code=exc.status, headers={"cache-control": "no-store"})
    idle = request.app.state.web.cookies.idle_seconds
    return JSONResponse({"seconds": idle}, headers={"cache-control": "no-store"})
