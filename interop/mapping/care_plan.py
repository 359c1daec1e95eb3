"""A TAC's plan -> CarePlan: each action an activity (its area of need coded, its owner the performer,
its date the end of the scheduled period), each review a complex extension. Outbound only (the plan
changes through /api/v1 and the pages): /fhir/CarePlan (read, search by patient) and the subject
access export."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from directory.models import Tac, TacReview, TacStatus
from directory.models.plan import AREA_LABELS
from interop import systems as S
from interop.mapping.common import extension, fhir_id, meta_of, ref_to, validated

_PLAN_STATUS = {
    TacStatus.FORMING.value: "draft",
    TacStatus.CONVENED.value: "active",
    TacStatus.CLOSED.value: "completed",
}
_ACTIVITY_STATUS = {"open": "not-started", "done": "completed", "dropped": "cancelled"}


@dataclass(frozen=True)
class PlanActivity:
    """An action as the caller may see it: its owner the family, a practitioner (named), or withheld."""

    id: uuid.UUID
    title: str
    area: str
    status: str
    due_date: date
    owner: str  # "family", "practitioner" or "withheld"
    owner_id: uuid.UUID | None = None
    owner_name: str | None = None


def _activity(action: PlanActivity) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "code": {
            "coding": [{"system": S.PLAN_AREA, "code": action.area, "display": AREA_LABELS.get(action.area)}]
        },
        "status": _ACTIVITY_STATUS[action.status],
        "scheduledPeriod": {"end": action.due_date.isoformat()},
        "description": action.title,
    }
    if action.owner == "family":
        detail["performer"] = [{"display": "the family"}]
    elif action.owner == "practitioner":
        detail["performer"] = [ref_to("Practitioner", action.owner_id, action.owner_name)]
    return {"id": fhir_id(action.id), "detail": detail}  # (a withheld owner: no performer at all)


def _review(review: TacReview) -> dict[str, Any]:
    parts = [
        extension("heldOn", valueDate=review.held_on.isoformat()),
        extension("outcome", valueCode=review.outcome),
        extension("familyHasPlan", valueBoolean=review.family_has_plan),
    ]
    if review.next_review_date is not None:
        parts.append(extension("nextReviewDate", valueDate=review.next_review_date.isoformat()))
    return {"url": S.EXT_TAC_REVIEW, "extension": parts}


def care_plan(
    tac: Tac,
    actions: Sequence[PlanActivity],
    reviews: Sequence[TacReview],
    *,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A TAC's plan as a CarePlan: its actions as the caller may see them, its reviews."""
    extensions = [_review(r) for r in reviews]
    if tac.next_review_date:
        extensions.append(extension(S.EXT_NEXT_REVIEW, valueDate=tac.next_review_date.isoformat()))
    res: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": fhir_id(tac.id),
        "meta": meta_of(updated=updated or tac.updated_at),
        "status": _PLAN_STATUS.get(tac.status, "unknown"),
        "intent": "plan",
        "title": "Team Around the Child plan",
        "subject": ref_to("Patient", tac.child_id),
        "careTeam": [ref_to("CareTeam", tac.id)],
        "activity": [_activity(a) for a in actions],
    }
    if extensions:
        res["extension"] = extensions
    if tac.convened_at:
        res["period"] = {"start": tac.convened_at.isoformat()}
    return validated(res)
