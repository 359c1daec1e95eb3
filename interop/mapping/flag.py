"""CAF status and "Lead Professional in place" <-> Flag."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from directory.models import CafOutcome, CafRead, ChildCard, LeadProfessionalRead
from interop import systems as S
from interop.mapping.common import (
    MappingError,
    extension,
    extension_value,
    meta_of,
    ref_id,
    ref_to,
    validated,
)

_CAF_OPEN = {"signalled", "in_progress", "completed"}
CAF_OUTCOMES = tuple(o.value for o in CafOutcome)
_CAF_DISPLAY = {
    "signalled": "A practitioner has signalled that they are starting a CAF",
    "in_progress": "CAF (early help assessment) in progress",
    "completed": "CAF completed; plan / TAC running",
    "closed": "CAF closed",
    "expired": "Signal of intent to start a CAF lapsed",
    "withdrawn": "Signal of intent to start a CAF withdrawn",
}


def caf_flag(
    child_id: uuid.UUID,
    caf: CafRead,
    *,
    holder_id: uuid.UUID | None,
    version: int | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """CAF status -> Flag 'caf-<status>': active while the CAF is open, naming the holder to contact."""
    text = _CAF_DISPLAY[caf.status]
    if caf.holder is not None:
        text += f": contact {caf.holder.name}" + (
            f" ({caf.holder.organisation})" if caf.holder.organisation else ""
        )
    elif caf.advice:
        text += f". {caf.advice}"
    period: dict[str, Any] = {"start": caf.signalled_at.isoformat()}
    if caf.closed_at:
        period["end"] = caf.closed_at.isoformat()
    res: dict[str, Any] = {
        "resourceType": "Flag",
        "id": f"caf-{caf.id.hex}",
        "meta": meta_of(version, updated=updated),
        "status": "active" if caf.status in _CAF_OPEN else "inactive",
        "category": [{"coding": [{"system": S.FLAG_CATEGORY, "code": "admin", "display": "Administrative"}]}],
        "code": {
            "coding": [
                {
                    "system": S.FLAG_CODE,
                    "code": f"caf-{caf.status.replace('_', '-')}",
                    "display": _CAF_DISPLAY[caf.status],
                }
            ],
            "text": text,
        },
        "subject": ref_to("Patient", child_id),
        "period": period,
    }
    if holder_id is not None and caf.holder is not None:
        res["author"] = ref_to("Practitioner", holder_id, caf.holder.name)
    if caf.outcome:
        res["extension"] = [extension(S.EXT_CAF_OUTCOME, valueCode=caf.outcome)]
    if not res["meta"]:
        del res["meta"]
    return validated(res)


def lead_flag(
    child_id: uuid.UUID,
    lead: LeadProfessionalRead,
    *,
    version: int | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A current Lead Professional -> Flag 'lead-professional-in-place' naming them and how to reach them.

    Its version is the CAF's: a hand-over moves the CAF on a version.
    """
    how = " or ".join(x for x in (lead.contact.phone, lead.contact.email) if x)
    text = f"Lead Professional in place: {lead.contact.name}"
    if lead.contact.organisation:
        text += f", {lead.contact.organisation}"
    if how:
        text += f" ({how})"
    res = {
        "resourceType": "Flag",
        "id": f"lp-{child_id.hex}",
        **({"meta": meta_of(version, updated=updated)} if version is not None else {}),
        "status": "active",
        "category": [{"coding": [{"system": S.FLAG_CATEGORY, "code": "admin", "display": "Administrative"}]}],
        "code": {
            "coding": [
                {
                    "system": S.FLAG_CODE,
                    "code": "lead-professional-in-place",
                    "display": "Lead Professional in place",
                }
            ],
            "text": text,
        },
        "subject": ref_to("Patient", child_id),
        "period": {"start": lead.since.isoformat()},
        "author": ref_to("Practitioner", lead.practitioner_id, lead.contact.name),
    }
    return validated(res)


def flags(
    card: ChildCard,
    *,
    caf_holder_id: uuid.UUID | None,
    caf_version: int | None = None,
    caf_updated: datetime | None = None,
) -> list[dict[str, Any]]:
    """The at-a-glance Flags of a card: CAF status, and Lead Professional in place (both the CAF's
    version and last change: a hand-over moves the CAF on)."""
    out = []
    if card.caf is not None:
        out.append(
            caf_flag(card.id, card.caf, holder_id=caf_holder_id, version=caf_version, updated=caf_updated)
        )
    if card.lead_professional is not None:
        out.append(lead_flag(card.id, card.lead_professional, version=caf_version, updated=caf_updated))
    return out


@dataclass(frozen=True)
class FlagIn:
    """What a Flag says, read back."""

    kind: str  # caf | lead-professional
    child_id: uuid.UUID
    caf_status: str | None
    active: bool
    practitioner_id: uuid.UUID | None
    consent_id: uuid.UUID | None = None  # the consent a CAF is started with
    outcome: str | None = None  # the outcome a CAF is completed with
    reason: str | None = None  # why it is closed or handed over
    no_significant_harm: bool | None = None  # a signal's confirmation that the child is not at risk


def flag_in(resource: dict[str, Any]) -> FlagIn:
    """Flag -> what it says about the CAF or the Lead Professional."""
    validated(resource)
    code = ((resource.get("code") or {}).get("coding") or [{}])[0]
    if code.get("system") != S.FLAG_CODE:
        raise MappingError("Not a flag of this directory.", where="Flag.code", code="code-invalid")
    value = code.get("code", "")
    author = resource.get("author")
    pid = ref_id(author, "Practitioner", where="Flag.author") if author else None
    child_id = ref_id(resource.get("subject"), "Patient", where="Flag.subject")
    reason = extension_value(resource, S.EXT_CHANGE_REASON, "valueString")
    active = resource.get("status") == "active"
    if value == "lead-professional-in-place":
        return FlagIn("lead-professional", child_id, None, active, pid, reason=reason)
    if value.startswith("caf-"):
        status = value.removeprefix("caf-").replace("-", "_")
        if status not in _CAF_DISPLAY:
            raise MappingError(f"Unknown CAF status '{status}'.", where="Flag.code", code="code-invalid")
        consent_ref = extension_value(resource, S.EXT_CAF_CONSENT, "valueReference")
        outcome = extension_value(resource, S.EXT_CAF_OUTCOME, "valueCode")
        if outcome is not None and outcome not in CAF_OUTCOMES:
            raise MappingError(
                f"'{outcome}' is not a CAF outcome ({', '.join(CAF_OUTCOMES)}).",
                where="Flag.extension",
                code="code-invalid",
            )
        return FlagIn(
            "caf",
            child_id,
            status,
            active,
            pid,
            consent_id=ref_id(consent_ref, "Consent", where="Flag.extension") if consent_ref else None,
            outcome=outcome,
            reason=reason,
            no_significant_harm=extension_value(resource, S.EXT_NO_SIGNIFICANT_HARM, "valueBoolean"),
        )
    raise MappingError(f"Unknown flag '{value}'.", where="Flag.code", code="code-invalid")
