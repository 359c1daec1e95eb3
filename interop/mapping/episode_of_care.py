"""Involvement <-> EpisodeOfCare: patient, managing organisation, care manager, period, status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from directory.models import InvolvementUpdate
from interop import systems as S
from interop.mapping.common import (
    LEVEL_DISPLAY,
    MappingError,
    extension,
    extension_value,
    fhir_id,
    is_restricted,
    meta_of,
    parse_date,
    ref_id,
    ref_to,
    validated,
)

EPISODE_STATUSES = ("planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error")


@dataclass(frozen=True)
class EpisodeRow:
    """An involvement as the mapper needs it (all from directory rows)."""

    id: uuid.UUID
    child_id: uuid.UUID
    service_id: uuid.UUID
    service_name: str
    service_type: str
    organisation_id: uuid.UUID
    organisation_name: str | None
    practitioner_id: uuid.UUID | None
    practitioner_name: str | None
    role: str
    level_of_need: int
    start_date: date
    end_date: date | None
    status: str
    sensitive: bool
    consent_id: uuid.UUID | None
    source: str
    last_confirmed_at: datetime | None
    version: int
    updated_at: datetime | None = None


def episode_of_care(row: EpisodeRow) -> dict[str, Any]:
    """Involvement -> EpisodeOfCare: patient, managing organisation, care manager, period, status, type."""
    extensions = [
        extension(
            S.EXT_HEALTHCARE_SERVICE,
            valueReference=ref_to("HealthcareService", row.service_id, row.service_name),
        ),
        extension(S.EXT_INVOLVEMENT_ROLE, valueString=row.role),
        extension(
            S.EXT_LEVEL_OF_NEED,
            valueCoding={
                "system": S.LEVEL_OF_NEED,
                "code": str(row.level_of_need),
                "display": LEVEL_DISPLAY[row.level_of_need],
            },
        ),
        extension(S.EXT_RECORDED_BY_SOURCE, valueString=row.source),
    ]
    if row.last_confirmed_at:
        extensions.append(extension(S.EXT_LAST_CONFIRMED, valueDateTime=row.last_confirmed_at.isoformat()))
    if row.consent_id:
        extensions.append(extension(S.EXT_COVERING_CONSENT, valueReference=ref_to("Consent", row.consent_id)))
    period: dict[str, Any] = {"start": row.start_date.isoformat()}
    if row.end_date:
        period["end"] = row.end_date.isoformat()
    res: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": fhir_id(row.id),
        "meta": meta_of(row.version, restricted=row.sensitive, updated=row.updated_at),
        "extension": extensions,
        "status": "active" if row.status == "active" else "finished",
        "type": [
            {"coding": [{"system": S.SERVICE_TYPE, "code": row.service_type, "display": row.service_name}]}
        ],
        "patient": ref_to("Patient", row.child_id),
        "managingOrganization": ref_to("Organization", row.organisation_id, row.organisation_name),
        "period": period,
    }
    if row.practitioner_id:
        res["careManager"] = ref_to("Practitioner", row.practitioner_id, row.practitioner_name)
    return validated(res)


@dataclass(frozen=True)
class EpisodeIn:
    """An EpisodeOfCare read back into the domain's involvement fields."""

    child_id: uuid.UUID
    service_id: uuid.UUID
    practitioner_id: uuid.UUID | None
    role: str | None
    level_of_need: int | None
    start_date: date
    end_date: date | None
    status: str  # active | ended
    sensitive: bool
    consent_id: uuid.UUID | None
    source: str | None

    def update(self, *, role: str, level_of_need: int) -> InvolvementUpdate:
        """The update shape, with defaults for what the resource left out."""
        return InvolvementUpdate(
            practitioner_id=self.practitioner_id,
            role=self.role or role,
            level_of_need=self.level_of_need or level_of_need,
            end_date=self.end_date if self.status == "ended" else None,
        )


def _status_in(resource: dict[str, Any]) -> str:
    status = resource.get("status")
    if status not in EPISODE_STATUSES:
        raise MappingError(
            f"'{status}' is not an EpisodeOfCare status ({', '.join(EPISODE_STATUSES)}).",
            where="EpisodeOfCare.status",
            code="code-invalid",
        )
    if status not in ("active", "finished"):
        raise MappingError(
            f"The directory records involvements that are active or finished, not '{status}'.",
            where="EpisodeOfCare.status",
            code="not-supported",
        )
    return str(status)


def _level_in(resource: dict[str, Any]) -> int | None:
    level_coding = extension_value(resource, S.EXT_LEVEL_OF_NEED, "valueCoding")
    if level_coding is None:
        return None
    if level_coding.get("system") != S.LEVEL_OF_NEED or level_coding.get("code") not in {"1", "2", "3", "4"}:
        raise MappingError(
            f"The level of need must be a code 1-4 from {S.LEVEL_OF_NEED}.",
            where="EpisodeOfCare.extension",
            code="code-invalid",
        )
    return int(level_coding["code"])


def episode_of_care_in(resource: dict[str, Any]) -> EpisodeIn:
    """EpisodeOfCare -> the domain's involvement fields; refuses statuses the directory does not keep."""
    if resource.get("resourceType") != "EpisodeOfCare":
        raise MappingError(
            f"Expected an EpisodeOfCare, got {resource.get('resourceType') or 'no resourceType'}.",
            where="resourceType",
        )
    validated(resource)
    status = _status_in(resource)
    service = extension_value(resource, S.EXT_HEALTHCARE_SERVICE, "valueReference")
    if service is None:
        raise MappingError(
            f"Say which service is involved: an extension {S.EXT_HEALTHCARE_SERVICE} with a reference "
            "to a HealthcareService.",
            where="EpisodeOfCare.extension",
            code="required",
        )
    level = _level_in(resource)
    period = resource.get("period") or {}
    start = parse_date(period.get("start"), "EpisodeOfCare.period.start")
    if start is None:
        raise MappingError(
            "Give the date the involvement started.", where="EpisodeOfCare.period.start", code="required"
        )
    end = parse_date(period.get("end"), "EpisodeOfCare.period.end")
    if status == "finished" and end is None:
        raise MappingError(
            "A finished episode needs period.end.", where="EpisodeOfCare.period.end", code="required"
        )
    consent = extension_value(resource, S.EXT_COVERING_CONSENT, "valueReference")
    return EpisodeIn(
        child_id=ref_id(resource.get("patient"), "Patient", where="EpisodeOfCare.patient"),
        service_id=ref_id(service, "HealthcareService", where="EpisodeOfCare.extension"),
        practitioner_id=(
            ref_id(resource["careManager"], "Practitioner", where="EpisodeOfCare.careManager")
            if resource.get("careManager")
            else None
        ),
        role=extension_value(resource, S.EXT_INVOLVEMENT_ROLE, "valueString"),
        level_of_need=level,
        start_date=start,
        end_date=end,
        status="active" if status == "active" else "ended",
        sensitive=is_restricted(resource),
        consent_id=ref_id(consent, "Consent", where="EpisodeOfCare.extension") if consent else None,
        source=extension_value(resource, S.EXT_RECORDED_BY_SOURCE, "valueString"),
    )
