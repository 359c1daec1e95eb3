"""The /fhir routes' part of the OpenAPI document (pure data, no I/O).

The routes read their search parameters and bodies straight from the request (FHIR's own rules,
not FastAPI's), so without this the document would show them taking nothing. Each route passes
what it takes as `openapi_extra`: search parameters from the same table the parser uses
(params.SEARCH_PARAMS), request bodies as FHIR JSON with the elements the mapping reads, and the
headers FHIR defines (Prefer, If-Match, If-None-Exist). Error responses are added for every
route in one place by the app (childindex/openapi.py), from `ERRORS` below.
"""

from __future__ import annotations

from typing import Any

from interop import params as P
from interop import systems as S

REF = "#/components/schemas/"

# Reusable FHIR shapes: loose on purpose (additional elements are allowed, as FHIR allows them),
# but with the elements this server reads, so generated requests reach its checks.
_STRING = {"type": "string", "maxLength": 200}
_REFERENCE = {
    "type": "object",
    "properties": {"reference": _STRING, "display": _STRING},
    "additionalProperties": True,
}
_CODING = {
    "type": "object",
    "properties": {"system": _STRING, "code": {"type": "string", "maxLength": 64}, "display": _STRING},
}
_CONCEPT = {"type": "object", "properties": {"coding": {"type": "array", "items": _CODING, "maxItems": 3}}}
_DATE = {"type": "string", "format": "date"}
_PERIOD = {"type": "object", "properties": {"start": _DATE, "end": _DATE}}
_EXTENSION = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "enum": [getattr(S, n) for n in dir(S) if n.startswith("EXT_")]},
        "valueReference": _REFERENCE,
        "valueString": _STRING,
        "valueCoding": _CODING,
        "valueCode": {"type": "string", "maxLength": 64},
        "valueBoolean": {"type": "boolean"},
        "valueDate": _DATE,
    },
}
_EXTENSIONS = {"type": "array", "items": _EXTENSION, "maxItems": 4}
_META = {"type": "object", "properties": {"versionId": {"type": "string", "pattern": "^[0-9]{1,9}$"}}}
_MEMBER = {
    "type": "object",
    "properties": {"member": _REFERENCE, "role": {"type": "array", "items": _CONCEPT, "maxItems": 2}},
}

# The elements each writable type's mapping reads (interop/mapping/, the *_in functions).
_ELEMENTS: dict[str, dict[str, Any]] = {
    "EpisodeOfCare": {
        "status": {"type": "string", "enum": ["planned", "active", "finished", "cancelled"]},
        "patient": _REFERENCE,
        "careManager": _REFERENCE,
        "managingOrganization": _REFERENCE,
        "period": _PERIOD,
        "type": {"type": "array", "items": _CONCEPT, "maxItems": 2},
    },
    "PractitionerRole": {
        "active": {"type": "boolean"},
        "practitioner": _REFERENCE,
        "organization": _REFERENCE,
        "code": {"type": "array", "items": _CONCEPT, "maxItems": 2},
        "telecom": {
            "type": "array",
            "maxItems": 2,
            "items": {"type": "object", "properties": {"system": _STRING, "value": _STRING}},
        },
    },
    "Flag": {
        "status": {"type": "string", "enum": ["active", "inactive", "entered-in-error"]},
        "code": _CONCEPT,
        "subject": _REFERENCE,
        "author": _REFERENCE,
        "period": _PERIOD,
    },
    "Consent": {
        "status": {"type": "string", "enum": ["proposed", "active", "inactive", "rejected"]},
        "patient": _REFERENCE,
        "scope": _CONCEPT,
        "category": {"type": "array", "items": _CONCEPT, "maxItems": 2},
        "dateTime": {"type": "string", "format": "date-time"},
        "performer": {"type": "array", "items": _REFERENCE, "maxItems": 2},
    },
    "CareTeam": {
        "status": {"type": "string", "enum": ["proposed", "active", "suspended", "inactive"]},
        "subject": _REFERENCE,
        "participant": {"type": "array", "items": _MEMBER, "maxItems": 5},
    },
    "Subscription": {
        "status": {"type": "string", "enum": ["requested", "active"]},
        "reason": _STRING,
        "criteria": {"type": "string", "maxLength": 200},
        "channel": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["rest-hook"]},
                "endpoint": {"type": "string", "maxLength": 200},
                "payload": {"type": "string", "enum": [S.FHIR_JSON]},
            },
        },
    },
}


def resource_schema(kind: str) -> dict[str, Any]:
    """A request body of type `kind`: FHIR JSON with the elements this server reads."""
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"type": "string", "enum": [kind]},
            "id": {"type": "string", "maxLength": 64},
            "meta": _META,
            "extension": _EXTENSIONS,
            **_ELEMENTS.get(kind, {}),
        },
        "additionalProperties": True,
    }


SCHEMAS: dict[str, Any] = {
    "FhirResource": {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}},
        "additionalProperties": True,
        "description": "A FHIR R4 resource (see /fhir/metadata for what this server supports).",
    },
    "Bundle": {
        "type": "object",
        "required": ["resourceType", "type"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Bundle"]},
            "type": {"type": "string"},
            "total": {"type": "integer"},
            "entry": {"type": "array", "items": {"type": "object"}},
        },
        "additionalProperties": True,
    },
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                        "expression": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        "additionalProperties": True,
        "description": "Every error under /fhir, with the FHIR issue type and a message to act on.",
    },
}


def _fhir_content(schema: str) -> dict[str, Any]:
    return {S.FHIR_JSON: {"schema": {"$ref": REF + schema}}}


def _body(kind: str) -> dict[str, Any]:
    return {"required": True, "content": {S.FHIR_JSON: {"schema": resource_schema(kind)}}}


def _header(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


PREFER_HANDLING = _header(
    "Prefer",
    "handling=lenient (the default) drops unknown search parameters (they are left out of the self "
    "link and reported in the Bundle); handling=strict refuses them with 400.",
    enum=["handling=strict", "handling=lenient"],
)
PREFER_RETURN = _header(
    "Prefer",
    "return=representation (the default) or return=OperationOutcome; return=minimal answers with no body.",
    maxLength=100,
)


def _search_schema(kind: str) -> dict[str, Any]:
    """Each search parameter of `kind`, and the result parameters, as string values."""
    props: dict[str, Any] = {
        name: {
            "type": "string",
            "maxLength": P.MAX_STRING_LENGTH if kind_of == "string" else 200,
            "description": P.PARAM_DOCS.get(name, f"a {kind_of} parameter"),
        }
        for name, kind_of in P.SEARCH_PARAMS[kind].items()
    }
    props.update(
        {
            "_count": {"type": "string", "pattern": "^[0-9]{1,3}$"},
            "_offset": {"type": "string", "pattern": "^[0-9]{1,5}$"},
            "_summary": {"type": "string", "enum": ["true", "false", "count"]},
            "_elements": {"type": "string", "maxLength": 200},
            "_include": {"type": "string", "maxLength": 100},
            "_revinclude": {"type": "string", "maxLength": 100},
        }
    )
    return {"type": "object", "properties": props}


def search(kind: str, *, post: bool) -> dict[str, Any]:
    """`openapi_extra` of GET /fhir/{kind} (query) or POST /fhir/{kind}/_search (form)."""
    schema = _search_schema(kind)
    extra: dict[str, Any] = {
        "parameters": [PREFER_HANDLING],
        "responses": {"200": {"description": "A searchset Bundle", "content": _fhir_content("Bundle")}},
    }
    if post:
        extra["requestBody"] = {
            "required": False,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    else:
        extra["parameters"] += [
            {"name": name, "in": "query", "required": False, "schema": prop}
            for name, prop in schema["properties"].items()
        ]
    return extra


def read(kind: str) -> dict[str, Any]:
    """`openapi_extra` of GET /fhir/{kind}/{id}."""
    return {"responses": {"200": {"description": f"The {kind}", "content": _fhir_content("FhirResource")}}}


def create(kind: str) -> dict[str, Any]:
    """`openapi_extra` of POST /fhir/{kind} (conditional with If-None-Exist)."""
    written = {"description": "", "content": _fhir_content("FhirResource")}
    return {
        "requestBody": _body(kind),
        "parameters": [
            PREFER_RETURN,
            _header(
                "If-None-Exist",
                "A search (e.g. patient=Patient/..&status=active): the one existing match is "
                "returned (200) instead of creating another; several matches are refused (412).",
                maxLength=500,
            ),
        ],
        "responses": {
            "200": {
                **written,
                "description": "Already there (If-None-Exist), or done and shown as it stands",
            },
            "201": {**written, "description": f"The {kind} was created"},
        },
    }


def update(kind: str) -> dict[str, Any]:
    """`openapi_extra` of PUT /fhir/{kind}/{id} (If-Match: 412 when the version moved on)."""
    return {
        "requestBody": _body(kind),
        "parameters": [
            PREFER_RETURN,
            _header("If-Match", 'The version you read, e.g. W/"3"', pattern='^W/"[0-9]{1,9}"$'),
        ],
        "responses": {
            "200": {"description": f"The {kind} as it now stands", "content": _fhir_content("FhirResource")}
        },
    }


def operation(kind: str, *, status: int = 200, description: str = "") -> dict[str, Any]:
    """`openapi_extra` of a route taking a `kind` body ($match: Parameters; a Bundle; a Subscription)."""
    return {
        "requestBody": _body(kind),
        "responses": {str(status): {"description": description, "content": _fhir_content("FhirResource")}},
    }


def answers(description: str = "") -> dict[str, Any]:
    """`openapi_extra` of a route that takes nothing and answers FHIR JSON."""
    return {"responses": {"200": {"description": description, "content": _fhir_content("FhirResource")}}}
