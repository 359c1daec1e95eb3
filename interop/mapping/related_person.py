"""Parent / carer <-> RelatedPerson, with parental responsibility as an extension."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from directory.models import RelatedPersonRead
from interop import systems as S
from interop.mapping.common import (
    MappingError,
    extension,
    extension_value,
    fhir_id,
    meta_of,
    phone_email,
    ref_id,
    ref_to,
    telecom_of,
    validated,
)

_RELATIONSHIP = {
    "mother": "MTH",
    "father": "FTH",
    "parent": "PRN",
    "stepmother": "STPMTH",
    "stepfather": "STPFTH",
    "grandmother": "GRMTH",
    "grandfather": "GRFTH",
    "foster carer": "FSTPRN",
    "guardian": "GUARD",
    "carer": "CAREGIVER",
}
_RELATIONSHIP_BACK = {v: k for k, v in _RELATIONSHIP.items()}


def related_person(
    person: RelatedPersonRead, child_id: uuid.UUID, *, updated: datetime | None = None
) -> dict[str, Any]:
    """Parent/carer -> RelatedPerson, with parental responsibility as an extension; it changes with the
    child's record (`updated`: the record's last change)."""
    code = _RELATIONSHIP.get(person.relationship.lower())
    relationship = (
        {"coding": [{"system": S.V3_ROLE_CODE, "code": code}], "text": person.relationship}
        if code
        else {
            "coding": [{"system": S.RELATIONSHIP_LOCAL, "code": person.relationship}],
            "text": person.relationship,
        }
    )
    res = {
        "resourceType": "RelatedPerson",
        "id": fhir_id(person.id),
        **({"meta": meta_of(updated=updated)} if updated else {}),
        "extension": [extension(S.EXT_PARENTAL_RESPONSIBILITY, valueBoolean=person.parental_responsibility)],
        "active": True,
        "patient": ref_to("Patient", child_id),
        "relationship": [relationship],
        "name": [{"text": person.name}],
        "telecom": telecom_of(person.phone, person.email, use="home"),
    }
    return validated(res)


def related_person_in(resource: dict[str, Any]) -> tuple[uuid.UUID, dict[str, Any]]:
    """RelatedPerson -> (child id, RelatedPersonIn fields)."""
    validated(resource)
    child_id = ref_id(resource.get("patient"), "Patient", where="RelatedPerson.patient")
    rel = (resource.get("relationship") or [{}])[0]
    coding = (rel.get("coding") or [{}])[0]
    relationship = (
        _RELATIONSHIP_BACK.get(coding.get("code", ""))
        if coding.get("system") == S.V3_ROLE_CODE
        else coding.get("code")
    ) or rel.get("text")
    if not relationship:
        raise MappingError("Say how the person is related to the child.", where="RelatedPerson.relationship")
    phone, email = phone_email(resource.get("telecom"))
    name = ((resource.get("name") or [{}])[0]).get("text")
    if not name:
        raise MappingError("Give the person's name.", where="RelatedPerson.name")
    return child_id, {
        "name": name,
        "relationship": relationship,
        "parental_responsibility": bool(
            extension_value(resource, S.EXT_PARENTAL_RESPONSIBILITY, "valueBoolean")
        ),
        "phone": phone,
        "email": email,
    }
