"""A TAC's plan -> CarePlan: each action an activity (its area of need coded, its owner the performer,
its date the end of the scheduled period), each review a complex extension. Outbound only (the plan
changes through /api/v1 and the pages); the subject access export carries it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from directory.models import TacAction, TacReview, TacStatus
from directory.models.plan import AREA_LABELS
from interop import systems as S
from interop.mapping.common import extension, fhir_id, meta_of, ref_to, validated

_PLAN_STATUS = {
    TacStatus.FORMING.value: "draft",
    TacStatus.CONVENED.value: "active",
    TacStatus.CLOSED.value: "completed",
}
_ACTIVITY_STATUS = {"open": "not-started", "done": "completed", "dropped": "cancelled"}


def _activity(action: TacAction, owners: Mapping[Any, str]) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "code": {
            "coding": [{"system": S.PLAN_AREA, "code": action.area, "display": AREA_LABELS.get(action.area)}]
        },
        "status": _ACTIVITY_STATUS[action.status],
        "scheduledPeriod": {"end": action.due_date.isoformat()},
        "description": action.title,
    }
    if action.owner_practitioner_id is None:
        detail["performer"] = [{"display": "the family"}]
    else:
        detail["performer"] = [
            ref_to("Practitioner", action.owner_practitioner_id, owners.get(action.owner_practitioner_id))
        ]
    return {"id": fhir_id(action.id), "detail": detail}


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
    tac: Any,
    actions: Sequence[TacAction],
    reviews: Sequence[TacReview],
    *,
    owners: Mapping[Any, str],
) -> dict[str, Any]:
    """A TAC's plan as a CarePlan (`owners`: the names of the practitioners the caller may see)."""
    extensions = [_review(r) for r in reviews]
    if tac.next_review_date:
        extensions.append(extension(S.EXT_NEXT_REVIEW, valueDate=tac.next_review_date.isoformat()))
    res: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": fhir_id(tac.id),
        "meta": meta_of(updated=tac.updated_at),
        "status": _PLAN_STATUS.get(tac.status, "unknown"),
        "intent": "plan",
        "title": "Team Around the Child plan",
        "subject": ref_to("Patient", tac.child_id),
        "careTeam": [ref_to("CareTeam", tac.id)],
        "activity": [_activity(a, owners) for a in actions],
    }
    if extensions:
        res["extension"] = extensions
    if tac.convened_at:
        res["period"] = {"start": tac.convened_at.isoformat()}
    return validated(res)
