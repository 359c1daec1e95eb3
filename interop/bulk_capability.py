"""What the CapabilityStatement says of Bulk Data export: it instantiates the IG's bulk-data
CapabilityStatement, and declares the system, Patient and Group export operations and Group itself."""

from __future__ import annotations

from typing import Any

BULK_DATA = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
PATIENT_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
GROUP_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
_HOW = (
    "Bulk Data export (IG v2) for connected systems whose grant carries directory.export and each "
    "exported type's read scope: send 'Prefer: respond-async'; _outputFormat application/fhir+ndjson, "
    "_since, _type. One export runs per client at a time. Each resource is what a read of it shows."
)


def _group() -> dict[str, Any]:
    return {
        "type": "Group",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "operation": [{"name": "export", "definition": GROUP_EXPORT}],
        "documentation": "One Group per local delivery area: its children (members are not listed). " + _HOW,
    }


def with_bulk_export(body: dict[str, Any]) -> dict[str, Any]:
    """The CapabilityStatement with the export operations declared (in place, and returned)."""
    body["instantiates"] = [BULK_DATA]
    rest = body["rest"][0]
    rest.setdefault("operation", []).append({"name": "export", "definition": EXPORT, "documentation": _HOW})
    for res in rest["resource"]:
        if res["type"] == "Patient":
            res.setdefault("operation", []).append({"name": "export", "definition": PATIENT_EXPORT})
    rest["resource"].append(_group())
    return body
