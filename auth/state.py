"""What the resource server (auth/deps.py) and the authorization server (auth/server/) share: the
configuration, the engine, the signing keys, the token validator, the rate limiter and the pages.

`auth.wiring.install` builds one `AuthState` and keeps it on `app.state.auth`; routes and
dependencies find it with `auth_state(request)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.engine import Engine

from auth.config import AuthConfig
from auth.keys import KeyStore
from auth.pages import PlainPages, SignInPages
from auth.ratelimit import SubjectLimiter
from auth.tokens import TokenValidator


@dataclass
class AuthState:
    """What the resource and authorization servers share, kept on app.state.auth."""

    cfg: AuthConfig
    engine: Engine
    keys: KeyStore
    validator: TokenValidator
    limiter: SubjectLimiter
    pages: SignInPages = field(default_factory=PlainPages)  # the app may install its own layout


def auth_state(request: Request) -> AuthState:
    """The AuthState wired by create_app."""
    return request.app.state.auth  # type: ignore[no-any-return]
