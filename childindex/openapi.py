"""The OpenAPI document, truthful about what can go wrong.

FastAPI documents what a route answers when all goes well. What can go wrong is decided in a few
places shared by many routes (the input guard, the resource server, the domain's errors mapped
once per surface, the database's busy answer), so it is documented here, once, from what each
route is: its surface (which error format), whether it needs a token (401, 403), whether it is
rate limited (429), whether its path names a record (404), whether it writes (409, 422), whether
it takes a body (413; 415 for FHIR JSON) and so on. A new route is documented like its
neighbours without a word of its own. The /fhir and /oauth routes describe what they take
(interop/openapi.py, auth/openapi.py); their errors' formats are added here like the others.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from auth import openapi as oauth_doc
from auth.policy import FHIR_CHILD_TYPES, Policy, all_routes, declared_policy
from directory.http.deps import PURPOSE_HEADER
from directory.http.problems import PROBLEM, PROBLEM_SCHEMA
from directory.models import Purpose
from interop import openapi as fhir_doc
from interop.systems import FHIR_JSON

REF = "#/components/schemas/"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# What each status means on this service (the same words on every route that can answer it).
MEANING = {
    400: "The request cannot be read: a malformed value, a NUL character, a header too long, "
    "JSON nested too deep, or an unknown purpose of use",
    401: "No valid access token (send 'Authorization: Bearer ...')",
    403: "Refused: no current grant, the role or the token's scopes do not allow it, or the record's "
    "rules (shielding, sensitive services) do not",
    404: "No such record, or it is not shown to you",
    406: "Only FHIR JSON is spoken here",
    409: "This conflicts with the record as it stands (a second open CAF names whom to contact)",
    412: "The version has moved on (If-Match), or If-None-Exist matches more than one",
    413: "The request body, or a Bundle, is larger than this service takes",
    415: "The body must be FHIR JSON (application/fhir+json)",
    422: "The details are not valid, or a rule of the directory refuses the change",
    428: "Send If-Match with the version you read (the ETag of the record), so no change is lost",
    429: "Too many requests: try again after Retry-After seconds",
    503: "The directory is busy; nothing was changed: try again after Retry-After seconds",
}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` describe every route's errors (built once, on the first call)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app, generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe(app: FastAPI, doc: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses, headers and security of every operation to FastAPI's document."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update({"Problem": PROBLEM_SCHEMA, **fhir_doc.SCHEMAS, **oauth_doc.SCHEMAS})
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from /oauth/token; its subject needs a current access grant.",
        }
    }
    for route in all_routes(app):
        if not getattr(route, "include_in_schema", False) or not route.methods:
            continue
        for method in route.methods:
            op = doc.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if op is not None:
                _document(op, route, method, route.path_format)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in str(doc.get("paths")):
            schemas.pop(unused, None)
    return doc


def _document(op: dict[str, Any], route: Any, method: str, path: str) -> None:
    policy = declared_policy(route)
    name = getattr(route, "name", "") or ""
    responses: dict[str, Any] = op.setdefault("responses", {})
    for code in [s for s in responses if s.startswith("3")]:
        responses[code].pop("content", None)  # a redirect carries no body here
    if path.startswith(("/oauth", "/.well-known")):
        return  # the authorization server documents its protocol's answers itself (auth/openapi.py)
    fhir = path.startswith("/fhir")
    media, schema = (FHIR_JSON, "OperationOutcome") if fhir else (PROBLEM, "Problem")
    # FastAPI's own validation error is never what is sent: the app API sends problem+json, FHIR 400.
    for code, entry in list(responses.items()):
        plain = entry.get("content", {}).get("application/json", {})
        if plain.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
            del entry["content"]["application/json"]
            if not entry["content"]:
                del responses[code]
    statuses = (_fhir_statuses if fhir else _api_statuses)(op, policy, method, path, name)
    for status in sorted(statuses):
        entry = responses.setdefault(str(status), {"description": MEANING[status]})
        entry.setdefault("content", {})[media] = {"schema": {"$ref": REF + schema}}
    op["responses"] = dict(sorted(responses.items()))
    if isinstance(policy, Policy):
        op["security"] = [{"bearer": []}]
        _add_header(op, _PURPOSE)
        if name == "read_child" or name in {f"fhir_read_{k}" for k in FHIR_CHILD_TYPES}:
            _add_header(op, _SHIELD_OVERRIDE)


def _writes(method: str, name: str) -> bool:
    return method in _BODY_METHODS and "search" not in name and "match" not in name


def _api_statuses(op: dict[str, Any], policy: Any, method: str, path: str, name: str) -> set[int]:
    """The errors an /api/v1 route (or another JSON route of the app) can answer with."""
    out = {400}
    if isinstance(policy, Policy):
        out |= {401, 403, 503}
        if policy.rate_limited:
            out.add(429)
    if "{" in path:
        out.add(404)
    if _writes(method, name):
        out |= {409, 422}
    if method in _BODY_METHODS:
        out.add(413)
    if op.get("parameters") or op.get("requestBody"):
        out.add(422)
    if any(
        p.get("in") == "header" and p.get("name", "").lower() == "if-match" for p in op.get("parameters", [])
    ):
        out |= {412, 428}  # a change against a version: stale, or none named
    return out


def _fhir_statuses(op: dict[str, Any], policy: Any, method: str, path: str, name: str) -> set[int]:
    """The errors a /fhir route can answer with (each as an OperationOutcome)."""
    out = {400}
    if isinstance(policy, Policy):
        out |= {401, 403, 503}
        if policy.rate_limited:
            out.add(429)
    own = name.endswith("_Subscription")  # a client's own subscriptions: no search, no versions
    writes = name.startswith(("fhir_create_", "fhir_update_", "fhir_bundle")) and not own
    if "{" in path or writes:
        out.add(404)
    if (name.startswith(("fhir_search_", "fhir_create_")) or name == "fhir_bundle") and not own:
        out.add(406)  # _format, also inside If-None-Exist and a Bundle's searches
    if writes:
        out |= {409, 412, 422}
    if method in _BODY_METHODS:
        out.add(413)
    if FHIR_JSON in op.get("requestBody", {}).get("content", {}):
        out.add(415)
    return out


def _header(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


_PURPOSE = _header(
    PURPOSE_HEADER,
    "Why you are looking: reads of a child's record and searches need one (an unknown one is 400).",
    {"type": "string", "enum": [p.value for p in Purpose]},
)
_SHIELD_OVERRIDE = _header(
    "X-Shield-Override-Reason",
    "Child protection only: why a shielded record must be seen in full this once (audited, with an alert).",
    {"type": "string", "maxLength": 500},
)


def _add_header(op: dict[str, Any], header: dict[str, Any]) -> None:
    params: list[dict[str, Any]] = op.setdefault("parameters", [])
    if not any(
        p.get("in") == "header" and p.get("name", "").lower() == header["name"].lower() for p in params
    ):
        params.append(header)
