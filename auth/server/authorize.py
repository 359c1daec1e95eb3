"""The authorization endpoint (RFC 6749 3.1) and our own sign-in form: GET checks the request and
shows the form (or goes to the upstream provider: auth/server/upstream.py); POST checks password
and TOTP, then sends a one-time code back to the client."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from auth import openapi as doc
from auth.actors import audit_actor
from auth.errors import OAuthError
from auth.pages import SignInForm
from auth.server.common import same, sign
from auth.server.signin import (
    AUTH_PARAMS,
    CSRF_COOKIE,
    BadRequest,
    check_request,
    finish_sign_in,
    page,
    page_headers,
    redirect_error,
)
from auth.server.upstream import start_upstream
from auth.source import request_source
from auth.state import AuthState, auth_state
from auth.users import SignInFailed, sign_in
from directory import audit
from directory.http.lanes import in_upstream_lane

router = APIRouter(tags=["oauth"])


def _login_form(
    state: AuthState,
    params: dict[str, str],
    csrf_nonce: str,
    *,
    errors: dict[str, str] | None = None,
    username: str = "",
    status: int = 200,
) -> HTMLResponse:
    upstream = None
    if state.cfg.upstream_issuer:
        upstream = "/oauth/authorize?" + urlencode(
            {**{k: params.get(k, "") for k in AUTH_PARAMS}, "idp": "upstream"}
        )
    form = SignInForm(
        hidden={k: params.get(k, "") for k in AUTH_PARAMS},
        csrf_token=sign(state, csrf_nonce),
        username=username[:100],
        errors=errors or {},
        upstream_href=upstream,
    )
    response = HTMLResponse(
        state.pages.sign_in(form),
        status_code=status,
        headers=page_headers(state, params.get("redirect_uri")),
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf_nonce,
        httponly=True,
        samesite="strict",
        path="/oauth",
        secure=state.cfg.issuer.startswith("https://"),
        max_age=1800,
    )
    return response


@router.get(
    "/oauth/authorize",
    name="oauth_authorize_form",
    response_class=HTMLResponse,
    openapi_extra=doc.AUTHORIZE_FORM,
)
async def oauth_authorize_form(request: Request) -> Response:
    """Authorization endpoint: check the request, then show the sign-in page (or go upstream: its
    first use fetches the provider's discovery document, so in the upstream lane,
    directory/http/lanes.py)."""
    if request.query_params.get("idp") == "upstream":
        return await in_upstream_lane(_authorize_form, request)
    return await run_in_threadpool(_authorize_form, request)


def _authorize_form(request: Request) -> Response:
    state = auth_state(request)
    params = {k: request.query_params.get(k, "") for k in AUTH_PARAMS}
    with Session(state.engine) as session:
        try:
            check_request(session, params)
        except BadRequest as exc:
            return page(state, "This sign-in link is not valid", str(exc), 400)
        except OAuthError as exc:
            return redirect_error(params, exc, state.cfg.issuer)
    if request.query_params.get("idp") == "upstream" and state.cfg.upstream_issuer:
        return start_upstream(state, params)
    return _login_form(state, params, request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24))


@router.post(
    "/oauth/authorize",
    name="oauth_authorize_submit",
    response_class=HTMLResponse,
    status_code=303,
    openapi_extra=doc.AUTHORIZE_SUBMIT,
)
async def oauth_authorize_submit(request: Request) -> Response:
    """The sign-in form's target: password + TOTP, then a one-time code back to the client."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    state = auth_state(request)
    source = request_source(request, state.cfg.trusted_proxies)
    return await run_in_threadpool(_authorize_submit, state, form, request.cookies.get(CSRF_COOKIE), source)


_MISSING = {
    "username": "Enter your username",
    "password": "Enter your password",
    "totp": "Enter the 6-digit code from your authenticator app",
}


def _authorize_submit(
    state: AuthState, form: dict[str, str], csrf_cookie: str | None, source: str
) -> Response:
    params = {k: form.get(k, "") for k in AUTH_PARAMS}
    nonce = csrf_cookie or secrets.token_urlsafe(24)
    username = form.get("username", "").strip()
    with Session(state.engine, expire_on_commit=False) as session:
        try:
            check_request(session, params)
        except BadRequest as exc:
            return page(state, "This sign-in link is not valid", str(exc), 400)
        except OAuthError as exc:
            return redirect_error(params, exc, state.cfg.issuer)
        if not csrf_cookie or not same(sign(state, csrf_cookie), form.get("csrf_token", "")):
            expired = {"form": "Your sign-in page expired; please try again."}
            return _login_form(state, params, nonce, errors=expired, username=username, status=400)
        missing = {k: m for k, m in _MISSING.items() if not form.get(k, "").strip()}
        if missing:
            return _login_form(state, params, nonce, errors=missing, username=username, status=400)
        try:
            user = sign_in(
                session,
                username=username,
                password=form.get("password", ""),
                totp_code=form.get("totp", ""),
                source=source,
            )
        except SignInFailed as exc:
            audit.append(
                session,
                actor=audit_actor(username[:100] or "unknown", client_id=params["client_id"]),
                action="auth.signin",
                outcome="denied",
                detail={"method": "local", "source": source},
            )
            session.commit()
            # One message for the whole form: it never says which factor was wrong.
            return _login_form(
                state, params, nonce, errors={"username": str(exc)}, username=username, status=401
            )
        session.commit()
        return finish_sign_in(
            state, session, params, subject=user.username, amr=["pwd", "otp", "mfa"], method="local"
        )
