"""The token endpoint and its neighbours under /oauth: token (RFC 6749 3.2), revoke (RFC 7009) and
introspect (RFC 7662).

Grants: client_credentials (private_key_jwt or client_secret_basic), authorization_code with
PKCE S256 only (the code from a sign-in: auth/server/authorize.py, auth/server/upstream.py),
refresh_token (rotated on every use; a reused token revokes its whole family).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from auth import openapi as doc
from auth.actors import audit_actor
from auth.clients import authenticate_client, new_secret, sha256_hex
from auth.deps import check_caller
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
from auth.server.common import oauth_error_response, same, scopes, token_response
from auth.state import AuthState, auth_state
from auth.tokens import issue_access_token
from directory import audit
from directory.models import utcnow

router = APIRouter(tags=["oauth"])


# --------------------------------------------------------------------------- helpers


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
    """An access token (and, where the client may refresh, a refresh token) as the token endpoint
    answers; the issue is audited."""
    extra = _person_claims(session, subject) if kind == SubjectKind.USER else {}
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
        body["refresh_token"] = _new_refresh_token(
            state,
            session,
            family=family,
            client_id=client.client_id,
            subject=subject,
            kind=kind,
            scope=scope,
            amr=amr,
            expires=refresh_expires,
        )
    audit.append(
        session,
        actor=audit_actor(subject, client_id=client.client_id),
        action="auth.token.issued",
        detail={"jti": claims["jti"], "scope": scope, "kind": kind.value},
    )
    return body


def _new_refresh_token(
    state: AuthState,
    session: Session,
    *,
    family: uuid.UUID,
    client_id: str,
    subject: str,
    kind: SubjectKind,
    scope: str,
    amr: list[str],
    expires: Any,
) -> str:
    """A new refresh token of the sign-in's family (only its hash is kept), to expire with the
    family's first (`expires`) or after the configured lifetime."""
    raw = new_secret()
    now = utcnow()
    session.add(
        RefreshToken(
            token_hash=sha256_hex(raw),
            family_id=family,
            client_id=client_id,
            subject=subject,
            subject_kind=kind.value,
            scope=scope,
            amr=" ".join(amr),
            issued_at=now,
            expires_at=expires or now + timedelta(seconds=state.cfg.refresh_token_seconds),
        )
    )
    return raw


def _person_claims(session: Session, subject: str) -> dict[str, Any]:
    """What a person's access token says of them beyond the subject: name and practitioner id."""
    extra: dict[str, Any] = {}
    user = session.exec(select(LocalUser).where(LocalUser.username == subject)).first()
    if user is not None:
        extra["name"] = user.display_name
        if user.practitioner_id:
            extra["practitioner_id"] = str(user.practitioner_id)
    return extra


# --------------------------------------------------------------------------- token endpoint


_FormWork = Callable[[AuthState, str | None, dict[str, str]], dict[str, Any]]


async def _answer(request: Request, work: _FormWork) -> Response:
    """Run a form endpoint's work off the event loop: its JSON, or the OAuth error it raised."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        body = await run_in_threadpool(work, auth_state(request), request.headers.get("Authorization"), form)
    except OAuthError as exc:
        return oauth_error_response(exc)
    return token_response(body)


@router.post("/oauth/token", name="oauth_token", openapi_extra=doc.TOKEN)
async def oauth_token(request: Request) -> Response:
    """Token endpoint (RFC 6749 3.2): client_credentials, authorization_code, refresh_token."""
    return await _answer(request, _token)


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
    scope = _granted_scope(scopes(form.get("scope")), client, grant.scope_set() - PERSONS_ONLY_SCOPES)
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
    if not verifier.isascii() or not same(create_s256_code_challenge(verifier), row.code_challenge):
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
            actor=audit_actor(row.subject, client_id=client.client_id),
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
    requested = scopes(form.get("scope")) or row.scope.split()
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
        return oauth_error_response(exc)
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
                actor=audit_actor(row.subject, client_id=client.client_id),
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
                    actor=audit_actor(info.subject, client_id=client.client_id),
                    action="auth.token.revoked",
                    detail={"jti": info.jti},
                )
        session.commit()


@router.post("/oauth/introspect", name="oauth_introspect", openapi_extra=doc.INTROSPECT)
async def oauth_introspect(request: Request) -> Response:
    """Token introspection (RFC 7662) for authenticated confidential clients."""
    return await _answer(request, _introspect)


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
