"""The two ends of a sign-in, whichever way the person signs in (our form or the upstream provider):
checking the authorization request first, and at the end the access-grant check and the one-time
code sent back to the client; plus the pages and security headers both ways show.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlparse

from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from auth.actors import audit_actor
from auth.clients import sha256_hex
from auth.errors import AuthRefused, OAuthError
from auth.grants import current_grant
from auth.models import AuthorizationCode, OAuthClient, SubjectKind
from auth.scopes import unknown as unknown_scopes
from auth.server.common import scopes
from auth.state import AuthState
from directory import audit
from directory.models import Role, utcnow

CODE_LIFETIME = timedelta(minutes=2)
CSRF_COOKIE = "childindex_csrf"

AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


class BadRequest(Exception):
    """An authorization request too broken to send back to the client."""


def check_request(session: Session, params: dict[str, str]) -> OAuthClient:
    """The client of a well-formed authorization request; BadRequest (shown here) or OAuthError (sent
    back to the client) otherwise."""
    client = session.get(OAuthClient, params.get("client_id", ""))
    if client is None or not client.active:
        raise BadRequest("Unknown client_id.")
    if params.get("redirect_uri") not in client.redirect_uris.split():
        raise BadRequest("redirect_uri is not registered for this client.")
    if "authorization_code" not in client.grant_types.split():
        raise OAuthError("unauthorized_client", "This client may not use the authorization code flow.")
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "Only response_type=code is supported.")
    if params.get("code_challenge_method") != "S256" or len(params.get("code_challenge", "")) < 43:
        raise OAuthError(
            "invalid_request",
            "PKCE is required: send a code_challenge with code_challenge_method=S256.",
        )
    unknown = unknown_scopes(scopes(params.get("scope")))
    if unknown:
        raise OAuthError("invalid_scope", f"Unknown scopes: {', '.join(unknown)}.")
    return client


def redirect_error(params: dict[str, str], exc: OAuthError, issuer: str) -> RedirectResponse:
    """Send an OAuth error back to the client's redirect_uri (RFC 6749 4.1.2.1, with RFC 9207's iss)."""
    query = {"error": exc.error, "error_description": exc.description, "iss": issuer}
    if params.get("state"):
        query["state"] = params["state"]
    return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=303)


def page_headers(state: AuthState, form_target: str | None = None) -> dict[str, str]:
    """The security headers of our pages (a form posting to `form_target` may be redirected there)."""
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


def page(state: AuthState, title: str, message: str, status: int = 200) -> HTMLResponse:
    """A page that only says something (a refusal, an expired link)."""
    return HTMLResponse(state.pages.message(title, message), status_code=status, headers=page_headers(state))


def finish_sign_in(
    state: AuthState,
    session: Session,
    params: dict[str, str],
    *,
    subject: str,
    amr: list[str],
    method: str,
) -> Response:
    """After the person is known: refuse without a current grant, else send a one-time code back."""
    try:
        grant = current_grant(session, subject=subject, kind=SubjectKind.USER, cfg=state.cfg)
    except AuthRefused as exc:
        audit.append(
            session,
            actor=audit_actor(subject, client_id=params["client_id"]),
            action="auth.signin",
            outcome="denied",
            detail={"method": method, "code": exc.code},
        )
        session.commit()
        return page(state, "You cannot use the directory yet", exc.message, 403)
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
        actor=audit_actor(subject, client_id=params["client_id"], role=Role(grant.role)),
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
