"""OperationOutcome: every error under /fhir, with the right HTTP status and issue code.

Domain errors (directory.errors) are mapped to FHIR here, once.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from directory.errors import (
    CafAlreadyOpen,
    Conflict,
    ConsentRequired,
    DomainError,
    InvalidInput,
    NotAllowed,
    NotFound,
    RuleBroken,
    StaleVersion,
)
from interop.systems import FHIR_JSON


class FhirError(Exception):
    """An error to answer with an OperationOutcome."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        where: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.where = where
        self.headers = headers or {}


# (domain error, HTTP status, issue type); the first that matches wins, so subclasses come first.
_DOMAIN: list[tuple[type[DomainError], int, str]] = [
    (NotFound, 404, "not-found"),
    # "conflict", not "duplicate": the caller did not send the same resource twice, the child's
    # one open CAF is held by someone else, and the message names whom to contact
    (CafAlreadyOpen, 409, "conflict"),
    (StaleVersion, 412, "conflict"),
    (Conflict, 409, "conflict"),
    (NotAllowed, 403, "forbidden"),
    (ConsentRequired, 422, "business-rule"),
    (RuleBroken, 422, "business-rule"),
    (InvalidInput, 400, "invalid"),
]


def from_domain(exc: DomainError) -> FhirError:
    """The FHIR status and issue type of a domain error."""
    status, code = next(((s, c) for kind, s, c in _DOMAIN if isinstance(exc, kind)), (400, "processing"))
    message = exc.message
    where = exc.data.get("where") if isinstance(exc.data.get("where"), str) else None
    return FhirError(status, code, message, where=where)


def operation_outcome(
    code: str, message: str, *, severity: str = "error", where: str | None = None
) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if where:
        issue["expression"] = [where]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A FHIR JSON response."""
    return FhirJSONResponse(body, status_code=status, headers=headers)


class FhirJSONResponse(JSONResponse):
    """JSON with the FHIR media type (and no ASCII escaping of names)."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        """Serialise compactly as UTF-8."""
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(err: FhirError) -> JSONResponse:
    """The OperationOutcome response of an error."""
    return fhir_json(operation_outcome(err.code, err.message, where=err.where), err.status, err.headers)


_HTTP_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


def for_http(status: int, message: str, headers: dict[str, str] | None = None) -> FhirError:
    """An error for a plain HTTP status (auth refusals, routing)."""
    return FhirError(status, _HTTP_CODES.get(status, "exception"), message, headers=headers)
