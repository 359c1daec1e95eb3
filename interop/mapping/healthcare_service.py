"""Service <-> HealthcareService: type, level of need, tier and the localities covered."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from directory.models import Service
from interop import systems as S
from interop.mapping.common import (
    LEVEL_DISPLAY,
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


def healthcare_service(service: Service, locality_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    """Service -> HealthcareService: type, level of need, tier and the localities it covers."""
    characteristic = [
        {
            "coding": [
                {
                    "system": S.LEVEL_OF_NEED,
                    "code": str(service.level_of_need),
                    "display": LEVEL_DISPLAY.get(service.level_of_need),
                }
            ]
        },
        {"coding": [{"system": S.SERVICE_TIER, "code": service.tier}]},
    ]
    extensions = []
    if service.sensitive:
        extensions.append(extension(S.EXT_SENSITIVE_CATEGORY, valueCode=service.sensitive_category or "all"))
    res: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": fhir_id(service.id),
        "meta": meta_of(restricted=service.sensitive, updated=service.updated_at),
        "active": True,
        "providedBy": ref_to("Organization", service.organisation_id),
        "type": [{"coding": [{"system": S.SERVICE_TYPE, "code": service.service_type}]}],
        "name": service.name,
        "telecom": telecom_of(service.phone, service.email),
        "characteristic": characteristic,
        "coverageArea": [ref_to("Location", loc) for loc in locality_ids],
    }
    if service.sensitive:
        res["extension"] = extensions
    return validated(res)


def healthcare_service_in(resource: dict[str, Any]) -> tuple[dict[str, Any], list[uuid.UUID]]:
    """HealthcareService -> (Service fields, covered locality ids)."""
    validated(resource)
    level = tier = None
    for c in resource.get("characteristic") or []:
        for coding in c.get("coding") or []:
            if coding.get("system") == S.LEVEL_OF_NEED:
                level = int(coding["code"])
            elif coding.get("system") == S.SERVICE_TIER:
                tier = coding.get("code")
    stype = ((resource.get("type") or [{}])[0].get("coding") or [{}])[0].get("code")
    phone, email = phone_email(resource.get("telecom"))
    category = extension_value(resource, S.EXT_SENSITIVE_CATEGORY, "valueCode")
    fields = {
        "name": resource.get("name"),
        "service_type": stype,
        "organisation_id": ref_id(
            resource.get("providedBy"), "Organization", where="HealthcareService.providedBy"
        ),
        "level_of_need": level,
        "tier": tier,
        "phone": phone,
        "email": email,
        "sensitive": category is not None,
        "sensitive_category": None if category in (None, "all") else category,
    }
    areas = [
        ref_id(a, "Location", where=f"HealthcareService.coverageArea[{i}]")
        for i, a in enumerate(resource.get("coverageArea") or [])
    ]
    return fields, areas
