"""Sign-in through the authority's own OpenID Connect provider: the redirect there (its state, nonce
and PKCE verifier sealed in a cookie) and the callback that validates its ID token (auth/upstream.py)
and finishes our sign-in."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from auth import openapi as doc
from auth.actors import audit_actor
from auth.errors import OAuthError
from auth.server.common import same, sign
from auth.server.signin import BadRequest, check_request, finish_sign_in, page
from auth.state import AuthState, auth_state
from auth.upstream import UpstreamError, UpstreamOIDC
from directory import audit
from directory.http.lanes import in_upstream_lane

router = APIRouter(tags=["oauth"])
UPSTREAM_COOKIE = "childindex_upstream"


def _upstream(state: AuthState) -> UpstreamOIDC:
    holder = state.__dict__.setdefault("_upstream", None)
    if holder is None:
        holder = UpstreamOIDC(state.cfg)
        state.__dict__["_upstream"] = holder
    return holder


def _seal(state: AuthState, data: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    return f"{body}.{sign(state, body)}"


def _unseal(state: AuthState, value: str | None) -> dict[str, Any] | None:
    if not value or "." not in value:
        return None
    body, sig = value.rsplit(".", 1)
    if not same(sign(state, body), sig):
        return None
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body.encode()))
    return data if data.get("exp", 0) > time.time() else None


def start_upstream(state: AuthState, params: dict[str, str]) -> Response:
    """Send the person to the upstream provider, the flow's secrets sealed in a cookie for the callback."""
    flow: dict[str, Any] = {
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
        return page(state, "Sign-in is not available", str(exc), 502)
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
async def oauth_upstream_callback(request: Request) -> Response:
    """Where the upstream provider returns: validate its ID token, then finish our sign-in. In the
    upstream lane (directory/http/lanes.py): a stalled provider holds none of the shared threads."""
    return await in_upstream_lane(_callback, request)


def _callback(request: Request) -> Response:
    state = auth_state(request)
    flow = _unseal(state, request.cookies.get(UPSTREAM_COOKIE))
    if flow is None or not same(flow["state"], request.query_params.get("state", "")):
        return page(state, "Sign-in expired", "Start again from the application.", 400)
    if request.query_params.get("error"):
        return page(
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
                actor=audit_actor("upstream", client_id=params.get("client_id")),
                action="auth.signin",
                outcome="denied",
                detail={"method": "upstream", "why": str(exc)[:200]},
            )
            session.commit()
        return page(state, "Sign-in refused", str(exc), 403)
    subject = str(claims.get(state.cfg.upstream_subject_claim) or "")
    if not subject:
        return page(state, "Sign-in refused", "The provider did not say who you are.", 403)
    with Session(state.engine, expire_on_commit=False) as session:
        try:
            check_request(session, params)
        except (BadRequest, OAuthError):
            return page(state, "This sign-in link is not valid", "Start again from the application.", 400)
        response = finish_sign_in(
            state,
            session,
            params,
            subject=subject,
            amr=[str(a) for a in claims.get("amr", [])] or ["ext"],
            method="upstream",
        )
    response.delete_cookie(UPSTREAM_COOKIE, path="/oauth")
    return response
