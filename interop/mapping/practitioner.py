"""Practitioner <-> Practitioner and PractitionerRole (they share the practitioner's id)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from directory.models import Practitioner, PractitionerCreate
from interop import systems as S
from interop.mapping.common import (
    MappingError,
    fhir_id,
    meta_of,
    phone_email,
    ref_id,
    ref_to,
    telecom_of,
    validated,
)


def practitioner(p: Practitioner) -> dict[str, Any]:
    """Practitioner -> Practitioner (the person; how to reach them is on the PractitionerRole)."""
    res = {
        "resourceType": "Practitioner",
        "id": fhir_id(p.id),
        "meta": meta_of(updated=p.updated_at),
        "active": p.active,
        "name": [{"text": p.name}],
    }
    return validated(res)


def practitioner_role(p: Practitioner, org_name: str | None = None) -> dict[str, Any]:
    """Practitioner -> PractitionerRole: role at an organisation, with the contact point as telecom."""
    res = {
        "resourceType": "PractitionerRole",
        "id": fhir_id(p.id),
        "meta": meta_of(p.version, updated=p.updated_at),
        "active": p.active,
        "practitioner": ref_to("Practitioner", p.id, p.name),
        "organization": ref_to("Organization", p.organisation_id, org_name),
        "code": [
            {
                "coding": [{"system": S.PRACTITIONER_ROLE, "code": _slug(p.role), "display": p.role}],
                "text": p.role,
            }
        ],
        "telecom": telecom_of(p.phone, p.email),
    }
    return validated(res)


def _slug(text: str) -> str:
    return "-".join(text.lower().split())


def practitioner_role_in(resource: dict[str, Any]) -> PractitionerCreate:
    """PractitionerRole -> PractitionerCreate (the practitioner's name comes from practitioner.display)."""
    validated(resource)
    if resource.get("resourceType") != "PractitionerRole":
        raise MappingError("Expected a PractitionerRole.", where="resourceType")
    org_id = ref_id(resource.get("organization"), "Organization", where="PractitionerRole.organization")
    name = (resource.get("practitioner") or {}).get("display")
    if not name:
        raise MappingError(
            "Name the practitioner in practitioner.display.", where="PractitionerRole.practitioner.display"
        )
    code = (resource.get("code") or [{}])[0]
    role = code.get("text") or ((code.get("coding") or [{}])[0]).get("display")
    if not role:
        raise MappingError("Say what the practitioner's role is (code.text).", where="PractitionerRole.code")
    phone, email = phone_email(resource.get("telecom"))
    try:
        return PractitionerCreate(
            name=name,
            role=role,
            organisation_id=org_id,
            phone=phone,
            email=email,
            active=resource.get("active", True),
        )
    except ValidationError as exc:
        raise MappingError(str(exc.errors()[0].get("msg")), where="PractitionerRole") from None
