"""The directory's vocabulary (roles, purposes of use, statuses and the other closed lists of
values) and the clock."""

from __future__ import annotations

import enum
from datetime import UTC, datetime


class Role(enum.StrEnum):
    """What a signed-in subject may do, from their access grant."""

    PRACTITIONER = "practitioner"
    DESIGNATED_PRACTITIONER = "designated_practitioner"  # may see shielded details
    CHILD_PROTECTION = "child_protection"  # may override a shield for one viewing
    LOCAL_DELIVERY_TEAM = "local_delivery_team"
    DIRECTORY_ADMIN = "directory_admin"
    AUDITOR = "auditor"
    SYSTEM = "system"
    # keeps the records themselves right: merges duplicates, reviews feed matches, reads archived
    # records, answers subject access requests
    DATA_MANAGER = "data_manager"
    # the adoption team: the only role that can see a record sealed by an adoption
    ADOPTION_OFFICER = "adoption_officer"


class Purpose(enum.StrEnum):
    """Why a record is looked at; required for reads and searches and kept in the audit."""

    CONSIDERING_CAF = "considering-caf"
    DIRECT_CARE = "direct-care"
    CAF_COORDINATION = "caf-coordination"
    SAFEGUARDING_CONCERN = "safeguarding-concern"
    ADMINISTRATION = "administration"
    AUDIT = "audit"


class RecordStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"  # past the age range, moved away or closed: data managers and auditors only
    MERGED = "merged"  # a pointer to the record kept
    SEALED = "sealed"  # the birth identity of an adopted child: the adoption team only
    PURGED = "purged"  # a tombstone: the personal data is gone


class Sex(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class NameUse(enum.StrEnum):
    OFFICIAL = "official"
    USUAL = "usual"  # a known-as name
    PREVIOUS = "previous"
    ALIAS = "alias"


class ServiceTier(enum.StrEnum):
    CORE = "core"  # levels 1-2, the local delivery team
    ALIGNED = "aligned"  # universal / targeted by agreement
    SPECIALIST = "specialist"  # levels 3-4, statutory or referral access


class OrganisationKind(enum.StrEnum):
    SCHOOL = "school"
    EARLY_YEARS = "early_years"
    GP_PRACTICE = "gp_practice"
    NHS_TRUST = "nhs_trust"
    LOCAL_AUTHORITY = "local_authority"
    POLICE = "police"
    VOLUNTARY = "voluntary"
    OTHER = "other"


class InvolvementStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class CafStatus(enum.StrEnum):
    SIGNALLED = "signalled"  # a service has said it is about to start one
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # completed, not closed: the plan / TAC is running
    CLOSED = "closed"
    EXPIRED = "expired"  # a signal that was never started
    WITHDRAWN = "withdrawn"  # a signal withdrawn before it started


OPEN_CAF_STATUSES = (CafStatus.SIGNALLED, CafStatus.IN_PROGRESS, CafStatus.COMPLETED)


class CafOutcome(enum.StrEnum):
    NO_FURTHER_ACTION = "no_further_action"
    NEEDS_MET_IN_SERVICE = "needs_met_in_service"
    MULTI_AGENCY_RESPONSE = "multi_agency_response"
    STEPPED_UP_TO_SOCIAL_CARE = "stepped_up_to_social_care"


class TacStatus(enum.StrEnum):
    FORMING = "forming"
    CONVENED = "convened"
    CLOSED = "closed"


class ConsentGiver(enum.StrEnum):
    PARENT_CARER = "parent_carer"
    YOUNG_PERSON = "young_person"  # a young person judged competent to consent


class SensitiveCategory(enum.StrEnum):
    SEXUAL_HEALTH = "sexual_health"
    SUBSTANCE_MISUSE = "substance_misuse"
    MENTAL_HEALTH = "mental_health"


class ConsentScope(enum.StrEnum):
    """What a consent covers."""

    CAF = "caf"  # an early help assessment and the sharing it needs
    INFORMATION_SHARING = "information_sharing"
    SENSITIVE_SEXUAL_HEALTH = "sensitive:sexual_health"
    SENSITIVE_SUBSTANCE_MISUSE = "sensitive:substance_misuse"
    SENSITIVE_MENTAL_HEALTH = "sensitive:mental_health"
    SENSITIVE_ALL = "sensitive:all"


class ServiceType(enum.StrEnum):
    """The service types of the catalogue (Service.service_type): the codes pages label in plain words.

    The column stays open text (a connected system may register a type of its own); a code not
    listed here is shown humanised (childindex/web/labels.py).
    """

    HEALTH_VISITING = "health_visiting"
    SCHOOL_NURSING = "school_nursing"
    MIDWIFERY = "midwifery"
    EARLY_HELP = "early_help"
    FAMILY_SUPPORT = "family_support"
    YOUTH_SERVICE = "youth_service"
    CONNEXIONS = "connexions"
    SPEECH_LANGUAGE = "speech_language"
    SEXUAL_HEALTH = "sexual_health"
    POLICE_SCHOOLS = "police_schools"
    EDUCATIONAL_PSYCHOLOGY = "educational_psychology"
    CAMHS = "camhs"
    SUBSTANCE_MISUSE = "substance_misuse"
    YOUTH_OFFENDING = "youth_offending"
    SOCIAL_CARE = "social_care"
    POLICE_PROTECTION = "police_protection"
    SCHOOL = "school"
    EARLY_YEARS = "early_years"
    GP = "gp"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
