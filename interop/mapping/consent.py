"""Consent <-> Consent: who gave it, its scope, given and withdrawn."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from directory.bounds import DATE_RANGE, date_in_bounds
from directory.models import ConsentRead
from interop import systems as S
from interop.mapping.common import (
    MappingError,
    extension,
    extension_value,
    fhir_id,
    meta_of,
    ref_id,
    ref_to,
    validated,
)

_LOINC_PRIVACY = {"system": S.LOINC, "code": "59284-0", "display": "Patient Consent"}


def consent(c: ConsentRead, child_id: uuid.UUID) -> dict[str, Any]:
    """Consent -> Consent: who gave it (parent/carer or competent young person), scope, given, withdrawn."""
    provision: dict[str, Any] = {"type": "permit", "period": {"start": c.given_at.isoformat()}}
    if c.withdrawn_at:
        provision["period"]["end"] = c.withdrawn_at.isoformat()
    res = {
        "resourceType": "Consent",
        "id": fhir_id(c.id),
        **({"meta": meta_of(updated=c.updated_at)} if c.updated_at else {}),
        "status": "active" if c.current else "inactive",
        "scope": {
            "coding": [
                {"system": S.CONSENT_SCOPE_HL7, "code": "patient-privacy", "display": "Privacy Consent"}
            ]
        },
        "category": [
            {"coding": [_LOINC_PRIVACY]},
            {"coding": [{"system": S.CONSENT_SCOPE, "code": c.scope}]},
        ],
        "patient": ref_to("Patient", child_id),
        "dateTime": c.given_at.isoformat(),
        "performer": [
            {
                "display": c.given_by_name,
                "extension": [extension(S.EXT_CONSENT_GIVER, valueCode=c.given_by_kind)],
            }
        ],
        "policy": [{"uri": S.CONSENT_POLICY}],
        "provision": provision,
    }
    return validated(res)


@dataclass(frozen=True)
class ConsentIn:
    """A Consent read back: what the domain's ConsentCreate takes, and whether it is withdrawn."""

    child_id: uuid.UUID
    scope: str
    given_by_kind: str | None
    given_by_name: str | None
    related_person_id: uuid.UUID | None
    given_at: datetime | None
    young_person_competent: bool | None
    active: bool
    withdrawn_reason: str | None

    def create_fields(self) -> dict[str, Any]:
        """The fields of the domain's ConsentCreate."""
        return {
            "scope": self.scope,
            "given_by_kind": self.given_by_kind,
            "given_by_name": self.given_by_name,
            "related_person_id": self.related_person_id,
            "given_at": self.given_at,
            "young_person_competent": self.young_person_competent,
        }


CONSENT_STATUSES = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")


def consent_in(resource: dict[str, Any]) -> ConsentIn:
    """Consent -> the domain's consent fields; status active (given) or inactive (withdrawn)."""
    validated(resource)
    status = resource.get("status")
    if status not in ("active", "inactive"):
        raise MappingError(
            "The directory records consents that are active (given) or inactive (withdrawn), "
            f"not '{status}'.",
            where="Consent.status",
            code="not-supported" if status in CONSENT_STATUSES else "code-invalid",
        )
    scope = None
    for cat in resource.get("category") or []:
        for coding in cat.get("coding") or []:
            if coding.get("system") == S.CONSENT_SCOPE:
                scope = coding.get("code")
    if scope is None:
        raise MappingError(
            "Say what the consent covers (category from the consent-scope system).",
            where="Consent.category",
            code="required",
        )
    performer = (resource.get("performer") or [{}])[0]
    kind = extension_value(performer, S.EXT_CONSENT_GIVER, "valueCode")
    related = performer.get("reference")
    related_id = (
        ref_id(performer, "RelatedPerson", where="Consent.performer")
        if isinstance(related, str) and "RelatedPerson/" in related
        else None
    )
    given_at = None
    if resource.get("dateTime"):
        try:
            given_at = datetime.fromisoformat(str(resource["dateTime"]))
        except ValueError:
            raise MappingError("Consent.dateTime is not a date-time.", where="Consent.dateTime") from None
        if not date_in_bounds(given_at):
            raise MappingError(f"Consent.dateTime must fall {DATE_RANGE}.", where="Consent.dateTime")
    return ConsentIn(
        child_id=ref_id(resource.get("patient"), "Patient", where="Consent.patient"),
        scope=scope,
        given_by_kind=kind,
        given_by_name=performer.get("display"),
        related_person_id=related_id,
        given_at=given_at,
        young_person_competent=extension_value(resource, S.EXT_YOUNG_PERSON_COMPETENT, "valueBoolean"),
        active=status == "active",
        withdrawn_reason=extension_value(resource, S.EXT_CHANGE_REASON, "valueString"),
    )
