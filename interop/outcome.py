"""OperationOutcome: every error under /fhir, with the right HTTP status and issue code.

Domain errors take their status and issue type from the one table both surfaces use
(directory/http/statuses.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi.responses import JSONResponse

from directory.errors import DomainError
from directory.http.statuses import answer_for
from interop.mapping.common import MappingError
from interop.systems import FHIR_JSON

T = TypeVar("T")


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


def from_domain(exc: DomainError) -> FhirError:
    """The FHIR status and issue type of a domain error (the FHIR columns of the one table,
    directory/http/statuses.py)."""
    answer = answer_for(exc)
    where = exc.data.get("where") if isinstance(exc.data.get("where"), str) else None
    return FhirError(answer.fhir, answer.issue, exc.message, where=where)


_INVALID = ("invalid", "structure", "required", "code-invalid")


def from_mapping(exc: MappingError) -> FhirError:
    """A resource that does not fit the domain: 404 when it references nothing we hold, 400 when it
    is not valid, 422 when it is valid FHIR the directory does not take (e.g. not-supported)."""
    status = 404 if exc.code == "not-found" else 400 if exc.code in _INVALID else 422
    return FhirError(status, exc.code, exc.message, where=exc.where)


def mapped(mapper: Callable[[dict[str, Any]], T], body: dict[str, Any]) -> T:
    """An inbound mapper's reading of a body, its MappingError answered as `from_mapping` says."""
    try:
        return mapper(body)
    except MappingError as exc:
        raise from_mapping(exc) from None


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
