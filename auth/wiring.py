"""install(): what create_app calls to put the whole app behind auth/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.responses import Response

from auth import admin, server
from auth.config import AuthConfig
from auth.deps import AuthState, actor_resolver
from auth.errors import AuthRefused, OAuthError
from auth.keys import KeyStore
from auth.limits import limit_store
from auth.ratelimit import SubjectLimiter
from auth.tokens import TokenValidator
from directory.http.problems import BUSY_ERRORS, RETRY_AFTER_SECONDS, problem

Handler = Callable[[Request, Any], Awaitable[Response]]


def install(app: FastAPI, settings: Any, engine: Engine) -> AuthState:
    """Wire the resource server (actor resolver), the /oauth routes and the grants admin API."""
    cfg = AuthConfig.from_settings(settings)
    keys = KeyStore(engine, alg=cfg.signing_alg, max_age_days=cfg.signing_key_max_age_days)
    state = AuthState(
        cfg=cfg,
        engine=engine,
        keys=keys,
        validator=TokenValidator(cfg, keys),
        limiter=SubjectLimiter(
            limit_store(engine),
            per_minute=cfg.search_rate_per_minute,
            trawl_window_seconds=cfg.trawl_window_seconds,
            trawl_distinct=cfg.trawl_distinct_children,
            burst_window_seconds=cfg.trawl_burst_seconds,
            burst_distinct=cfg.trawl_burst_children,
        ),
    )
    app.state.auth = state
    app.state.actor_resolver = actor_resolver

    @app.exception_handler(AuthRefused)
    async def _refused(request: Request, exc: AuthRefused) -> JSONResponse:
        titles = {
            401: "Sign-in is required",
            403: "Access refused",
            429: "Too many requests",
            503: "Busy",
        }
        response = problem(
            exc.status,
            titles.get(exc.status, "Refused"),
            exc.message,
            code=exc.code,
            request=request,
        )
        for key, value in exc.headers.items():
            response.headers[key] = value
        return response

    @app.exception_handler(OAuthError)
    async def _oauth(request: Request, exc: OAuthError) -> JSONResponse:
        return server.oauth_error_response(exc)

    for kind in BUSY_ERRORS:
        app.add_exception_handler(kind, _oauth_busy(cast(Handler, app.exception_handlers[kind])))
    app.include_router(server.router)
    app.include_router(admin.router)
    app.include_router(admin.clients_router)
    return state


def _oauth_busy(previous: Handler) -> Handler:
    """Under /oauth a database too busy to answer in time is an OAuth error (RFC 6749 5.2) with
    Retry-After; elsewhere the handler installed before (problem+json)."""

    async def handler(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith("/oauth/"):
            return await previous(request, exc)
        response = server.oauth_error_response(
            OAuthError(
                "temporarily_unavailable",
                "The service is busy; nothing was changed. Try again in a moment.",
                status=503,
            )
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    return handler
