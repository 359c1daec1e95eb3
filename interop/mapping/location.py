"""Locality <-> Location: an area, with its core delivery team as the contact point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from directory.models import Locality
from interop import systems as S
from interop.mapping.common import fhir_id, meta_of, phone_email, telecom_of, validated


def location(locality: Locality, areas: Sequence[str]) -> dict[str, Any]:
    """Locality -> Location (an area, with its core delivery team as the contact point)."""
    res = {
        "resourceType": "Location",
        "id": fhir_id(locality.id),
        "meta": meta_of(updated=locality.updated_at),
        "identifier": [{"system": S.LOCALITY_CODE, "value": locality.code}],
        "status": "active",
        "name": locality.name,
        "alias": [locality.team_name],
        "description": f"Local delivery area of {locality.authority}; postcode areas: {', '.join(areas)}",
        "mode": "kind",
        "physicalType": {"coding": [{"system": S.LOCATION_TYPE, "code": "area", "display": "Area"}]},
        "telecom": telecom_of(locality.team_phone, locality.team_email),
    }
    return validated(res)


def location_in(resource: dict[str, Any]) -> dict[str, Any]:
    """Location -> Locality fields (the authority is read back from the description)."""
    validated(resource)
    code = next(
        (i.get("value") for i in resource.get("identifier") or [] if i.get("system") == S.LOCALITY_CODE), None
    )
    phone, email = phone_email(resource.get("telecom"))
    description = resource.get("description") or ""
    authority = description.removeprefix("Local delivery area of ").split(";")[0]
    return {
        "code": code,
        "name": resource.get("name"),
        "authority": authority,
        "team_name": (resource.get("alias") or [None])[0],
        "team_phone": phone,
        "team_email": email,
    }
