"""RFC 9457 problem+json for every error the app API returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from directory.audit_writer import AuditUnavailable
from directory.errors import DomainError
from directory.http.statuses import answer_for

log = logging.getLogger("childindex.api")

BUSY_ERRORS: tuple[type[Exception], ...] = (OperationalError, PoolTimeout, AuditUnavailable, ConnectionError)
"""What the database raises when a request could not get a lock, a connection or its answer in
time (see `directory.db.Limits`), or was cut off; an audit event that could not be made durable
now (`AuditUnavailable`); and a service it needs that could not be reached (ConnectionError: e.g.
search.port.SearchUnavailable, an Elasticsearch cluster that cannot answer): every surface answers
503 with Retry-After."""
RETRY_AFTER_SECONDS = 2
"""What a busy answer's Retry-After says."""
PROBLEM = "application/problem+json"
TYPE_BASE = "https://childindex.example/problems/"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": TYPE_BASE + "<code>: the kind of problem, stable"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong and what to do about it"},
        "instance": {"type": ["string", "null"], "description": "The request id, to quote"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
    "description": "An RFC 9457 problem: every error of the app API (a domain error adds its own "
    "data, e.g. who holds the open CAF).",
}
"""The OpenAPI schema of `problem`'s body."""


def status_for(error: DomainError) -> int:
    """The HTTP status a domain error maps to (the app API's column of `statuses.ANSWERS`)."""
    return answer_for(error).api


def problem(
    status: int, title: str, detail: str, *, code: str, request: Request, **extra: Any
) -> JSONResponse:
    """Build a problem+json response."""
    body = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": getattr(request.state, "request_id", None),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem(status_for(exc), exc.title, exc.message, code=exc.code, request=request, **exc.data)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _where(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(
            422,
            "The details given are not valid",
            summary,
            code="invalid-input",
            request=request,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "The request was refused."
        code = {
            401: "unauthenticated",
            403: "forbidden",
            404: "not-found",
            405: "method-not-allowed",
            429: "too-many-requests",
        }.get(exc.status_code, "http-error")
        response = problem(exc.status_code, detail, detail, code=code, request=request)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in request %s", getattr(request.state, "request_id", "-"))
        return problem(
            500,
            "Something went wrong on our side",
            "The change was not saved. Try again; if it keeps happening tell the service desk "
            "and quote the instance id.",
            code="internal-error",
            request=request,
        )


def install_database_handlers(app: FastAPI) -> None:
    """A database rule that the domain did not catch first is still a clear 409, a value the database
    cannot hold a 422, and a database too busy to answer in time a 503 with Retry-After: never a 500."""
    from sqlalchemy.exc import DataError, IntegrityError

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity rule refused a write in request %s", getattr(request.state, "request_id", "-"))
        return problem(
            409,
            "This conflicts with the record as it stands",
            "The directory refused the change because it breaks one of its rules "
            "(for example a second open CAF, a duplicate identifier, or a TAC too small "
            "to convene). Reload the record and try again.",
            code="conflict",
            request=request,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the checks before it let through but the database cannot hold (too long for its
        # column, out of range): the caller's input, so a 422, never a 500.
        log.warning("database refused a value in request %s", getattr(request.state, "request_id", "-"))
        return problem(
            422,
            "A value does not fit",
            "A value given is too long or out of range for the directory; nothing was changed.",
            code="value-does-not-fit",
            request=request,
        )

    async def _busy(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "database busy or unavailable in request %s: %s",
            getattr(request.state, "request_id", "-"),
            type(exc).__name__,
        )
        response = problem(
            503,
            "The directory is busy",
            "Nothing was changed. Try again in a moment.",
            code="busy",
            request=request,
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    for kind in BUSY_ERRORS:
        app.add_exception_handler(kind, _busy)
