"""Refusals of auth/: a status, a stable code and a message the person can act on."""

from __future__ import annotations


class AuthRefused(Exception):
    """A request refused by authentication (401) or authorisation (403, 429)."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def unauthenticated(code: str, message: str) -> AuthRefused:
    """A 401 that tells the client to come back with a (valid) bearer token."""
    error = "invalid_token" if code != "no-token" else None
    challenge = 'Bearer realm="childindex"'
    if error:
        safe = message.replace('"', "'").encode("ascii", "replace").decode()
        challenge += f', error="{error}", error_description="{safe}"'
    return AuthRefused(401, code, message, headers={"WWW-Authenticate": challenge})


def forbidden(code: str, message: str) -> AuthRefused:
    """A 403 whose message says what to do about it."""
    return AuthRefused(403, code, message)


class OAuthError(Exception):
    """An error of the OAuth endpoints, rendered as RFC 6749 section 5.2 JSON."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
