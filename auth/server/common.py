"""What the authorization server's endpoint families share: the OAuth error and token responses,
the scope list parser, and the constant-time comparison and HMAC its checks use."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi.responses import JSONResponse

from auth.errors import OAuthError
from auth.state import AuthState

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    """An OAuth error (RFC 6749 5.2) as JSON, never cached; a 401 asks for client authentication."""
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="childindex"'
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=headers,
    )


def token_response(body: dict[str, Any]) -> JSONResponse:
    """A token endpoint's answer (a token, an introspection), never cached."""
    return JSONResponse(body, headers=dict(NO_STORE))


def same(a: str, b: str) -> bool:
    """Constant-time equality of two texts, whatever characters a caller put in one of them
    (hmac.compare_digest refuses non-ASCII text with a TypeError)."""
    return hmac.compare_digest(a.encode(), b.encode())


def sign(state: AuthState, value: str) -> str:
    """HMAC-SHA-256 of `value` under the app's secret key (CSRF tokens, the upstream flow's cookie)."""
    return hmac.new(state.cfg.secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def scopes(value: str | None) -> list[str]:
    """The scopes of a space-separated `scope` parameter."""
    return [s for s in (value or "").split() if s]
