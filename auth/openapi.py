"""The /oauth endpoints' part of the OpenAPI document (pure data): what each takes and answers.

The endpoints read their forms and query strings themselves, as RFC 6749 defines them, so each
passes this as `openapi_extra`. Errors are RFC 6749 section 5.2 JSON (`OAuthError`); a busy
database is the app's problem+json 503; the pages of the authorization endpoint are HTML.
"""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/"
PROBLEM = "application/problem+json"
FORM = "application/x-www-form-urlencoded"

SCHEMAS: dict[str, Any] = {
    "OAuthError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "examples": ["invalid_request", "invalid_client", "invalid_grant"]},
            "error_description": {"type": "string"},
        },
        "description": "An OAuth 2.0 error (RFC 6749 section 5.2) with a description to act on.",
    },
    "TokenResponse": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
            "refresh_token": {"type": "string"},
        },
    },
}

_TEXT = {"type": "string", "maxLength": 200}
_CLIENT = {
    "client_id": _TEXT,
    "client_assertion_type": {
        "type": "string",
        "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
    },
    "client_assertion": {"type": "string", "maxLength": 4000},
}
_AUTHORIZE = {
    "response_type": {"type": "string", "enum": ["code"]},
    "client_id": _TEXT,
    "redirect_uri": _TEXT,
    "scope": _TEXT,
    "state": _TEXT,
    "code_challenge": _TEXT,
    "code_challenge_method": {"type": "string", "enum": ["S256"]},
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF + schema}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    """OAuth error JSON for each status (400 includes the app's refusals of unreadable input,
    413 a form larger than the app takes)."""
    words = {
        400: "The request is not valid (invalid_request, invalid_grant, invalid_scope, ...)",
        401: "The client could not be authenticated (invalid_client)",
        413: "The form is larger than this service takes",
    }
    return {str(s): _json("OAuthError", words[s]) for s in statuses}


_BUSY = {
    "503": {
        "description": "The directory is busy: try again after Retry-After seconds",
        "content": {PROBLEM: {"schema": {"$ref": REF + "Problem"}}},
    }
}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _form(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {FORM: {"schema": schema}}}


def _query(properties: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "required": False, "schema": s} for n, s in properties.items()]


TOKEN: dict[str, Any] = {
    "requestBody": _form(
        {
            "grant_type": {
                "type": "string",
                "enum": ["client_credentials", "authorization_code", "refresh_token"],
            },
            "scope": _TEXT,
            "code": _TEXT,
            "redirect_uri": _TEXT,
            "code_verifier": {"type": "string", "maxLength": 128},
            "refresh_token": _TEXT,
            **_CLIENT,
        },
        ["grant_type"],
    ),
    "responses": {
        "200": _json("TokenResponse", "An access token (and, for sign-ins, a refresh token)"),
        **_errors(400, 401, 413),
        **_BUSY,
    },
}

REVOKE: dict[str, Any] = {
    "requestBody": _form({"token": _TEXT, "token_type_hint": _TEXT, **_CLIENT}),
    "responses": {
        "200": {"description": "Revoked, or was not valid (RFC 7009)"},
        **_errors(400, 401, 413),
        **_BUSY,
    },
}

INTROSPECT: dict[str, Any] = {
    "requestBody": _form({"token": _TEXT, "token_type_hint": _TEXT, **_CLIENT}),
    "responses": {
        "200": {
            "description": "Whether the token is active, and what it says (RFC 7662)",
            "content": {"application/json": {"schema": {"type": "object", "required": ["active"]}}},
        },
        **_errors(400, 401, 413),
        **_BUSY,
    },
}

AUTHORIZE_FORM: dict[str, Any] = {
    "parameters": _query({**_AUTHORIZE, "idp": {"type": "string", "enum": ["upstream"]}}),
    "responses": {
        "200": {"description": "The sign-in page", "content": _HTML},
        "303": {"description": "Back to the client with an error, or on to the upstream provider"},
        "400": {
            "description": "This sign-in link is not valid",
            "content": {**_HTML, **_errors(400)["400"]["content"]},
        },
        **_BUSY,
    },
}

AUTHORIZE_SUBMIT: dict[str, Any] = {
    "requestBody": _form(
        {**_AUTHORIZE, "username": _TEXT, "password": _TEXT, "totp": _TEXT, "csrf_token": _TEXT}
    ),
    "responses": {
        "303": {"description": "Signed in: back to the client with a one-time code (or an error)"},
        "400": {
            "description": "A field is missing, the page expired, or the link is not valid",
            "content": {**_HTML, **_errors(400)["400"]["content"]},
        },
        "401": {
            "description": "The username, password or code is wrong (one message for all three)",
            "content": _HTML,
        },
        **_errors(413),
        **_BUSY,
    },
}

UPSTREAM_CALLBACK: dict[str, Any] = {
    "parameters": _query({"state": _TEXT, "code": _TEXT, "error": _TEXT, "error_description": _TEXT}),
    "responses": {
        "303": {"description": "Signed in: back to the client with a one-time code"},
        "400": {
            "description": "The sign-in expired or was not completed",
            "content": {**_HTML, **_errors(400)["400"]["content"]},
        },
        "403": {"description": "The provider's answer was refused", "content": _HTML},
        **_BUSY,
    },
}


def public_json(description: str) -> dict[str, Any]:
    """Metadata and key sets: JSON, or 400 when the address itself cannot be read."""
    return {
        "responses": {
            "200": {
                "description": description,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_errors(400),
        }
    }
