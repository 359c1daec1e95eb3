"""install_fhir(): what create_app calls to mount /fhir, its OperationOutcome errors and the notifier."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from auth.errors import AuthRefused
from directory.errors import DomainError
from directory.http.problems import BUSY_ERRORS, RETRY_AFTER_SECONDS
from interop.api.routes import build_router
from interop.outcome import FhirError, error_response, for_http, from_domain

log = logging.getLogger("childindex.fhir")
Handler = Callable[[Request, Any], Awaitable[Response]]


def to_fhir_error(exc: BaseException) -> FhirError:
    """Any error raised while serving /fhir, as the FhirError to answer with."""
    if isinstance(exc, FhirError):
        return exc
    if isinstance(exc, DomainError):
        return from_domain(exc)
    if isinstance(exc, AuthRefused):
        return for_http(exc.status, exc.message, exc.headers)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "The request was refused."
        if exc.status_code == 404:
            detail = "This server has no such FHIR endpoint; see /fhir/metadata."
        return for_http(exc.status_code, detail, dict(exc.headers or {}))
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return FhirError(400, "invalid", f"{where}: {first.get('msg', 'invalid')}", where=where or None)
    if isinstance(exc, IntegrityError):
        return FhirError(
            409,
            "conflict",
            "The directory refused the change because it breaks one of its rules "
            "(for example a second open CAF or a duplicate identifier). Nothing was changed.",
        )
    if isinstance(exc, DataError):
        return FhirError(
            400, "invalid", "A value given is too long or out of range for the directory; nothing changed."
        )
    if isinstance(exc, BUSY_ERRORS):
        return FhirError(
            503,
            "transient",
            "The directory is busy; nothing was changed. Try again in a moment.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return FhirError(
        500,
        "exception",
        "Something went wrong on our side; nothing was changed. Quote the "
        "X-Request-ID header to the service desk.",
    )


def _fhir_first(previous: Handler | None) -> Handler:
    async def handler(request: Request, exc: Any) -> Response:
        if request.url.path.startswith("/fhir") or previous is None:
            err = to_fhir_error(exc)
            if err.status >= 500:
                log.exception("unexpected error under /fhir", exc_info=exc)
            return error_response(err)
        return await previous(request, exc)

    return handler


def install_fhir(app: FastAPI, settings: Any, engine: Engine) -> None:
    """Mount /fhir, answer its errors with OperationOutcome, and start the notifier with the app."""
    app.state.fhir_max_bundle_entries = settings.fhir_max_bundle_entries
    app.state.fhir_max_body_bytes = settings.fhir_max_body_bytes
    app.include_router(build_router(before_reads=(_install_bulk(app, settings, engine),)))
    kinds: list[type[BaseException]] = [
        FhirError,
        DomainError,
        AuthRefused,
        StarletteHTTPException,
        RequestValidationError,
        IntegrityError,
        DataError,
        *BUSY_ERRORS,
        Exception,
    ]
    for kind in kinds:
        previous = cast(Handler | None, app.exception_handlers.get(kind))
        app.exception_handlers[kind] = _fhir_first(previous)
    if settings.notify_enabled:
        from interop.notify import NotificationWorker

        worker = NotificationWorker(
            engine,
            interval_seconds=settings.notify_interval_seconds,
            max_attempts=settings.notify_max_attempts,
            base_url=str(settings.issuer).rstrip("/") + "/fhir",
        )
        app.state.notifier = worker
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(a: Any) -> AsyncIterator[Any]:
            worker.start()
            try:
                async with inner(a) as state:
                    yield state
            finally:
                worker.stop()

        app.router.lifespan_context = lifespan


def _install_bulk(app: FastAPI, settings: Any, engine: Engine) -> Callable[[APIRouter], None]:
    """The Bulk Data export's runtime (where its files go, how long they stay: docs/bulk.md), and
    what adds its routes."""
    from pathlib import Path

    from interop.bulk.jobs import BulkConfig
    from interop.bulk.routes import BulkRuntime, add_bulk_routes

    cfg = BulkConfig(
        directory=Path(settings.fhir_bulk_dir),
        expire_minutes=settings.fhir_bulk_expire_minutes,
        batch_size=settings.fhir_bulk_batch_size,
        stale_seconds=settings.fhir_bulk_stale_seconds,
    )
    app.state.bulk = BulkRuntime(engine, cfg)
    return add_bulk_routes
