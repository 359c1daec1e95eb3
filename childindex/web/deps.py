"""What every page handler shares: templates, the signed-in actor by role, CSRF, the unit of work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from auth.deps import RequireScope
from auth.policy import (
    ADMINS,
    LOG_READERS,
    MATCH_REVIEWERS,
    PANEL_READERS,
    PRACTICE,
    RECORD_FINDERS,
    RECORD_KEEPERS,
    RECORD_READERS,
)
from childindex.web.session import WebSession, csrf_ok
from directory.errors import DomainError
from directory.http.config import practice
from directory.http.deps import request_transaction
from directory.models import Actor, Role
from directory.service.mine import MINE_READERS

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

LOCALITY_VIEWERS = frozenset({Role.LOCAL_DELIVERY_TEAM, Role.DIRECTORY_ADMIN})
AUDITORS = frozenset({Role.AUDITOR, Role.DIRECTORY_ADMIN})

# The signed-in person, checked against the route's policy by the same resolver as the API.
Reader = Annotated[Actor, Depends(RequireScope("directory.search", roles=PRACTICE, rate_limited=True))]
Practice = Annotated[Actor, Depends(RequireScope("directory.search", roles=PRACTICE))]
Writer = Annotated[Actor, Depends(RequireScope("directory.write", roles=PRACTICE))]
LogReader = Annotated[Actor, Depends(RequireScope("audit.read", roles=LOG_READERS))]
Auditor = Annotated[Actor, Depends(RequireScope("audit.read", roles=AUDITORS))]
GrantsAdmin = Annotated[Actor, Depends(RequireScope("grants.admin", roles=ADMINS))]
LocalityTeam = Annotated[Actor, Depends(RequireScope("directory.search", roles=LOCALITY_VIEWERS))]

# The card and the search for the roles beyond practice too (issue #22): data managers and auditors
# read archived records, the adoption team sealed ones; which record each may read is the domain's
# rule (directory/visibility.py), so to the others an archived or sealed record is an unknown id.
CARD_READERS = RECORD_READERS
FINDERS = RECORD_FINDERS
RECORD_OPENERS = frozenset({Role.DATA_MANAGER, Role.AUDITOR, Role.ADOPTION_OFFICER})
"""Who is offered "Open a record by its id" (record_pages.py): the roles that read records no search
finds (archived, sealed), by the id an audit event, a subject access request or the adoption file gives."""
CardReader = Annotated[
    Actor, Depends(RequireScope("directory.search", roles=CARD_READERS, rate_limited=True))
]
CardVisitor = Annotated[Actor, Depends(RequireScope("directory.search", roles=CARD_READERS))]
Finder = Annotated[Actor, Depends(RequireScope("directory.search", roles=FINDERS))]
FindingReader = Annotated[Actor, Depends(RequireScope("directory.search", roles=FINDERS, rate_limited=True))]


def web_session(request: Request) -> WebSession | None:
    """The session the middleware opened for this page request."""
    return getattr(request.state, "web_session", None)


def flash(request: Request, message: str, link: tuple[str, str] | None = None) -> None:
    """A one-time message shown on the next page (kept in the sealed session, not in the URL), with
    a link to the next step when there is one (label, path)."""
    session = web_session(request)
    if session is not None:
        session.flash = message
        session.flash_link = list(link) if link else None


def check_csrf(request: Request, form: dict[str, Any]) -> bool:
    """True when the form carries this session's CSRF token."""
    return csrf_ok(web_session(request), form.get("csrf_token"))


@contextlib.contextmanager
def unit_of_work(request: Request) -> Iterator[Session]:
    """The API's own per-request transaction: commit, or roll back and audit the refusal, then re-raise."""
    with request_transaction(request) as session:
        yield session


def nav_items(actor: Actor | None) -> list[tuple[str, str]]:
    """The service navigation for this person's role."""
    if actor is None:
        return []
    items: list[tuple[str, str]] = []
    if actor.role in FINDERS:
        items.append(("Find a child", "/search"))
    if actor.role in MINE_READERS and actor.practitioner_id is not None:
        items.append(("Your children and CAFs", "/mine"))
    if actor.role in PRACTICE and actor.practitioner_id is not None:
        items.append(("Your notices", "/inbox"))
    if actor.role in RECORD_OPENERS:
        items.append(("Open a record by its id", "/records"))
    if actor.role == Role.LOCAL_DELIVERY_TEAM:
        items.append(("Worklist", "/worklist"))
    if actor.role in LOCALITY_VIEWERS:
        items.append(("Locality overview", "/localities"))
    if actor.role in PANEL_READERS:
        items.append(("Panel queue", "/panel"))
    if actor.role in ADMINS:
        items += [("Access grants", "/admin/grants"), ("System clients", "/admin/clients")]
    if actor.role in AUDITORS:
        items.append(("Audit", "/audit"))
    if actor.role in RECORD_KEEPERS:
        items.append(("Held feed rows", "/admin/match-reviews"))
        items.append(("Probable duplicates", "/admin/duplicates"))
    elif actor.role in MATCH_REVIEWERS:  # the adoption team: the rows held beside a sealed record
        items.append(("Held feed rows", "/admin/match-reviews"))
    if actor.role in PRACTICE and actor.practitioner_id is not None:
        items.append(("Your requests", "/requests"))  # hand-overs, asks to join, invitations
    return items


def render(
    request: Request,
    template: str,
    *,
    actor: Actor | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page with the layout's context: who is signed in, navigation, CSRF token, flash."""
    session = web_session(request)
    message = None
    link = None
    if session is not None and session.flash:
        message, session.flash = session.flash, None
        link, session.flash_link = session.flash_link, None
    comeback = getattr(getattr(request.app.state, "web", None), "comeback", None)
    kept = None
    if comeback is not None and session is not None and "values" in context and request.method == "GET":
        kept = comeback.kept_for(request.url.path, request.cookies, session.subject)
        if kept is not None:  # the form as it was when the session ended (childindex/web/comeback.py)
            context["values"], context["kept_form"] = kept, True
    response = templates.TemplateResponse(
        request,
        template,
        {
            "actor": actor,
            "session": session,
            "csrf_token": session.csrf if session else "",
            "nav": nav_items(actor),
            "path": request.url.path,
            "flash": message,
            "flash_link": link,
            "authority": practice(request).authority_name,
            "today": date.today(),
            **context,
        },
        status_code=status_code,
    )
    if kept is not None and comeback is not None:
        response.headers.append("set-cookie", comeback.header(None))  # given back once
    return response


def refused(request: Request, actor: Actor | None, exc: DomainError, status_code: int = 409) -> Response:
    """A refusal from the domain as a page: its title and message."""
    return render(
        request, "message.html", actor=actor, title=exc.title, message=exc.message, status_code=status_code
    )


def csrf_refused(request: Request, actor: Actor | None) -> Response:
    """The page for a form whose CSRF token did not match (expired or forged)."""
    return render(
        request,
        "message.html",
        actor=actor,
        title="This form has expired",
        message="For your security the form could not be accepted. Go back, reload the page and try again.",
        status_code=400,
    )
