"""The CapabilityStatement, built from the same tables the routes and the search parser use."""

from __future__ import annotations

from typing import Any

from auth.policy import FHIR_CATALOGUE_TYPES, FHIR_CHILD_TYPES, FHIR_HISTORY_TYPES, FHIR_WRITE_TYPES
from interop import params as P
from interop import systems as S
from interop.bulk_capability import with_bulk_export
from interop.mapping import CRITERIA_HELP, validated
from interop.sync import CHILD_TABLES

_COMMON = {"_id": S.RESOURCE_ID_PARAMETER, "_lastUpdated": S.RESOURCE_LAST_UPDATED_PARAMETER}
HISTORY_TYPES = set(FHIR_HISTORY_TYPES)
VERSIONED_TYPES = {"EpisodeOfCare", "PractitionerRole", "Flag", "CareTeam", "Patient"}  # versionId, If-Match
UPDATE_ONLY_TYPES = {"Patient"}  # updated (by connected systems), not created, over FHIR
CONDITIONAL_CREATE = {"EpisodeOfCare", "Flag", "Consent", "CareTeam"}  # If-None-Exist, as a search
READABLE = (*FHIR_CHILD_TYPES, *FHIR_CATALOGUE_TYPES, "AuditEvent")


WRITE_DOCS = {
    "Flag": (
        "Create a Flag caf-signalled with extension no-risk-of-significant-harm true to signal a CAF "
        "(author: a person signals as themselves; a system names a practitioner of its own "
        "organisation); a second open CAF is refused with 409 naming whom to contact. PUT "
        "Flag/caf-<id> moves it on (caf-in-progress with extension caf-consent, caf-completed with "
        "caf-outcome, caf-closed or status inactive with change-reason); a new author hands over the "
        "Lead Professional, as does PUT Flag/lp-<patient> with a new author. Only the CAF's holders, TAC "
        "members, the child's local delivery team or an admin change it (403 naming whom to ask); "
        "anyone but a holder gives change-reason, and the holders are told. The version is the CAF's."
    ),
    "Consent": "Create to record a consent; PUT with status inactive (and change-reason) to withdraw it.",
    "CareTeam": (
        "Create to form the TAC of the child's open CAF (status active also convenes it); PUT to add or "
        "remove participants, change the review date, convene, or hand over the Lead Professional "
        "(the participant with role care-team-role#lead-professional). The version is TAC + CAF."
    ),
    "PractitionerRole": "Versioned: send If-Match with the version read (412 when it moved on).",
    "CarePlan": (
        "Read-only: a TAC's plan (the same id as its CareTeam). Each action is an activity: its area of "
        f"need coded in {S.PLAN_AREA}, its status, its owner as performer (the family, or a TAC member; "
        "none when you may not see who), its date as scheduledPeriod.end; each review an extension "
        f"{S.EXT_TAC_REVIEW}. The plan changes through the app API and the pages."
    ),
    "Patient": (
        "Connected systems (system/Patient.u) change a child's details with PUT: the current official "
        "name (the old one is kept as a previous name), usual names and aliases to add, birthDate (on an "
        "unborn child's record, the birth), gender, address (the locality follows the postcode), "
        "generalPractitioner and identifiers. What the Patient leaves out is kept. Send If-Match with "
        "the version read (412 when it moved on). Every version is kept: _history and vread."
    ),
}


def _resource(kind: str) -> dict[str, Any]:
    interactions = [{"code": "read"}, {"code": "search-type"}]
    if kind in FHIR_WRITE_TYPES:
        interactions += [{"code": "create"}, {"code": "update"}]
    elif kind in UPDATE_ONLY_TYPES:
        interactions += [{"code": "update"}]
    if kind in HISTORY_TYPES:
        interactions += [{"code": "vread"}, {"code": "history-instance"}]
    if kind in FHIR_CATALOGUE_TYPES or kind in CHILD_TABLES:  # what changed since an instant
        interactions += [{"code": "history-type"}]  # (interop/api/sync_history.py, child_history.py)
    res: dict[str, Any] = {
        "type": kind,
        "interaction": interactions,
        "versioning": "versioned-update" if kind in VERSIONED_TYPES else "no-version",
        "readHistory": kind in HISTORY_TYPES,
        "updateCreate": False,
        "conditionalCreate": kind in CONDITIONAL_CREATE and kind in FHIR_WRITE_TYPES,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": [f"{kind}:{p}" for p in P.INCLUDES.get(kind, {})],
        "searchRevInclude": sorted(f"{s}:{p}" for s, p in P.REVINCLUDES.get(kind, set())),
        "searchParam": [
            {
                "name": name,
                "definition": _COMMON.get(name, S.SEARCH_PARAMETER.format(kind=kind, name=name)),
                "type": ptype if ptype != "reference" else "reference",
                **({"documentation": P.PARAM_DOCS[name]} if name in P.PARAM_DOCS else {}),
            }
            for name, ptype in P.SEARCH_PARAMS[kind].items()
        ],
    }
    if kind == "Patient":
        res["operation"] = [{"name": "match", "definition": S.PATIENT_MATCH}]
    if kind in FHIR_CHILD_TYPES:
        res["documentation"] = (
            "Send X-Purpose-Of-Use with every read and search. Shielded records and sensitive "
            "involvements are shown exactly as in the app API; every read and search is audited."
        )
    if kind in WRITE_DOCS:
        res["documentation"] = res.get("documentation", "") + " " + WRITE_DOCS[kind]
        res["documentation"] = res["documentation"].strip()
    if kind == "AuditEvent":
        res["documentation"] = "Read-only, for auditors: search by patient (who has looked at this record)."
    return res


def _subscription_resource() -> dict[str, Any]:
    return {
        "type": "Subscription",
        "interaction": [{"code": c} for c in ("create", "read", "search-type", "delete")],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "documentation": (
            "rest-hook only, for connected systems (scopes system/Subscription.c, .r, .s, .d); each "
            "client sees its own. "
            + CRITERIA_HELP
            + " Each notification is an id-only history Bundle (the Patient and, for CAF and Lead "
            "Professional events, the CAF's Flag), tagged with the event, posted in the background "
            "with retries; give a secret in extension " + S.EXT_SIGNING_SECRET + " to have it signed "
            f"({S.SIGNATURE_HEADER}: sha256=HMAC(secret, {S.TIMESTAMP_HEADER} + '.' + body)). "
            "shielded-record-viewed also needs the audit.read scope."
        ),
    }


_REST_DOCUMENTATION = (
    f"Identifier systems: NHS number {S.NHS_NUMBER}; UPN {S.UPN}; local ids under {S.LOCAL_PREFIX}<system>; "
    f"ODS {S.ODS_CODE}; school URN {S.SCHOOL_URN}. Unknown search parameters are ignored (and "
    "reported in the Bundle) unless 'Prefer: handling=strict', which refuses them."
)


def capability_statement(*, base: str, issuer: str) -> dict[str, Any]:
    """A truthful CapabilityStatement: only what is implemented, with the OAuth endpoints."""
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "childindex",
        "kind": "instance",
        "software": {"name": "childindex", "version": "0.1.0"},
        "implementation": {"description": "childindex FHIR R4 interface", "url": base},
        "fhirVersion": S.FHIR_VERSION,
        "format": [S.FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": _REST_DOCUMENTATION,
                "security": _security(issuer),
                "resource": [*(_resource(kind) for kind in READABLE), _subscription_resource()],
                "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
            }
        ],
    }
    return validated(with_bulk_export(body))


def _security(issuer: str) -> dict[str, Any]:
    """SMART on FHIR: the OAuth endpoints of this issuer."""
    return {
        "cors": False,
        "service": [{"coding": [{"system": S.RESTFUL_SECURITY_SERVICE, "code": "SMART-on-FHIR"}]}],
        "extension": [
            {
                "url": S.SMART_OAUTH_URIS,
                "extension": [
                    {"url": "token", "valueUri": f"{issuer}/oauth/token"},
                    {"url": "authorize", "valueUri": f"{issuer}/oauth/authorize"},
                    {"url": "revoke", "valueUri": f"{issuer}/oauth/revoke"},
                    {"url": "introspect", "valueUri": f"{issuer}/oauth/introspect"},
                ],
            }
        ],
        "description": (
            "OAuth 2.0 bearer tokens with SMART v2 scopes (e.g. system/Patient.rs, "
            "system/EpisodeOfCare.cru); see " + issuer + "/.well-known/smart-configuration."
        ),
    }
