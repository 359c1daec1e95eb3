"""Early help assessments (CAFs) of the seeded children, with their Lead Professionals and TACs.

A CAF's dates follow its life (signalled, started with consent, completed with an outcome,
closed or expired or withdrawn); its initiator is Lead Professional until, for some, a
hand-over; a TAC forms once work started, unless the outcome needed none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from childindex.demo.base import SEEDED_BY
from childindex.demo.child_case import ChildCase

_STATUSES = ("signalled", "in_progress", "completed", "closed", "expired", "withdrawn")
_WEIGHTS = (0.10, 0.30, 0.25, 0.30, 0.03, 0.02)


def maybe_caf(case: ChildCase, level: int) -> None:
    """A closed, stepped-up CAF for some at level 4; a CAF at any stage for some at levels 2-3."""
    rng, age = case.run.rng, case.age
    if level == 4 and age is not None and age >= 1 and rng.random() < 0.3:
        add_caf(case, status="closed", stepped_up=True)
    elif level in (2, 3) and rng.random() < 0.13:
        status = rng.choices(_STATUSES, _WEIGHTS)[0]
        if (age is None or age < 2) and status not in ("signalled", "in_progress"):
            status = "in_progress"
        add_caf(case, status=status, stepped_up=False)


@dataclass
class _Times:
    """When a CAF moved through its life, and what it ended with."""

    signalled: datetime
    expires: datetime
    started: datetime | None = None
    completed: datetime | None = None
    closed: datetime | None = None
    consent_id: uuid.UUID | None = None
    outcome: str | None = None
    closed_reason: str | None = None


def add_caf(case: ChildCase, *, status: str, stepped_up: bool) -> None:
    """One CAF in the status, its Lead Professional spells and (for some) its TAC."""
    run = case.run
    candidates = [
        (p, role) for p, role in case.named if role not in ("social worker", "GP", "detective constable")
    ]
    initiator = run.rng.choice(candidates)[0] if candidates else case.pool("early_help")
    caf_id = run.ids.uuid()
    times = _times(case, status, stepped_up)
    open_ = status in ("signalled", "in_progress", "completed")
    lead, spells = _lead_spells(case, initiator, times)
    case.rows["assessment"].append(
        {
            "id": caf_id,
            "child_id": case.id,
            "status": status,
            "initiator_id": initiator,
            "lead_practitioner_id": lead,
            "consent_id": times.consent_id,
            "signalled_at": times.signalled,
            "signal_expires_at": times.expires,
            "started_at": times.started,
            "completed_at": times.completed,
            "closed_at": times.closed,
            "outcome": times.outcome,
            "closed_reason": times.closed_reason,
            "version": 1,
        }
    )
    for i, (who, from_, reason, at) in enumerate(spells):
        ended = spells[i + 1][3] if i + 1 < len(spells) else (None if open_ else times.closed)
        case.rows["lead_professional_assignment"].append(
            {
                "id": run.ids.uuid(),
                "child_id": case.id,
                "assessment_id": caf_id,
                "practitioner_id": who,
                "from_practitioner_id": from_,
                "reason": reason,
                "assigned_by": SEEDED_BY,
                "started_at": at,
                "ended_at": ended,
            }
        )
    _tac(case, caf_id, lead, status, times)


def _signalled(case: ChildCase, status: str) -> datetime:
    """When the signal of intent was made: further back the further on the CAF is."""
    run = case.run
    max_back = max(20.0, min(1500.0, (case.age or 0) * 365.0))
    if status == "signalled":
        return run.dt(0, 12)
    if status in ("expired", "withdrawn"):
        return run.dt(20, min(300.0, max_back))
    if status == "in_progress":
        return run.dt(20, min(200.0, max_back))
    if status == "completed":
        return run.dt(60, min(500.0, max(61.0, max_back)))
    return run.dt(200, max(201.0, max_back))


def _times(case: ChildCase, status: str, stepped_up: bool) -> _Times:
    """The CAF's dates, consent, outcome and closing reason for its status."""
    run = case.run
    rng = run.rng
    signalled = _signalled(case, status)
    t = _Times(signalled=signalled, expires=signalled + timedelta(days=14))
    if status in ("in_progress", "completed", "closed"):
        t.started = signalled + timedelta(days=rng.uniform(1, 12))
        t.consent_id = case.consent("caf", t.started - timedelta(hours=rng.uniform(0, 48)))
    if status in ("completed", "closed"):
        assert t.started is not None
        t.completed = min(t.started + timedelta(days=rng.uniform(14, 45)), run.now - timedelta(days=1))
        t.outcome = (
            "stepped_up_to_social_care"
            if stepped_up
            else rng.choices(
                ("multi_agency_response", "needs_met_in_service", "no_further_action"),
                (0.7, 0.25, 0.05),
            )[0]
        )
    if status == "closed":
        assert t.completed is not None
        t.closed = min(t.completed + timedelta(days=rng.uniform(60, 400)), run.now - timedelta(hours=1))
        t.closed_reason = (
            "stepped up to children's social care"
            if stepped_up
            else rng.choice(
                (
                    "the plan's outcomes were met",
                    "the family moved out of the area",
                    "the family withdrew consent",
                )
            )
        )
    elif status == "expired":
        t.closed = t.expires
        t.closed_reason = "the signal of intent expired before a CAF was started"
    elif status == "withdrawn":
        t.closed = signalled + timedelta(days=rng.uniform(1, 10))
        t.closed_reason = "signal withdrawn: needs met within the service"
    return t


_Spell = tuple[uuid.UUID, uuid.UUID | None, str, datetime]  # who, handed over from, why, from when


def _lead_spells(case: ChildCase, initiator: uuid.UUID, times: _Times) -> tuple[uuid.UUID, list[_Spell]]:
    """The Lead Professional: the initiator, maybe handed over once the TAC met."""
    run = case.run
    rng = run.rng
    lead = initiator
    spells: list[_Spell] = [
        (
            initiator,
            None,
            "CAF initiator is Lead Professional until a TAC or panel appoints one",
            times.signalled,
        )
    ]
    others = [p for p, _ in case.named if p != initiator]
    if times.started is not None and rng.random() < 0.3:
        handover_at = times.started + timedelta(days=rng.uniform(5, 40))
        if handover_at < (times.closed or run.now):
            lead = rng.choice(others) if others else case.pool("early_help")
            if lead != initiator:
                reason = rng.choice(
                    (
                        "appointed Lead Professional by the TAC",
                        "hand-over: the initiator moved post",
                        "the family asked for a practitioner they already know",
                    )
                )
                spells.append((lead, initiator, reason, handover_at))
            else:
                lead = initiator
    return lead, spells


def _tac(case: ChildCase, caf_id: uuid.UUID, lead: uuid.UUID, status: str, times: _Times) -> None:
    """The Team Around the Child, once work started and unless the outcome needed none."""
    run = case.run
    rng, today, now = run.rng, run.today, run.now
    if times.started is None or times.outcome in ("needs_met_in_service", "no_further_action"):
        return
    if status == "in_progress" and rng.random() < 0.7:
        return
    forming = status == "in_progress"
    members = [(lead, "Lead Professional")] + [(p, r) for p, r in case.named if p != lead]
    while len(members) < (2 if forming else rng.randint(3, 5)):
        extra = case.pool(rng.choice(("early_help", "school_nursing", "youth_service", "camhs")))
        if extra not in {m for m, _ in members}:
            members.append((extra, "TAC member"))
    members = members[: 2 if forming else 6]
    tac_id = run.ids.uuid()
    convened = None if forming else (times.completed or times.started) + timedelta(days=rng.uniform(1, 20))
    if convened is not None:
        convened = min(convened, now - timedelta(hours=2))
    review = None if forming else today + timedelta(days=rng.randint(-30, 90))
    closed = times.closed if status == "closed" else None
    case.rows["tac"].append(
        {
            "id": tac_id,
            "child_id": case.id,
            "assessment_id": caf_id,
            "status": "forming" if forming else "closed" if status == "closed" else "convened",
            "family_participating": rng.random() < 0.9,
            "convened_at": convened,
            "next_review_date": review,
            "closed_at": closed,
            "version": 1,
        }
    )
    for who, role in members:
        case.rows["tac_member"].append(
            {
                "id": run.ids.uuid(),
                "tac_id": tac_id,
                "practitioner_id": who,
                "role": role,
                "joined_at": convened or times.started,
                "left_at": closed,
            }
        )
