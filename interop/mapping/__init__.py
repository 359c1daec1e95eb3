"""Domain <-> FHIR R4 mappers: pure functions, no I/O. Every resource is validated with the R4B models.

Outbound mappers take what the domain lets this caller see (a ChildCard built by
directory.service, or catalogue rows) and return plain JSON dicts; inbound mappers take a
FHIR JSON dict and return the domain's input shapes (or a small dataclass of references),
raising MappingError with the FHIRPath of what is wrong.

One module per resource type, the shared plumbing in `common.py`; callers read them all from
here (`from interop import mapping as m`; `m.patient(...)`). Modules here import each other only
through `common.py`, never this package, so importing one never drags in a circle.
"""

from interop.mapping.audit_event import audit_event, audit_event_in
from interop.mapping.care_plan import PlanActivity, care_plan
from interop.mapping.care_team import LEAD_PROFESSIONAL, CareTeamIn, TeamMember, care_team, care_team_in
from interop.mapping.common import MappingError, ref_id, validated
from interop.mapping.consent import CONSENT_STATUSES, ConsentIn, consent, consent_in
from interop.mapping.episode_of_care import (
    EPISODE_STATUSES,
    EpisodeIn,
    EpisodeRow,
    episode_of_care,
    episode_of_care_in,
)
from interop.mapping.flag import CAF_OUTCOMES, FlagIn, caf_flag, flag_in, flags, lead_flag
from interop.mapping.healthcare_service import healthcare_service, healthcare_service_in
from interop.mapping.location import location, location_in
from interop.mapping.organization import organization, organization_in
from interop.mapping.patient import GENDERS, PatientExtras, PatientIn, patient, patient_change, patient_in
from interop.mapping.practitioner import practitioner, practitioner_role, practitioner_role_in
from interop.mapping.related_person import related_person, related_person_in
from interop.mapping.subscription import (
    CRITERIA_HELP,
    SIGNATURE_HEADER_NAME,
    SUBSCRIPTION_CRITERIA,
    SubscriptionIn,
    subscription,
    subscription_events,
    subscription_in,
)

__all__ = [
    "CAF_OUTCOMES",
    "CONSENT_STATUSES",
    "CRITERIA_HELP",
    "EPISODE_STATUSES",
    "GENDERS",
    "LEAD_PROFESSIONAL",
    "SIGNATURE_HEADER_NAME",
    "SUBSCRIPTION_CRITERIA",
    "CareTeamIn",
    "PlanActivity",
    "care_plan",
    "ConsentIn",
    "EpisodeIn",
    "EpisodeRow",
    "FlagIn",
    "MappingError",
    "PatientExtras",
    "PatientIn",
    "SubscriptionIn",
    "TeamMember",
    "audit_event",
    "audit_event_in",
    "caf_flag",
    "care_team",
    "care_team_in",
    "consent",
    "consent_in",
    "episode_of_care",
    "episode_of_care_in",
    "flag_in",
    "flags",
    "healthcare_service",
    "healthcare_service_in",
    "lead_flag",
    "location",
    "location_in",
    "organization",
    "organization_in",
    "patient",
    "patient_change",
    "patient_in",
    "practitioner",
    "practitioner_role",
    "practitioner_role_in",
    "ref_id",
    "related_person",
    "related_person_in",
    "subscription",
    "subscription_events",
    "subscription_in",
    "validated",
]
