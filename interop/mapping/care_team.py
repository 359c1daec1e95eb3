"""TAC <-> CareTeam: participants with their roles; the Lead Professional carries the coded role."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from directory.models import Tac
from interop import systems as S
from interop.mapping.common import (
    MappingError,
    extension,
    extension_value,
    fhir_id,
    meta_of,
    parse_date,
    ref_id,
    ref_to,
    validated,
)

LEAD_PROFESSIONAL = "lead-professional"
_TAC_STATUS = {"forming": "proposed", "convened": "active", "closed": "inactive"}
_TAC_STATUS_BACK = {v: k for k, v in _TAC_STATUS.items()}
CORE_GROUP_SYSTEM = f"{S.BASE}/CodeSystem/care-team-category"
CORE_GROUP = {
    "system": CORE_GROUP_SYSTEM,
    "code": "core-group",
    "display": "Core group (stepped up to social care)",
}


@dataclass(frozen=True)
class TeamMember:
    """A TAC member as the CareTeam shows them."""

    practitioner_id: uuid.UUID
    name: str
    role: str
    organisation: str | None = None


def care_team(
    tac: Tac,
    members: Sequence[TeamMember],
    *,
    lead_practitioner_id: uuid.UUID | None,
    version: int | None = None,
    updated: datetime | None = None,
    core_group: bool = False,
) -> dict[str, Any]:
    """TAC -> CareTeam: each practitioner with their role; the Lead Professional carries the coded LP role.

    `version` defaults to the TAC's; the FHIR surface passes TAC version + CAF version, so that a
    Lead Professional hand-over (which moves the CAF on) also moves the CareTeam's version. A TAC
    stepped up to social care is the core group: a second category coding says so (docs/panel.md).
    """
    participants = []
    for m in members:
        roles: list[dict[str, Any]] = [{"text": m.role}]
        if m.practitioner_id == lead_practitioner_id:
            roles.insert(
                0,
                {
                    "coding": [
                        {
                            "system": S.CARE_TEAM_ROLE,
                            "code": LEAD_PROFESSIONAL,
                            "display": "Lead Professional",
                        }
                    ]
                },
            )
        participants.append({"role": roles, "member": ref_to("Practitioner", m.practitioner_id, m.name)})
    extensions = [extension(S.EXT_FAMILY_PARTICIPATING, valueBoolean=tac.family_participating)]
    if tac.next_review_date:
        extensions.append(extension(S.EXT_NEXT_REVIEW, valueDate=tac.next_review_date.isoformat()))
    res: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": fhir_id(tac.id),
        "meta": meta_of(tac.version if version is None else version, updated=updated or tac.updated_at),
        "extension": extensions,
        "status": _TAC_STATUS[tac.status],
        "category": [
            {
                "coding": [
                    {
                        "system": S.LOINC,
                        "code": "LA28865-6",
                        "display": "Longitudinal care-coordination focused care team",
                    }
                ]
            }
        ],
        "name": "Team Around the Child",
        "subject": ref_to("Patient", tac.child_id),
        "participant": participants,
    }
    if core_group:
        res["category"].append({"coding": [CORE_GROUP]})
        res["name"] = "Core group (Team Around the Child stepped up to social care)"
    if tac.convened_at:
        res["period"] = {"start": tac.convened_at.isoformat()}
    return validated(res)


@dataclass(frozen=True)
class CareTeamIn:
    """A CareTeam read back: status, members and who is Lead Professional."""

    child_id: uuid.UUID
    status: str
    members: list[tuple[uuid.UUID, str]]
    lead_practitioner_id: uuid.UUID | None
    family_participating: bool | None  # None when the resource does not say
    next_review_date: date | None
    reason: str | None = None  # why the Lead Professional changes, when it does


def care_team_in(resource: dict[str, Any]) -> CareTeamIn:
    """CareTeam -> TAC fields."""
    validated(resource)
    status = _TAC_STATUS_BACK.get(resource.get("status", ""))
    if status is None:
        raise MappingError(
            "A TAC is proposed, active or inactive.", where="CareTeam.status", code="code-invalid"
        )
    members: list[tuple[uuid.UUID, str]] = []
    lead = None
    for i, p in enumerate(resource.get("participant") or []):
        pid = ref_id(p.get("member"), "Practitioner", where=f"CareTeam.participant[{i}].member")
        text = None
        for r in p.get("role") or []:
            if any(
                c.get("system") == S.CARE_TEAM_ROLE and c.get("code") == LEAD_PROFESSIONAL
                for c in r.get("coding") or []
            ):
                lead = pid
            elif r.get("text"):
                text = r["text"]
        members.append((pid, text or "member"))
    return CareTeamIn(
        child_id=ref_id(resource.get("subject"), "Patient", where="CareTeam.subject"),
        status=status,
        members=members,
        lead_practitioner_id=lead,
        family_participating=extension_value(resource, S.EXT_FAMILY_PARTICIPATING, "valueBoolean"),
        next_review_date=parse_date(
            extension_value(resource, S.EXT_NEXT_REVIEW, "valueDate"), "CareTeam.extension"
        ),
        reason=extension_value(resource, S.EXT_CHANGE_REASON, "valueString"),
    )
