"""The built-in authorization server under /oauth, and its metadata under /.well-known.

Grants: client_credentials (private_key_jwt or client_secret_basic), authorization_code with
PKCE S256 only (local sign-in with password + TOTP, or the upstream OpenID Connect provider),
refresh_token (rotated on every use; a reused token revokes its whole family). Also RFC 7009
revocation, RFC 7662 introspection, RFC 8414 metadata and the SMART configuration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlparse

import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from auth import openapi as doc
from auth.clients import authenticate_client, new_secret, sha256_hex
from auth.config import CLIENT_ASSERTION_ALGS, SUPPORTED_SCOPES
from auth.deps import AuthState, auth_state, check_caller
from auth.errors import AuthRefused, OAuthError
from auth.grants import PERSONS_ONLY_SCOPES, current_grant
from auth.models import (
    AuthorizationCode,
    ClientAuthMethod,
    LocalUser,
    OAuthClient,
    RefreshToken,
    SeenJti,
    SubjectKind,
)
from auth.pages import SignInForm
from auth.source import request_source
from auth.tokens import issue_access_token
from auth.upstream import UpstreamError, UpstreamOIDC
from auth.users import SignInFailed, sign_in
from directory import audit
from directory.models import Actor, Role, utcnow

router = APIRouter(tags=["oauth"])
CODE_LIFETIME = timedelta(minutes=2)
CSRF_COOKIE = "childindex_csrf"
UPSTREAM_COOKIE = "childindex_upstream"


# --------------------------------------------------------------------------- helpers


def _oauth_error_response(exc: OAuthError) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="childindex"'
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=headers,
    )


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts, whatever characters a caller put in one of them
    (hmac.compare_digest refuses non-ASCII text with a TypeError)."""
    return hmac.compare_digest(a.encode(), b.encode())


def _token_response(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _system_actor(subject: str, client_id: str | None, role: Role | None = None) -> Actor:
    from auth.deps import _Unknown

    return Actor.model_construct(
        subject=subject[:200],
        role=role or _Unknown.NONE,
        organisation=None,
        display_name=None,
        client_id=client_id,
        purpose=None,
        request_id=None,
        practitioner_id=None,
        shield_override_reason=None,
    )


def _scopes(value: str | None) -> list[str]:
    return [s for s in (value or "").split() if s]


def _granted_scope(requested: list[str], client: OAuthClient, grant_scopes: set[str]) -> str:
    allowed = set(client.allowed_scopes.split())
    if requested:
        outside = sorted(set(requested) - allowed - {"openid", "offline_access", "fhirUser"})
        if outside:
            raise OAuthError("invalid_scope", f"This client may not ask for: {', '.join(outside)}.")
        wanted = set(requested)
    else:
        wanted = allowed
    scope = sorted(wanted & allowed & grant_scopes)
    if not scope:
        raise OAuthError(
            "invalid_scope",
            "None of the scopes asked for is covered by the access grant; ask your directory administrator.",
        )
    return " ".join(scope)


def _refused_grant(exc: AuthRefused) -> OAuthError:
    return OAuthError(
        "invalid_grant" if exc.code != "no-grant" else "unauthorized_client",
        exc.message,
        status=400,
    )


def _issue(
    state: AuthState,
    session: Session,
    *,
    client: OAuthClient,
    subject: str,
    kind: SubjectKind,
    scope: str,
    amr: list[str],
    refresh_family: uuid.UUID | None = None,
    refresh_expires: Any = None,
    with_refresh: bool = False,
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if kind == SubjectKind.USER:
        user = session.exec(select(LocalUser).where(LocalUser.username == subject)).first()
        if user is not None:
            extra["name"] = user.display_name
            if user.practitioner_id:
                extra["practitioner_id"] = str(user.practitioner_id)
    family = None
    if with_refresh and "refresh_token" in client.grant_types.split():
        # The sign-in's id: every access token of this refresh family carries it, so ending the
        # family (sign-out, a reused refresh token, a disabled account) ends them at their next use.
        family = refresh_family or uuid.uuid4()
        extra["sid"] = str(family)
    token, claims = issue_access_token(
        state.keys,
        state.cfg,
        subject=subject,
        subject_kind=kind,
        client_id=client.client_id,
        scope=scope,
        amr=amr,
        extra=extra,
    )
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": state.cfg.access_token_seconds,
        "scope": scope,
    }
    if family is not None:
        raw = new_secret()
        now = utcnow()
        session.add(
            RefreshToken(
                token_hash=sha256_hex(raw),
                family_id=family,
                client_id=client.client_id,
                subject=subject,
                subject_kind=kind.value,
                scope=scope,
                amr=" ".join(amr),
                issued_at=now,
                expires_at=refresh_expires or now + timedelta(seconds=state.cfg.refresh_token_seconds),
            )
        )
        body["refresh_token"] = raw
    audit.append(
        session,
        actor=_system_actor(subject, client.client_id),
        action="auth.token.issued",
        detail={"jti": claims["jti"], "scope": scope, "kind": kind.value},
    )
    return body


# --------------------------------------------------------------------------- token endpoint


@router.post("/oauth/token", name="oauth_token", openapi_extra=doc.TOKEN)
async def oauth_token(request: Request) -> Response:
    """Token endpoint (RFC 6749 3.2): client_credentials, authorization_code, refresh_token."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    state = auth_state(request)
    try:
        body = await run_in_threadpool(_token, state, request.headers.get("Authorization"), form)
    except OAuthError as exc:
        return _oauth_error_response(exc)
    return _token_response(body)


def _token(state: AuthState, authorization: str | None, form: dict[str, str]) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    # Load (or create) the signing key before taking the write lock: on SQLite a key created
    # inside this transaction would wait on the lock this transaction holds.
    state.keys.current()
    with Session(state.engine, expire_on_commit=False) as session:
        try:
            public_ok = grant_type in ("authorization_code", "refresh_token")
            client = authenticate_client(
                session, state.cfg, authorization=authorization, form=form, allow_public=public_ok
            )
            session.commit()  # a spent assertion jti stays spent whatever happens next
            if grant_type not in client.grant_types.split():
                raise OAuthError("unauthorized_client", f"This client may not use {grant_type!r}.")
            if grant_type == "client_credentials":
                body = _client_credentials(state, session, client, form)
            elif grant_type == "authorization_code":
                body = _authorization_code(state, session, client, form)
            elif grant_type == "refresh_token":
                body = _refresh(state, session, client, form)
            else:
                raise OAuthError(
                    "unsupported_grant_type",
                    "Use client_credentials, authorization_code or refresh_token.",
                )
            session.commit()
            return body
        except OAuthError:
            session.commit()  # keep what must stick: spent codes, revoked token families
            raise


def _client_credentials(
    state: AuthState, session: Session, client: OAuthClient, form: dict[str, str]
) -> dict[str, Any]:
    if client.auth_method == ClientAuthMethod.NONE:
        raise OAuthError("unauthorized_client", "Public clients cannot use client_credentials.")
    try:
        grant = current_grant(session, subject=client.client_id, kind=SubjectKind.CLIENT, cfg=state.cfg)
    except AuthRefused as exc:
        raise _refused_grant(exc) from None
    if grant.responsible is not None:  # the person who answers for the client, still current
        try:
            current_grant(session, subject=grant.responsible, kind=SubjectKind.USER, cfg=state.cfg)
        except AuthRefused:
            raise OAuthError(
                "invalid_grant",
                f"The person responsible for this client ({grant.responsible}) no longer holds a current "
                "grant with current training and vetting; ask the directory administrator.",
            ) from None
    scope = _granted_scope(_scopes(form.get("scope")), client, grant.scope_set() - PERSONS_ONLY_SCOPES)
    return _issue(
        state,
        session,
        client=client,
        subject=client.client_id,
        kind=SubjectKind.CLIENT,
        scope=scope,
        amr=[client.auth_method],
    )


def _authorization_code(
    state: AuthState, session: Session, client: OAuthClient, form: dict[str, str]
) -> dict[str, Any]:
    code, verifier = form.get("code", ""), form.get("code_verifier", "")
    if not code or not verifier:
        raise OAuthError("invalid_request", "Send the code and the PKCE code_verifier.")
    now = utcnow()
    row = session.get(AuthorizationCode, sha256_hex(code))
    if row is None or row.client_id != client.client_id:
        raise OAuthError("invalid_grant", "The authorization code is not valid.")
    spent = session.execute(
        sa.update(AuthorizationCode)
        .where(
            col(AuthorizationCode.code_hash) == row.code_hash,
            col(AuthorizationCode.used_at).is_(None),
        )
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise OAuthError("invalid_grant", "The authorization code was already used.")
    if row.expires_at <= now:
        raise OAuthError("invalid_grant", "The authorization code has expired; sign in again.")
    if form.get("redirect_uri") != row.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
    if not verifier.isascii() or not _same(create_s256_code_challenge(verifier), row.code_challenge):
        raise OAuthError("invalid_grant", "The code_verifier does not match the code_challenge.")
    _check_account(session, row.subject, SubjectKind.USER)
    try:
        grant = current_grant(session, subject=row.subject, kind=SubjectKind.USER, cfg=state.cfg)
    except AuthRefused as exc:
        raise _refused_grant(exc) from None
    scope = _granted_scope(row.scope.split(), client, grant.scope_set())
    return _issue(
        state,
        session,
        client=client,
        subject=row.subject,
        kind=SubjectKind.USER,
        scope=scope,
        amr=row.amr.split(),
        with_refresh=True,
    )


def _refresh(state: AuthState, session: Session, client: OAuthClient, form: dict[str, str]) -> dict[str, Any]:
    raw = form.get("refresh_token", "")
    now = utcnow()
    row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(raw))).first()
    if row is None or row.client_id != client.client_id:
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    if row.revoked_at is not None:
        raise OAuthError("invalid_grant", "The refresh token was revoked; sign in again.")
    rotated = session.execute(
        sa.update(RefreshToken)
        .where(
            col(RefreshToken.id) == row.id,
            col(RefreshToken.rotated_at).is_(None),
            col(RefreshToken.revoked_at).is_(None),
        )
        .values(rotated_at=now)
    )
    if rotated.rowcount != 1:  # type: ignore[attr-defined]
        _revoke_family(session, row.family_id, now)
        audit.append(
            session,
            actor=_system_actor(row.subject, client.client_id),
            action="auth.refresh.reused",
            outcome="alert",
            detail={"family": str(row.family_id)},
        )
        raise OAuthError(
            "invalid_grant",
            "This refresh token was already used, so every token "
            "of this sign-in is now revoked. Sign in again.",
        )
    if row.expires_at <= now:
        raise OAuthError("invalid_grant", "The refresh token has expired; sign in again.")
    kind = SubjectKind(row.subject_kind)
    if _account_disabled(session, row.subject, kind):
        _revoke_family(session, row.family_id, now)  # kept on commit: enabling again does not revive it
        raise OAuthError("invalid_grant", "This account is disabled, so the sign-in has ended.")
    try:
        grant = current_grant(session, subject=row.subject, kind=kind, cfg=state.cfg)
    except AuthRefused as exc:
        raise _refused_grant(exc) from None
    requested = _scopes(form.get("scope")) or row.scope.split()
    if set(requested) - set(row.scope.split()):
        raise OAuthError("invalid_scope", "A refresh cannot widen the scopes of the sign-in.")
    scope = _granted_scope(requested, client, grant.scope_set())
    return _issue(
        state,
        session,
        client=client,
        subject=row.subject,
        kind=kind,
        scope=scope,
        amr=row.amr.split(),
        refresh_family=row.family_id,
        refresh_expires=row.expires_at,
        with_refresh=True,
    )


def _account_disabled(session: Session, subject: str, kind: SubjectKind) -> bool:
    """True when the subject is a local account that has been disabled."""
    if kind != SubjectKind.USER:
        return False
    active = session.exec(select(LocalUser.active).where(LocalUser.username == subject)).first()
    return active is False


def _check_account(session: Session, subject: str, kind: SubjectKind) -> None:
    if _account_disabled(session, subject, kind):
        raise OAuthError("invalid_grant", "This account is disabled; ask your directory administrator.")


def _revoke_family(session: Session, family_id: uuid.UUID, now: Any) -> None:
    session.execute(
        sa.update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )


# ------------------------------------------------------------------ revocation, introspection


@router.post("/oauth/revoke", name="oauth_revoke", response_class=Response, openapi_extra=doc.REVOKE)
async def oauth_revoke(request: Request) -> Response:
    """Revoke an access or refresh token (RFC 7009); answers 200 whether or not it was valid."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    state = auth_state(request)
    try:
        await run_in_threadpool(_revoke, state, request.headers.get("Authorization"), form)
    except OAuthError as exc:
        return _oauth_error_response(exc)
    return Response(status_code=200)


def _revoke(state: AuthState, authorization: str | None, form: dict[str, str]) -> None:
    token = form.get("token", "")
    with Session(state.engine, expire_on_commit=False) as session:
        client = authenticate_client(
            session, state.cfg, authorization=authorization, form=form, allow_public=True
        )
        now = utcnow()
        row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(token))).first()
        if row is not None and row.client_id == client.client_id:
            _revoke_family(session, row.family_id, now)
            audit.append(
                session,
                actor=_system_actor(row.subject, client.client_id),
                action="auth.token.revoked",
                detail={"family": str(row.family_id)},
            )
        elif token.count(".") == 2:
            try:
                info = state.validator.validate(token)
            except AuthRefused:
                info = None
            if (
                info is not None
                and info.jti
                and info.client_id == client.client_id
                and session.get(SeenJti, f"revoked:{info.jti}") is None
            ):
                session.add(
                    SeenJti(
                        key=f"revoked:{info.jti}",
                        expires_at=now
                        + timedelta(seconds=max(0, info.expires_at - time.time()) + state.cfg.leeway_seconds),
                    )
                )
                audit.append(
                    session,
                    actor=_system_actor(info.subject, client.client_id),
                    action="auth.token.revoked",
                    detail={"jti": info.jti},
                )
        session.commit()


@router.post("/oauth/introspect", name="oauth_introspect", openapi_extra=doc.INTROSPECT)
async def oauth_introspect(request: Request) -> Response:
    """Token introspection (RFC 7662) for authenticated confidential clients."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    state = auth_state(request)
    try:
        body = await run_in_threadpool(_introspect, state, request.headers.get("Authorization"), form)
    except OAuthError as exc:
        return _oauth_error_response(exc)
    return _token_response(body)


def _introspect(state: AuthState, authorization: str | None, form: dict[str, str]) -> dict[str, Any]:
    token = form.get("token", "")
    inactive = {"active": False}
    with Session(state.engine, expire_on_commit=False) as session:
        client = authenticate_client(session, state.cfg, authorization=authorization, form=form)
        session.commit()
        now = utcnow()
        row = session.exec(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(token))).first()
        if row is not None:
            if row.client_id != client.client_id or row.revoked_at or row.rotated_at or row.expires_at <= now:
                return inactive
            return {
                "active": True,
                "token_type": "refresh_token",
                "scope": row.scope,
                "client_id": row.client_id,
                "sub": row.subject,
                "exp": int(row.expires_at.timestamp()),
                "iat": int(row.issued_at.timestamp()),
                "iss": state.cfg.issuer,
            }
        if token.count(".") != 2:
            return inactive
        try:
            info = state.validator.validate(token)
            grant = check_caller(state, info)  # what a request with it would be told
        except AuthRefused:
            return inactive
        claims = info.claims
        return {
            "active": True,
            "token_type": "Bearer",
            "scope": " ".join(sorted(info.scopes)),
            "client_id": info.client_id,
            "sub": info.subject,
            "exp": info.expires_at,
            "iat": claims.get("iat"),
            "nbf": claims.get("nbf"),
            "iss": info.issuer,
            "aud": claims.get("aud"),
            "jti": info.jti,
            "role": grant.role,
        }


# --------------------------------------------------------------------------- authorization endpoint


def _sign(state: AuthState, value: str) -> str:
    return hmac.new(state.cfg.secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


_AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


class _BadRequest(Exception):
    """An authorization request too broken to send back to the client."""


def _check_request(session: Session, params: dict[str, str]) -> OAuthClient:
    client = session.get(OAuthClient, params.get("client_id", ""))
    if client is None or not client.active:
        raise _BadRequest("Unknown client_id.")
    if params.get("redirect_uri") not in client.redirect_uris.split():
        raise _BadRequest("redirect_uri is not registered for this client.")
    if "authorization_code" not in client.grant_types.split():
        raise OAuthError("unauthorized_client", "This client may not use the authorization code flow.")
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "Only response_type=code is supported.")
    if params.get("code_challenge_method") != "S256" or len(params.get("code_challenge", "")) < 43:
        raise OAuthError(
            "invalid_request",
            "PKCE is required: send a code_challenge with code_challenge_method=S256.",
        )
    unknown = sorted(set(_scopes(params.get("scope"))) - set(SUPPORTED_SCOPES))
    if unknown:
        raise OAuthError("invalid_scope", f"Unknown scopes: {', '.join(unknown)}.")
    return client


def _redirect_error(params: dict[str, str], exc: OAuthError, issuer: str) -> RedirectResponse:
    query = {"error": exc.error, "error_description": exc.description, "iss": issuer}
    if params.get("state"):
        query["state"] = params["state"]
    return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=303)


def _headers(state: AuthState, form_target: str | None = None) -> dict[str, str]:
    csp = state.pages.csp
    if form_target:
        # Chromium applies form-action to the redirect after the POST: allow the client's origin.
        target, issuer = urlparse(form_target), urlparse(state.cfg.issuer)
        origin = f"{target.scheme}://{target.netloc}"
        same = (target.scheme, target.netloc) == (issuer.scheme, issuer.netloc)
        if target.scheme in ("http", "https") and not same:
            csp = csp.replace("form-action 'self'", f"form-action 'self' {origin}")
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _page(state: AuthState, title: str, message: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(state.pages.message(title, message), status_code=status, headers=_headers(state))


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
            {**{k: params.get(k, "") for k in _AUTH_PARAMS}, "idp": "upstream"}
        )
    form = SignInForm(
        hidden={k: params.get(k, "") for k in _AUTH_PARAMS},
        csrf_token=_sign(state, csrf_nonce),
        username=username[:100],
        errors=errors or {},
        upstream_href=upstream,
    )
    response = HTMLResponse(
        state.pages.sign_in(form),
        status_code=status,
        headers=_headers(state, params.get("redirect_uri")),
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
def oauth_authorize_form(request: Request) -> Response:
    """Authorization endpoint: check the request, then show the sign-in page (or go upstream)."""
    state = auth_state(request)
    params = {k: request.query_params.get(k, "") for k in _AUTH_PARAMS}
    with Session(state.engine) as session:
        try:
            _check_request(session, params)
        except _BadRequest as exc:
            return _page(state, "This sign-in link is not valid", str(exc), 400)
        except OAuthError as exc:
            return _redirect_error(params, exc, state.cfg.issuer)
    if request.query_params.get("idp") == "upstream" and state.cfg.upstream_issuer:
        return _start_upstream(state, params)
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
    params = {k: form.get(k, "") for k in _AUTH_PARAMS}
    nonce = csrf_cookie or secrets.token_urlsafe(24)
    username = form.get("username", "").strip()
    with Session(state.engine, expire_on_commit=False) as session:
        try:
            _check_request(session, params)
        except _BadRequest as exc:
            return _page(state, "This sign-in link is not valid", str(exc), 400)
        except OAuthError as exc:
            return _redirect_error(params, exc, state.cfg.issuer)
        if not csrf_cookie or not _same(_sign(state, csrf_cookie), form.get("csrf_token", "")):
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
                actor=_system_actor(username[:100] or "unknown", params["client_id"]),
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
        return _finish_sign_in(
            state, session, params, subject=user.username, amr=["pwd", "otp", "mfa"], method="local"
        )


def _finish_sign_in(
    state: AuthState,
    session: Session,
    params: dict[str, str],
    *,
    subject: str,
    amr: list[str],
    method: str,
) -> Response:
    try:
        grant = current_grant(session, subject=subject, kind=SubjectKind.USER, cfg=state.cfg)
    except AuthRefused as exc:
        audit.append(
            session,
            actor=_system_actor(subject, params["client_id"]),
            action="auth.signin",
            outcome="denied",
            detail={"method": method, "code": exc.code},
        )
        session.commit()
        return _page(state, "You cannot use the directory yet", exc.message, 403)
    code = secrets.token_urlsafe(32)
    session.add(
        AuthorizationCode(
            code_hash=sha256_hex(code),
            client_id=params["client_id"],
            subject=subject,
            redirect_uri=params["redirect_uri"],
            scope=params.get("scope", ""),
            code_challenge=params["code_challenge"],
            amr=" ".join(amr),
            expires_at=utcnow() + CODE_LIFETIME,
        )
    )
    audit.append(
        session,
        actor=_system_actor(subject, params["client_id"], Role(grant.role)),
        action="auth.signin",
        detail={"method": method},
    )
    session.commit()
    query = {"code": code, "iss": state.cfg.issuer}
    if params.get("state"):
        query["state"] = params["state"]
    response = RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=303)
    response.delete_cookie(CSRF_COOKIE, path="/oauth")
    return response


# ------------------------------------------------------------------ upstream OpenID Connect


def _upstream(state: AuthState) -> UpstreamOIDC:
    holder = state.__dict__.setdefault("_upstream", None)
    if holder is None:
        holder = UpstreamOIDC(state.cfg)
        state.__dict__["_upstream"] = holder
    return holder  # type: ignore[no-any-return]


def _seal(state: AuthState, data: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    return f"{body}.{_sign(state, body)}"


def _unseal(state: AuthState, value: str | None) -> dict[str, Any] | None:
    if not value or "." not in value:
        return None
    body, sig = value.rsplit(".", 1)
    if not _same(_sign(state, body), sig):
        return None
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body.encode()))
    return data if data.get("exp", 0) > time.time() else None


def _start_upstream(state: AuthState, params: dict[str, str]) -> Response:
    flow = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),
        "params": params,
        "exp": time.time() + 600,
    }
    try:
        url = _upstream(state).authorize_url(
            state=flow["state"], nonce=flow["nonce"], verifier=flow["verifier"]
        )
    except UpstreamError as exc:
        return _page(state, "Sign-in is not available", str(exc), 502)
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider's redirect back is a top-level cross-site navigation.
    response.set_cookie(
        UPSTREAM_COOKIE,
        _seal(state, flow),
        httponly=True,
        samesite="lax",
        path="/oauth",
        secure=state.cfg.issuer.startswith("https://"),
        max_age=600,
    )
    return response


@router.get(
    "/oauth/upstream/callback",
    name="oauth_upstream_callback",
    response_class=HTMLResponse,
    status_code=303,
    openapi_extra=doc.UPSTREAM_CALLBACK,
)
def oauth_upstream_callback(request: Request) -> Response:
    """Where the upstream provider returns: validate its ID token, then finish our sign-in."""
    state = auth_state(request)
    flow = _unseal(state, request.cookies.get(UPSTREAM_COOKIE))
    if flow is None or not _same(flow["state"], request.query_params.get("state", "")):
        return _page(state, "Sign-in expired", "Start again from the application.", 400)
    if request.query_params.get("error"):
        return _page(
            state,
            "Sign-in was not completed",
            request.query_params.get("error_description", "") or "The provider did not complete the sign-in.",
            400,
        )
    params: dict[str, str] = flow["params"]
    try:
        claims = _upstream(state).exchange(
            code=request.query_params.get("code", ""),
            verifier=flow["verifier"],
            nonce=flow["nonce"],
        )
    except UpstreamError as exc:
        with Session(state.engine) as session:
            audit.append(
                session,
                actor=_system_actor("upstream", params.get("client_id")),
                action="auth.signin",
                outcome="denied",
                detail={"method": "upstream", "why": str(exc)[:200]},
            )
            session.commit()
        return _page(state, "Sign-in refused", str(exc), 403)
    subject = str(claims.get(state.cfg.upstream_subject_claim) or "")
    if not subject:
        return _page(state, "Sign-in refused", "The provider did not say who you are.", 403)
    with Session(state.engine, expire_on_commit=False) as session:
        try:
            _check_request(session, params)
        except (_BadRequest, OAuthError):
            return _page(state, "This sign-in link is not valid", "Start again from the application.", 400)
        response = _finish_sign_in(
            state,
            session,
            params,
            subject=subject,
            amr=[str(a) for a in claims.get("amr", [])] or ["ext"],
            method="upstream",
        )
    response.delete_cookie(UPSTREAM_COOKIE, path="/oauth")
    return response


# --------------------------------------------------------------------------- metadata


def _metadata(state: AuthState) -> dict[str, Any]:
    issuer = state.cfg.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "authorization_response_iss_parameter_supported": True,
    }


@router.get(
    "/.well-known/oauth-authorization-server",
    name="oauth_metadata",
    openapi_extra=doc.public_json("Authorization server metadata (RFC 8414)"),
)
def oauth_metadata(request: Request) -> JSONResponse:
    """Authorization server metadata (RFC 8414)."""
    return JSONResponse(_metadata(auth_state(request)))


@router.get(
    "/.well-known/smart-configuration",
    name="smart_configuration",
    openapi_extra=doc.public_json("SMART App Launch configuration"),
)
def smart_configuration(request: Request) -> JSONResponse:
    """SMART App Launch / Backend Services configuration."""
    meta = _metadata(auth_state(request))
    meta["capabilities"] = [
        "client-confidential-asymmetric",
        "client-confidential-symmetric",
        "client-public",
        "permission-v2",
        "launch-standalone",
    ]
    return JSONResponse(meta)


@router.get("/oauth/jwks", name="oauth_jwks", openapi_extra=doc.public_json("The public signing keys (JWKS)"))
def oauth_jwks(request: Request) -> JSONResponse:
    """The public keys that verify our access tokens."""
    return JSONResponse(auth_state(request).keys.jwks())
