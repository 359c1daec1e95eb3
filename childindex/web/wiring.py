"""install(): what create_app calls to serve the pages under / and their assets under /static."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from auth.errors import AuthRefused
from childindex.web import (
    admin,
    audit_pages,
    card_actions,
    details_pages,
    localities,
    mine_pages,
    notices,
    panel_pages,
    practice,
    register,
    signed_out,
    signin,
    worklist_pages,
)
from childindex.web import duplicates as duplicates_pages
from childindex.web import reviews as review_pages
from childindex.web.adoption_pages import router as adoption_router
from childindex.web.comeback import Comeback, safe_return
from childindex.web.deps import HERE, render, web_session
from childindex.web.enrol_pages import router as enrol_router
from childindex.web.inbox_pages import router as inbox_router
from childindex.web.merge_pages import router as merge_router
from childindex.web.new_user import router as new_user_router
from childindex.web.oauth_pages import GovukSignInPages
from childindex.web.plan_pages import router as plan_router
from childindex.web.record_pages import router as record_router
from childindex.web.requests_pages import router as requests_router
from childindex.web.search_pages import router as search_router
from childindex.web.session import CookieConfig, Sealer, TokenClient, WebSessionMiddleware, is_page
from childindex.web.signed_out import signed_out_page
from directory.errors import DomainError
from directory.http.problems import BUSY_ERRORS, RETRY_AFTER_SECONDS, status_for
from directory.models import Actor

ENDS_SESSION = frozenset({"grant-suspended", "grant-revoked", "account-disabled"})
"""Refusals that end a page session at once: the person may not go on, so they are signed out and told."""


@dataclass(frozen=True)
class WebState:
    """What the pages share, kept on app.state.web."""

    cookies: CookieConfig
    flow_sealer: Sealer
    tokens: TokenClient
    redirect_uri: str
    comeback: Comeback


def install(app: FastAPI, settings: Any) -> WebState:
    """Add the session middleware, the page routers, /static and HTML error pages for page paths."""
    cfg = app.state.auth.cfg  # the same issuer and secret key as the authorization server
    secure = settings.web_cookie_secure
    cookies = CookieConfig(
        secure=cfg.issuer.startswith("https://") if secure is None else bool(secure),
        idle_seconds=settings.web_session_idle_seconds or settings.web_session_idle_minutes * 60,
        max_seconds=settings.refresh_token_hours * 3600,
        warn_seconds=settings.web_timeout_warning_seconds,
    )
    comeback = Comeback(Sealer(cfg.secret_key, "comeback"), cookies)  # what a sign-in carries across
    state = WebState(
        cookies=cookies,
        flow_sealer=Sealer(cfg.secret_key, "signin"),
        tokens=TokenClient(cfg.issuer, settings.web_client_id),
        redirect_uri=f"{cfg.issuer}/signin/callback",
        comeback=comeback,
    )
    app.state.web = state
    # The authorization server's sign-in page takes the pages' layout, assets and CSP.
    app.state.auth.pages = GovukSignInPages(settings.authority_name)
    app.add_middleware(
        WebSessionMiddleware,
        sealer=Sealer(cfg.secret_key, "session"),
        cookies=cookies,
        tokens=state.tokens,
        on_end=comeback.on_end,  # "you were signed out because ..." (childindex/web/comeback.py)
    )
    # Built by `make web`; a missing build leaves the pages usable, only unstyled: said at start.
    if not (HERE / "static" / "app.css").is_file():
        logging.getLogger("childindex.web").warning(
            "The pages' assets are not built (childindex/web/static): every page will be unstyled "
            "and its scripts missing. Run `make web` (or build the image from deploy/Containerfile)."
        )
    app.mount("/static", StaticFiles(directory=HERE / "static", check_dir=False), name="static")
    for router in (
        signin.router,
        signed_out.router,  # "you were signed out because ...", the time-out warning's calls
        register.router,
        search_router,  # find a child, POST-redirect-GET (childindex/web/search_pages.py)
        practice.router,
        card_actions.router,
        details_pages.router,
        notices.router,
        admin.router,
        audit_pages.router,
        localities.router,
        review_pages.router,
        merge_router,
        duplicates_pages.router,
        record_router,
        adoption_router,
        mine_pages.router,
        worklist_pages.router,
        panel_pages.router,  # the panel, step up and step down (childindex/web/panel_pages.py)
        inbox_router,  # notices to people (childindex/web/inbox_pages.py)
        requests_router,
        plan_router,  # a TAC's plan: actions and reviews (childindex/web/plan_pages.py)
        new_user_router,  # the new user journey and enrolment (issue #20, helper C)
        enrol_router,
    ):
        app.include_router(router)
    _page_errors(app)
    return state


def _signed_in(request: Request) -> Actor | None:
    """Who the error page is for, when they are signed in and their grant was read: their
    navigation stays on the page (a 429 or a refusal is not a reason to lose your way)."""
    if web_session(request) is None:
        return None
    actor = getattr(request.state, "actor", None) or getattr(request.state, "signed_in_as", None)
    return actor if isinstance(actor, Actor) else None


def _refused_page(request: Request, exc: AuthRefused) -> Response:
    if exc.status == 401:
        reason = getattr(request.state, "web_signed_out_reason", None)
        response = render(
            request,
            "start.html",
            reason=reason,
            status_code=401,
            upstream=bool(request.app.state.auth.cfg.upstream_issuer),
        )
        back = safe_return(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if request.method == "GET" and back:  # after signing in, the page asked for (comeback.py)
            response.headers.append("set-cookie", request.app.state.web.comeback.header({"back": back}))
        return response
    session = web_session(request)
    if exc.code in ENDS_SESSION and session is not None:
        # suspended or revoked while signed in: signed out, and told why (childindex/web/signed_out.py)
        return signed_out_page(
            request, why="grant", subject=session.subject, data={}, said=exc.message, status_code=exc.status
        )
    if exc.code == "purpose-not-allowed" and session is not None:
        session.purpose = None  # (say, after a change of role) asked again at the next record
    title = "Too many requests" if exc.status == 429 else "You cannot do this"
    response = render(
        request,
        "message.html",
        actor=_signed_in(request),
        title=title,
        message=exc.message,
        status_code=exc.status,
    )
    for key, value in exc.headers.items():
        if key.lower() == "retry-after":
            response.headers[key] = value
    return response


def _domain_page(request: Request, exc: DomainError) -> Response:
    return render(
        request,
        "message.html",
        actor=_signed_in(request),
        title=exc.title,
        message=exc.message,
        status_code=status_for(exc),
    )


def _busy_page(request: Request, exc: Exception) -> Response:
    response = render(
        request,
        "message.html",
        actor=_signed_in(request),
        title="Sorry, the service is busy",
        message="Nothing was changed. Wait a moment, then go back and try again.",
        status_code=503,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _not_found_page(request: Request, exc: Exception) -> Response:
    status_code = exc.status_code if isinstance(exc, StarletteHTTPException) else 404
    return render(
        request,
        "message.html",
        actor=_signed_in(request),
        title="Page not found" if status_code == 404 else "Something went wrong",
        message="Check the address, or go back and use the links on the page.",
        status_code=status_code,
    )


def _page_errors(app: FastAPI) -> None:
    """Pages answer refusals and errors with a page; the API keeps its problem+json."""
    api_handlers = dict(app.exception_handlers)

    def page_or_api(kind: type[Exception], page: Callable[[Request, Any], Response]) -> None:
        api = api_handlers[kind]

        async def handler(request: Request, exc: Exception) -> Response:
            path = request.url.path
            if not is_page(path) or (kind is StarletteHTTPException and path.startswith("/static")):
                return await api(request, exc)  # type: ignore[no-any-return]
            return page(request, exc)

        app.add_exception_handler(kind, handler)

    page_or_api(AuthRefused, _refused_page)
    page_or_api(DomainError, _domain_page)
    for kind in BUSY_ERRORS:
        page_or_api(kind, _busy_page)
    page_or_api(RequestValidationError, _not_found_page)  # a page's path or query that does not parse
    page_or_api(StarletteHTTPException, _not_found_page)
