"""Organisation <-> Organization, identified by ODS code or school URN."""

from __future__ import annotations

from typing import Any

from directory.models import Organisation
from interop import systems as S
from interop.mapping.common import fhir_id, meta_of, phone_email, telecom_of, validated

_ORG_TYPE = {
    "school": ("edu", "Educational Institute"),
    "early_years": ("edu", "Educational Institute"),
    "gp_practice": ("prov", "Healthcare Provider"),
    "nhs_trust": ("prov", "Healthcare Provider"),
    "local_authority": ("govt", "Government"),
    "police": ("govt", "Government"),
    "voluntary": ("cg", "Community Group"),
    "other": ("other", "Other"),
}


def kinds_of_type(token: str) -> list[str]:
    """The organisation kinds an Organization `type` search token matches: `system|code` in either
    code system the resource carries (HL7 organization-type, or ours), or a bare code in either."""
    system, bar, code = token.rpartition("|")
    hl7 = [kind for kind, (c, _) in _ORG_TYPE.items() if c == code]
    ours = [code] if code in _ORG_TYPE else []
    if not bar:
        return sorted({*hl7, *ours})
    return {S.ORGANIZATION_TYPE: hl7, S.ORGANISATION_KIND: ours}.get(system, [])


def organization(org: Organisation) -> dict[str, Any]:
    """Organisation -> Organization, identified by ODS code or school URN."""
    hl7, display = _ORG_TYPE.get(org.kind, ("other", "Other"))
    identifiers = []
    if org.ods_code:
        identifiers.append({"system": S.ODS_CODE, "value": org.ods_code})
    if org.urn:
        identifiers.append({"system": S.SCHOOL_URN, "value": org.urn})
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "id": fhir_id(org.id),
        "meta": meta_of(updated=org.updated_at),
        "identifier": identifiers,
        "active": True,
        "type": [
            {
                "coding": [
                    {"system": S.ORGANIZATION_TYPE, "code": hl7, "display": display},
                    {"system": S.ORGANISATION_KIND, "code": org.kind},
                ]
            }
        ],
        "name": org.name,
        "telecom": telecom_of(org.phone, org.email),
    }
    if org.postcode:
        res["address"] = [{"use": "work", "postalCode": org.postcode}]
    return validated(res)


def organization_in(resource: dict[str, Any]) -> dict[str, Any]:
    """Organization -> Organisation fields."""
    validated(resource)
    kind = "other"
    for t in resource.get("type") or []:
        for c in t.get("coding") or []:
            if c.get("system") == S.ORGANISATION_KIND:
                kind = c.get("code", "other")
    ods = urn = None
    for i in resource.get("identifier") or []:
        if i.get("system") == S.ODS_CODE:
            ods = i.get("value")
        elif i.get("system") == S.SCHOOL_URN:
            urn = i.get("value")
    phone, email = phone_email(resource.get("telecom"))
    postcode = ((resource.get("address") or [{}])[0]).get("postalCode")
    return {
        "name": resource.get("name"),
        "kind": kind,
        "ods_code": ods,
        "urn": urn,
        "phone": phone,
        "email": email,
        "postcode": postcode,
    }
