"""Many practitioners start a CAF for the same child at once: exactly one wins, on both databases."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import service
from directory.db import unit_of_work
from directory.errors import CafAlreadyOpen, Conflict
from directory.models import Assessment, CafSignal, HandOver, LeadProfessionalAssignment, utcnow
from tests.fixtures.builders import actor, make_child, make_practitioner

STARTERS = 12


def _setup(engine: Engine, practitioners: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    with unit_of_work(engine) as s:
        child = make_child(s)
        people = [make_practitioner(s, name=f"Practitioner {i}").id for i in range(practitioners)]
    return child, people


def test_parallel_caf_signals_exactly_one_wins(engine: Engine) -> None:
    child, people = _setup(engine, STARTERS)
    barrier = threading.Barrier(STARTERS)

    def attempt(practitioner_id: uuid.UUID) -> str:
        barrier.wait()
        try:
            with unit_of_work(engine) as s:
                service.signal_caf(
                    s,
                    actor=actor(subject=str(practitioner_id), practitioner_id=practitioner_id),
                    child_id=child,
                    data=CafSignal(no_risk_of_significant_harm=True),
                    signal_days=14,
                    now=utcnow(),
                )
            return "won"
        except CafAlreadyOpen as exc:
            assert exc.data["holder"]["name"].startswith("Practitioner ")
            return "refused"

    with ThreadPoolExecutor(STARTERS) as pool:
        outcomes = list(pool.map(attempt, people))
    assert outcomes.count("won") == 1
    assert outcomes.count("refused") == STARTERS - 1
    with Session(engine) as s:
        open_cafs = s.exec(sa.select(Assessment).where(Assessment.child_id == child)).scalars().all()
        assert len(open_cafs) == 1
        leads = (
            s.exec(sa.select(LeadProfessionalAssignment).where(LeadProfessionalAssignment.child_id == child))
            .scalars()
            .all()
        )
        assert len(leads) == 1 and leads[0].practitioner_id == open_cafs[0].lead_practitioner_id


def test_parallel_hand_overs_leave_exactly_one_current_lead(engine: Engine) -> None:
    child, people = _setup(engine, 8)
    with unit_of_work(engine) as s:
        caf = service.signal_caf(
            s,
            actor=actor(practitioner_id=people[0]),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
    barrier = threading.Barrier(7)

    def hand_over(to: uuid.UUID) -> str:
        barrier.wait()
        try:
            with unit_of_work(engine) as s:
                service.hand_over_lead(
                    s,
                    actor=actor(practitioner_id=people[0]),
                    caf_id=caf.id,
                    now=utcnow(),
                    data=HandOver(to_practitioner_id=to, reason="rebalancing"),
                )
            return "ok"
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(7) as pool:
        outcomes = list(pool.map(hand_over, people[1:]))
    assert outcomes.count("ok") >= 1
    with Session(engine) as s:
        current = (
            s.exec(
                sa.select(LeadProfessionalAssignment).where(
                    LeadProfessionalAssignment.child_id == child,
                    LeadProfessionalAssignment.ended_at.is_(None),
                )
            )
            .scalars()
            .all()
        )
        assert len(current) == 1
        final = s.get(Assessment, caf.id)
        assert final is not None and final.lead_practitioner_id == current[0].practitioner_id
        history = (
            s.exec(sa.select(LeadProfessionalAssignment).where(LeadProfessionalAssignment.child_id == child))
            .scalars()
            .all()
        )
        assert len(history) == 1 + outcomes.count("ok")
