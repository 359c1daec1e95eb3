"""Plain words for the codes the locality overview shows: one table per closed list, complete by test.

A code that is not in a table (a service type a connected system registered) is shown humanised,
never raw: "youth_work" reads "Youth work".
"""

from __future__ import annotations

from directory.models.vocabulary import ServiceType

SERVICE_TYPES: dict[ServiceType, str] = {
    ServiceType.HEALTH_VISITING: "Health visiting",
    ServiceType.SCHOOL_NURSING: "School nursing",
    ServiceType.MIDWIFERY: "Midwifery",
    ServiceType.EARLY_HELP: "Early help",
    ServiceType.FAMILY_SUPPORT: "Family support",
    ServiceType.YOUTH_SERVICE: "Youth service",
    ServiceType.CONNEXIONS: "Careers guidance (Connexions)",
    ServiceType.SPEECH_LANGUAGE: "Speech and language therapy",
    ServiceType.SEXUAL_HEALTH: "Sexual health",
    ServiceType.POLICE_SCHOOLS: "Police schools liaison",
    ServiceType.EDUCATIONAL_PSYCHOLOGY: "Educational psychology",
    ServiceType.CAMHS: "Child and adolescent mental health (CAMHS)",
    ServiceType.SUBSTANCE_MISUSE: "Drug and alcohol support",
    ServiceType.YOUTH_OFFENDING: "Youth offending",
    ServiceType.SOCIAL_CARE: "Children's social care",
    ServiceType.POLICE_PROTECTION: "Police protection",
    ServiceType.SCHOOL: "School",
    ServiceType.EARLY_YEARS: "Early years setting",
    ServiceType.GP: "GP practice",
}


def humanise(code: str) -> str:
    """A code nobody labelled, readable: underscores and hyphens become spaces, first letter capital."""
    words = code.replace("_", " ").replace("-", " ").strip()
    return (words[:1].upper() + words[1:]) if words else "Not recorded"


def service_type(code: str) -> str:
    """The plain label of a service type code."""
    known = ServiceType._value2member_map_.get(code)
    return SERVICE_TYPES[ServiceType(code)] if known is not None else humanise(code)
