"""R4 4.0.1 required bindings of the elements this server emits: a code outside its value set is not R4,
though fhirclient's models (which check types, cardinality and formats) accept any string."""

from __future__ import annotations

from typing import Any

_DAYS = "mon tue wed thu fri sat sun"
_ISSUE_TYPES = (
    "invalid structure required value invariant security login unknown expired forbidden suppressed "
    "processing not-supported duplicate multiple-matches not-found deleted too-long code-invalid "
    "extension too-costly business-rule conflict transient lock-error no-store exception timeout "
    "incomplete throttled informational"
)
_REQUIRED_TEXT = {  # (fhirclient model class, JSON element): the R4 codes, space-separated
    ("Patient", "gender"): "male female other unknown",
    ("RelatedPerson", "gender"): "male female other unknown",
    ("Practitioner", "gender"): "male female other unknown",
    ("HumanName", "use"): "usual official temp nickname anonymous old maiden",
    ("Address", "use"): "home work temp old billing",
    ("Address", "type"): "postal physical both",
    ("ContactPoint", "system"): "phone fax email pager url sms other",
    ("ContactPoint", "use"): "home work temp old mobile",
    ("Identifier", "use"): "usual official temp secondary old",
    ("Narrative", "status"): "generated extensions additional empty",
    ("Bundle", "type"): "document message transaction transaction-response batch batch-response history "
    "searchset collection",
    ("BundleEntrySearch", "mode"): "match include outcome",
    ("BundleEntryRequest", "method"): "GET HEAD POST PUT DELETE PATCH",
    ("OperationOutcomeIssue", "severity"): "fatal error warning information",
    ("OperationOutcomeIssue", "code"): _ISSUE_TYPES,
    ("EpisodeOfCare", "status"): "planned waitlist active onhold finished cancelled entered-in-error",
    ("EpisodeOfCareStatusHistory", "status"): "planned waitlist active onhold finished cancelled "
    "entered-in-error",
    ("Flag", "status"): "active inactive entered-in-error",
    ("CareTeam", "status"): "proposed active suspended inactive entered-in-error",
    ("CarePlan", "status"): "draft active on-hold revoked completed entered-in-error unknown",
    ("CarePlan", "intent"): "proposal plan order option",
    ("CarePlanActivityDetail", "status"): "not-started scheduled in-progress on-hold completed cancelled "
    "stopped unknown entered-in-error",
    ("Consent", "status"): "draft proposed active rejected inactive entered-in-error",
    ("ConsentProvision", "type"): "deny permit",
    ("Subscription", "status"): "requested active error off",
    ("SubscriptionChannel", "type"): "rest-hook websocket email sms message",
    ("AuditEvent", "action"): "C R U D E",
    ("AuditEvent", "outcome"): "0 4 8 12",
    ("Location", "status"): "active suspended inactive",
    ("Location", "mode"): "instance kind",
    ("HealthcareServiceAvailableTime", "daysOfWeek"): _DAYS,
    ("PractitionerRoleAvailableTime", "daysOfWeek"): _DAYS,
    ("CapabilityStatement", "status"): "draft active retired unknown",
    ("CapabilityStatement", "kind"): "instance capability requirements",
    ("CapabilityStatement", "fhirVersion"): "4.0.0 4.0.1",
    ("CapabilityStatementRest", "mode"): "client server",
    ("CapabilityStatementRestInteraction", "code"): "transaction batch search-system history-system",
    ("CapabilityStatementRestResourceInteraction", "code"): "read vread update patch delete "
    "history-instance history-type create search-type",
    ("CapabilityStatementRestResource", "versioning"): "no-version versioned versioned-update",
    ("CapabilityStatementRestResource", "conditionalRead"): "not-supported modified-since not-match "
    "full-support",
    ("CapabilityStatementRestResource", "conditionalDelete"): "not-supported single multiple",
    ("CapabilityStatementRestResource", "referencePolicy"): "literal logical resolves enforced local",
    ("CapabilityStatementRestResourceSearchParam", "type"): "number date string token reference "
    "composite quantity uri special",
}
REQUIRED = {key: frozenset(codes.split()) for key, codes in _REQUIRED_TEXT.items()}


def binding_problems(model: Any, path: str) -> list[str]:
    """Every code in a parsed fhirclient model tree that its R4 required binding does not allow."""
    out: list[str] = []
    for _name, jsname, _typ, is_list, _of_many, _required in model.elementProperties():
        value = getattr(model, _name)
        if value is None:
            continue
        allowed = REQUIRED.get((type(model).__name__, jsname))
        for i, v in enumerate(value if is_list else [value]):
            at = f"{path}.{jsname}" + (f"[{i}]" if is_list else "")
            if allowed is not None and v not in allowed:
                out.append(f"{at}: {v!r} is not in its R4 required value set")
            if hasattr(v, "elementProperties"):
                out += binding_problems(v, at)
    return out
