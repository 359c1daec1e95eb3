"""Every identifier system, code system, extension URL and canonical definition the FHIR surface uses,
declared once (and the headers a notification carries). Nothing else in interop/ spells one out."""

from __future__ import annotations

from directory.identifiers import is_foreign_system

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"

BASE = "https://fhir.childindex.example"
"""Where this directory's own code systems and extensions are named."""

# --- identifier systems --------------------------------------------------------------------------

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE = "https://fhir.nhs.uk/Id/ods-organization-code"
UPN = f"{BASE}/Id/upn"  # the Department for Education's Unique Pupil Number
SCHOOL_URN = f"{BASE}/Id/school-urn"  # the Department for Education's school URN
LOCAL_PREFIX = f"{BASE}/Id/local/"  # + the local system's name, e.g. .../Id/local/mosaic
LOCALITY_CODE = f"{BASE}/Id/locality"
SUBJECT = f"{BASE}/Id/subject"  # who acted, as their sign-in names them (AuditEvent.agent.who)

IDENTIFIER_SYSTEMS = {"nhs": NHS_NUMBER, "upn": UPN}
"""Domain identifier system -> FHIR identifier system (local:<name> ids map under LOCAL_PREFIX)."""

# --- code systems --------------------------------------------------------------------------------

SERVICE_TYPE = f"{BASE}/CodeSystem/service-type"
SERVICE_TIER = f"{BASE}/CodeSystem/service-tier"
LEVEL_OF_NEED = f"{BASE}/CodeSystem/level-of-need"
ORGANISATION_KIND = f"{BASE}/CodeSystem/organisation-kind"
CARE_TEAM_ROLE = f"{BASE}/CodeSystem/care-team-role"
FLAG_CODE = f"{BASE}/CodeSystem/flag"
CONSENT_SCOPE = f"{BASE}/CodeSystem/consent-scope"
CONSENT_GIVER = f"{BASE}/CodeSystem/consent-giver"
PRACTITIONER_ROLE = f"{BASE}/CodeSystem/practitioner-role"
AUDIT_ACTION = f"{BASE}/CodeSystem/audit-action"
RELATIONSHIP_LOCAL = f"{BASE}/CodeSystem/relationship"
CAF_OUTCOME = f"{BASE}/CodeSystem/caf-outcome"
SUBSCRIPTION_EVENT = f"{BASE}/CodeSystem/event"

V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
CONSENT_SCOPE_HL7 = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
CONSENT_POLICY = (
    "https://www.gov.uk/government/publications/safeguarding-practitioners-information-sharing-advice"
)
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
AUDIT_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
LOCATION_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
MATCH_GRADE_SYSTEM = "http://terminology.hl7.org/CodeSystem/match-grade"
V3_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"  # SUBSETTED
RESTFUL_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"

# --- definitions (canonical URLs of the base specification's search parameters and operations) --

SEARCH_PARAMETER = "http://hl7.org/fhir/SearchParameter/{kind}-{name}"
RESOURCE_ID_PARAMETER = "http://hl7.org/fhir/SearchParameter/Resource-id"
RESOURCE_LAST_UPDATED_PARAMETER = "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"
PATIENT_MATCH = "http://hl7.org/fhir/OperationDefinition/Patient-match"

# --- extensions ----------------------------------------------------------------------------------

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
EXT_LEVEL_OF_NEED = f"{BASE}/StructureDefinition/level-of-need"
EXT_INVOLVEMENT_ROLE = f"{BASE}/StructureDefinition/involvement-role"
EXT_HEALTHCARE_SERVICE = f"{BASE}/StructureDefinition/healthcare-service"
EXT_LAST_CONFIRMED = f"{BASE}/StructureDefinition/last-confirmed"
EXT_RECORDED_BY_SOURCE = f"{BASE}/StructureDefinition/involvement-source"
EXT_COVERING_CONSENT = f"{BASE}/StructureDefinition/covering-consent"
EXT_EXPECTED_DELIVERY = f"{BASE}/StructureDefinition/expected-delivery-date"
EXT_PARENTAL_RESPONSIBILITY = f"{BASE}/StructureDefinition/parental-responsibility"
EXT_SERVICE_TIER = f"{BASE}/StructureDefinition/service-tier"
EXT_SENSITIVE_CATEGORY = f"{BASE}/StructureDefinition/sensitive-category"
EXT_FAMILY_PARTICIPATING = f"{BASE}/StructureDefinition/family-participating"
EXT_NEXT_REVIEW = f"{BASE}/StructureDefinition/next-review-date"
PLAN_AREA = f"{BASE}/CodeSystem/tac-plan-area"  # a TAC plan action's area of need (directory/models/plan.py)
EXT_TAC_REVIEW = f"{BASE}/StructureDefinition/tac-review"  # a review of a TAC's plan (held, outcome, copy)
EXT_SHIELDED = f"{BASE}/StructureDefinition/shielded"
EXT_ASK = f"{BASE}/StructureDefinition/ask-contact"
EXT_CAF_CONSENT = f"{BASE}/StructureDefinition/caf-consent"  # Flag: the consent a CAF starts with
EXT_CAF_OUTCOME = f"{BASE}/StructureDefinition/caf-outcome"  # Flag: the outcome a CAF completes with
EXT_CHANGE_REASON = f"{BASE}/StructureDefinition/change-reason"  # why: close, withdraw, hand over
# Flag caf-signalled: true confirms the child is not thought to be at risk of significant harm
EXT_NO_SIGNIFICANT_HARM = f"{BASE}/StructureDefinition/no-risk-of-significant-harm"
EXT_CONSENT_GIVER = f"{BASE}/StructureDefinition/consent-giver"
EXT_YOUNG_PERSON_COMPETENT = f"{BASE}/StructureDefinition/young-person-competent"
EXT_SIGNING_SECRET = f"{BASE}/StructureDefinition/signing-secret"  # Subscription: write-only

# --- what a notification carries (interop/notify.py sends them; the Subscription mapper and the
# CapabilityStatement name them) ----------------------------------------------------------------

SIGNATURE_HEADER = "X-Childindex-Signature"  # sha256=HMAC(secret, timestamp + "." + body)
TIMESTAMP_HEADER = "X-Childindex-Timestamp"
EVENT_HEADER = "X-Childindex-Event"


def fhir_identifier_system(domain_system: str) -> str:
    """The FHIR system URI of a domain identifier system ('nhs', 'upn', 'local:mosaic')."""
    if domain_system in IDENTIFIER_SYSTEMS:
        return IDENTIFIER_SYSTEMS[domain_system]
    if domain_system.startswith("local:"):
        return LOCAL_PREFIX + domain_system.removeprefix("local:")
    if is_foreign_system(domain_system):
        return domain_system  # another organisation's system, kept exactly as it was sent
    raise ValueError(f"no FHIR identifier system for '{domain_system}'")


def domain_identifier_system(uri: str) -> str | None:
    """The domain identifier system of a FHIR system URI, or None when it is not one we hold."""
    for domain, fhir in IDENTIFIER_SYSTEMS.items():
        if uri == fhir:
            return domain
    if uri.startswith(LOCAL_PREFIX) and len(uri) > len(LOCAL_PREFIX):
        return "local:" + uri.removeprefix(LOCAL_PREFIX)
    return None


def received_identifier_system(uri: str) -> str | None:
    """The domain system for an identifier a FHIR client or file sends: ours as declared (above),
    any other absolute URI (http(s):// or urn:) kept exactly as sent, never rewritten; None for
    what is not a URI. The one rule the /fhir writes and the NDJSON import both apply."""
    known = domain_identifier_system(uri)
    if known is not None:
        return known
    return uri if is_foreign_system(uri) else None
