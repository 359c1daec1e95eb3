"""Requests about a CAF (directory/service/requests.py), on SQLite and PostgreSQL: a Lead Professional
hand-over the named practitioner accepts or declines, asks to join a TAC, invitations. Whoever is not
addressed, an answered request and a closed CAF are refused and change nothing; of fifty answers at
once exactly one takes effect."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory import service
from directory.db import unit_of_work
from directory.errors import Conflict, DomainError, InvalidInput, NotAllowed
from directory.models import (
    AuditEvent,
    CafClose,
    CafRequest,
    CafSignal,
    CafStart,
    ConsentCreate,
    HandOver,
    JoinAsk,
    LeadProfessionalAssignment,
    RequestAnswer,
    Role,
    ShieldSet,
    TacConvene,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from tests.fixtures.builders import actor, make_child, make_practitioner


@dataclass
class Case:
    child: uuid.UUID
    caf: uuid.UUID
    sam: uuid.UUID  # initiator and Lead Professional
    hana: uuid.UUID
    dee: uuid.UUID
    olly: uuid.UUID  # no part in it


def me(practitioner_id: uuid.UUID, role: Role = Role.PRACTITIONER) -> Any:
    return actor(role, subject=f"s-{practitioner_id.hex[:8]}", practitioner_id=practitioner_id)


def open_case(engine: Engine, *, started: bool = True, shielded: bool = False) -> Case:
    with unit_of_work(engine) as s:
        child = make_child(s)
        sam, hana, dee, olly = (
            make_practitioner(s, name=n, role=r).id
            for n, r in (
                ("Sam Carter", "SENCO"),
                ("Hana Begum", "health visitor"),
                ("Dee Walsh", "youth worker"),
                ("Olly Stone", "class teacher"),
            )
        )
        caf = service.signal_caf(
            s,
            actor=me(sam),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        if started:
            consent = service.record_consent(
                s,
                actor=me(sam),
                child_id=child,
                data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="A parent"),
            )
            service.start_caf(
                s, actor=me(sam), caf_id=caf.id, data=CafStart(consent_id=consent.id), now=utcnow()
            )
        if shielded:
            service.set_shield(
                s,
                actor=actor(Role.DESIGNATED_PRACTITIONER, subject="dp"),
                child_id=child,
                data=ShieldSet(reason="family fleeing violence"),
            )
        return Case(child, caf.id, sam, hana, dee, olly)


def ask_hand_over(engine: Engine, case: Case, to: uuid.UUID, by: uuid.UUID | None = None) -> uuid.UUID:
    with unit_of_work(engine) as s:
        out = service.request_hand_over(
            s,
            actor=me(by or case.sam),
            caf_id=case.caf,
            data=HandOver(to_practitioner_id=to, reason="closer to the family"),
            now=utcnow(),
        )
        assert out.request is not None and out.assignment is None
        return out.request.id


def answer(engine: Engine, request_id: uuid.UUID, by: uuid.UUID, accept: bool = True) -> CafRequest:
    with unit_of_work(engine) as s:
        return service.answer_request(
            s, actor=me(by), request_id=request_id, accept=accept, data=RequestAnswer(), now=utcnow()
        )


def lead(engine: Engine, child: uuid.UUID) -> uuid.UUID | None:
    with Session(engine) as s:
        row = service.repo.current_lead(s, child)
        return row.practitioner_id if row else None


def events(engine: Engine, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    with Session(engine) as s:
        rows = s.exec(
            select(AuditEvent).where(col(AuditEvent.action).startswith(prefix)).order_by(col(AuditEvent.seq))
        ).all()
        return [(r.action, json.loads(r.detail or "{}")) for r in rows]


def snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            t: sorted(map(repr, conn.execute(sa.text(f"SELECT * FROM {t}"))))
            for t in ("caf_request", "lead_professional_assignment", "assessment", "tac", "tac_member")
        }


# --------------------------------------------------------------------------- hand-over


def test_a_hand_over_waits_for_the_named_practitioner_then_takes_effect(engine: Engine) -> None:
    case = open_case(engine)
    request_id = ask_hand_over(engine, case, case.hana)
    assert lead(engine, case.child) == case.sam  # the current one stays until accepted
    ((action, detail),) = events(engine, "lead-professional.")
    assert action == "lead-professional.hand-over.request"
    assert detail == {"caf_id": case.caf.hex, "request_id": request_id.hex, "to": case.hana.hex}
    done = answer(engine, request_id, case.hana)
    assert done.status == "accepted" and lead(engine, case.child) == case.hana
    with Session(engine) as s:
        spell = s.exec(
            select(LeadProfessionalAssignment).where(col(LeadProfessionalAssignment.ended_at).is_(None))
        ).one()
        assert spell.from_practitioner_id == case.sam and spell.reason == "closer to the family"
    assert events(engine, "lead-professional.")[-1] == (
        "lead-professional.hand-over",
        {
            "caf_id": case.caf.hex,
            "request_id": request_id.hex,
            "requester": case.sam.hex,
            "from": case.sam.hex,
        },
    )


def test_a_declined_hand_over_changes_nothing_but_its_status(engine: Engine) -> None:
    case = open_case(engine)
    request_id = ask_hand_over(engine, case, case.hana)
    assert answer(engine, request_id, case.hana, accept=False).status == "declined"
    assert lead(engine, case.child) == case.sam
    assert events(engine, "lead-professional.")[-1] == (
        "lead-professional.hand-over.decline",
        {
            "caf_id": case.caf.hex,
            "request_id": request_id.hex,
            "requester": case.sam.hex,
            "to": case.hana.hex,
        },
    )


@pytest.mark.parametrize("who", ["sam", "dee", "olly"])
def test_only_the_named_practitioner_answers_a_hand_over(engine: Engine, who: str) -> None:
    case = open_case(engine)
    request_id = ask_hand_over(engine, case, case.hana)
    before = snapshot(engine)
    for accept in (True, False):
        with pytest.raises(NotAllowed, match="addressed to someone else"):
            answer(engine, request_id, getattr(case, who), accept)
    assert snapshot(engine) == before


def test_an_answered_request_cannot_be_answered_again(engine: Engine) -> None:
    case = open_case(engine)
    request_id = ask_hand_over(engine, case, case.hana)
    answer(engine, request_id, case.hana)
    before = snapshot(engine)
    for accept in (True, False):
        with pytest.raises(Conflict, match="already accepted"):
            answer(engine, request_id, case.hana, accept)
    assert snapshot(engine) == before


def test_a_request_on_a_closed_caf_cannot_be_accepted(engine: Engine) -> None:
    case = open_case(engine)
    request_id = ask_hand_over(engine, case, case.hana)
    with unit_of_work(engine) as s:
        service.close_caf(
            s, actor=me(case.sam), caf_id=case.caf, data=CafClose(reason="needs met"), now=utcnow()
        )
    before = snapshot(engine)
    with pytest.raises(Conflict, match="closed"):
        answer(engine, request_id, case.hana)
    assert snapshot(engine) == before and lead(engine, case.child) is None
    with Session(engine) as s:
        assert service.my_requests(s, actor=me(case.hana))[0].status == "lapsed"


def test_a_new_hand_over_replaces_the_pending_one(engine: Engine) -> None:
    case = open_case(engine)
    first = ask_hand_over(engine, case, case.hana)
    assert ask_hand_over(engine, case, case.hana) == first  # the same again: the same request, no event
    assert len(events(engine, "lead-professional.hand-over.request")) == 1
    second = ask_hand_over(engine, case, case.dee)
    assert events(engine, "lead-professional.hand-over.request")[-1][1]["replaces"] == first.hex
    with pytest.raises(Conflict, match="already replaced"):
        answer(engine, first, case.hana)
    answer(engine, second, case.dee)
    assert lead(engine, case.child) == case.dee


def test_naming_yourself_takes_the_role_at_once(engine: Engine) -> None:
    case = open_case(engine)
    with unit_of_work(engine) as s:  # Hana, a TAC member, takes the role on herself
        service.update_tac(
            s,
            actor=me(case.sam),
            caf_id=case.caf,
            data=TacUpdate(add_members=[TacMemberIn(practitioner_id=case.hana, role="health visitor")]),
            now=utcnow(),
        )
    with unit_of_work(engine) as s:
        out = service.request_hand_over(
            s,
            actor=me(case.hana),
            caf_id=case.caf,
            data=HandOver(to_practitioner_id=case.hana, reason="I see them weekly"),
            now=utcnow(),
        )
        assert out.request is None and out.assignment is not None
    assert lead(engine, case.child) == case.hana


def test_who_may_ask_is_who_may_change_the_caf(engine: Engine) -> None:
    case = open_case(engine)
    before = snapshot(engine)
    with pytest.raises(NotAllowed), unit_of_work(engine) as s:
        service.request_hand_over(
            s,
            actor=me(case.olly),
            caf_id=case.caf,
            data=HandOver(to_practitioner_id=case.olly, reason="x"),
            now=utcnow(),
        )
    assert snapshot(engine) == before


def test_the_new_lead_joins_a_convened_tac(engine: Engine) -> None:
    case = open_case(engine)
    with unit_of_work(engine) as s:
        tac = service.update_tac(
            s,
            actor=me(case.sam),
            caf_id=case.caf,
            data=TacUpdate(
                add_members=[
                    TacMemberIn(practitioner_id=p, role="member") for p in (case.sam, case.hana, case.olly)
                ]
            ),
            now=utcnow(),
        )
        service.convene_tac(
            s,
            actor=me(case.sam),
            tac_id=tac.id,
            data=TacConvene(next_review_date=date.today() + timedelta(days=30)),
            now=utcnow(),
        )
    answer(engine, ask_hand_over(engine, case, case.dee), case.dee)
    with Session(engine) as s:
        members = {m.practitioner_id: m.role for m in service.repo.tac_members(s, tac.id)}
    assert members[case.dee] == "youth worker" and lead(engine, case.child) == case.dee


# --------------------------------------------------------------------------- ask to join


def test_an_ask_to_join_is_answered_by_the_holder(engine: Engine) -> None:
    case = open_case(engine)
    with unit_of_work(engine) as s:
        asked = service.ask_to_join(
            s, actor=me(case.hana), caf_id=case.caf, data=JoinAsk(role="health visitor"), now=utcnow()
        )
    ((action, detail),) = events(engine, "tac.join")
    assert action == "tac.join.request" and detail["to"] == [case.sam.hex]
    for who in (case.hana, case.olly):  # neither the asker nor a stranger answers it
        with pytest.raises(NotAllowed, match="holder or its Lead Professional"):
            answer(engine, asked.id, who)
    with pytest.raises(Conflict, match="already asked"), unit_of_work(engine) as s:
        service.ask_to_join(
            s, actor=me(case.hana), caf_id=case.caf, data=JoinAsk(role="health visitor"), now=utcnow()
        )
    answer(engine, asked.id, case.sam)
    with Session(engine) as s:
        tac = service.repo.tac_for_caf(s, case.caf)  # formed by the acceptance
        assert tac is not None
        assert {m.practitioner_id: m.role for m in service.repo.tac_members(s, tac.id)} == {
            case.hana: "health visitor"
        }
    assert events(engine, "tac.join")[-1] == (
        "tac.join.accept",
        {
            "caf_id": case.caf.hex,
            "request_id": asked.id.hex,
            "tac_id": tac.id.hex,
            "requester": case.hana.hex,
        },
    )
    with pytest.raises(Conflict, match="already a member"), unit_of_work(engine) as s:
        service.ask_to_join(
            s, actor=me(case.hana), caf_id=case.caf, data=JoinAsk(role="health visitor"), now=utcnow()
        )


def test_an_ask_to_join_is_refused_before_the_caf_starts_and_by_its_holder(engine: Engine) -> None:
    case = open_case(engine, started=False)
    with pytest.raises(Conflict, match="has started"), unit_of_work(engine) as s:
        service.ask_to_join(s, actor=me(case.hana), caf_id=case.caf, data=JoinAsk(role="x"), now=utcnow())
    started = open_case(engine)
    with pytest.raises(Conflict, match="You hold this CAF"), unit_of_work(engine) as s:
        service.ask_to_join(
            s, actor=me(started.sam), caf_id=started.caf, data=JoinAsk(role="x"), now=utcnow()
        )
    assert events(engine, "tac.join") == []


def test_a_shielded_childs_holder_is_not_named_to_the_asker(engine: Engine) -> None:
    case = open_case(engine, shielded=True)
    with unit_of_work(engine) as s:
        asked = service.ask_to_join(
            s, actor=me(case.hana), caf_id=case.caf, data=JoinAsk(role="health visitor"), now=utcnow()
        )
        shown = service.request_read(s, me(case.hana), asked).model_dump_json()
        listed = [r.model_dump_json() for r in service.my_requests(s, actor=me(case.hana))]
    assert "Sam Carter" not in shown and all("Sam Carter" not in r for r in listed)
    assert "Hana Begum" in shown  # herself
    with Session(engine) as s:  # the holder sees who asks
        mine = service.my_requests(s, actor=me(case.sam))
    assert (
        mine[0].mine_to_answer
        and mine[0].practitioner is not None
        and mine[0].practitioner.name == "Hana Begum"
    )


# --------------------------------------------------------------------------- invitations


def test_an_invitation_is_answered_by_the_invited_practitioner(engine: Engine) -> None:
    case = open_case(engine)
    with unit_of_work(engine) as s:
        invited = service.invite_to_tac(
            s,
            actor=me(case.sam),
            caf_id=case.caf,
            practitioner_id=case.dee,
            role="youth worker",
            reason=None,
            now=utcnow(),
            source="panel",
        )
        again = service.invite_to_tac(
            s,
            actor=me(case.sam),
            caf_id=case.caf,
            practitioner_id=case.dee,
            role="youth worker",
            reason=None,
            now=utcnow(),
        )
        assert again.id == invited.id and invited.source == "panel"
    assert events(engine, "tac.invite") == [
        ("tac.invite", {"caf_id": case.caf.hex, "request_id": invited.id.hex, "to": case.dee.hex})
    ]
    with pytest.raises(NotAllowed):
        answer(engine, invited.id, case.sam)
    answer(engine, invited.id, case.dee)
    assert events(engine, "tac.invite")[-1][0] == "tac.invite.accept"
    assert events(engine, "tac.invite")[-1][1]["requester"] == case.sam.hex
    with pytest.raises(Conflict, match="already a member"), unit_of_work(engine) as s:
        service.invite_to_tac(
            s,
            actor=me(case.sam),
            caf_id=case.caf,
            practitioner_id=case.dee,
            role="x",
            reason=None,
            now=utcnow(),
        )
    with pytest.raises(InvalidInput), unit_of_work(engine) as s:  # anyone but a holder gives a reason
        service.invite_to_tac(
            s,
            actor=actor(Role.LOCAL_DELIVERY_TEAM, subject="ldt"),
            caf_id=case.caf,
            practitioner_id=case.olly,
            role="x",
            reason=None,
            now=utcnow(),
        )


def test_my_requests_lists_those_to_answer_and_those_made(engine: Engine) -> None:
    case = open_case(engine)
    request_id = ask_hand_over(engine, case, case.hana)
    with Session(engine) as s:
        to_hana = service.my_requests(s, actor=me(case.hana))
        by_sam = service.my_requests(s, actor=me(case.sam))
        olly = service.my_requests(s, actor=me(case.olly))
    assert [(r.id, r.mine_to_answer) for r in to_hana] == [(request_id, True)]
    assert [(r.id, r.mine_to_answer) for r in by_sam] == [(request_id, False)]
    assert olly == []


# --------------------------------------------------------------------------- at once


ANSWERS = 50


def test_fifty_answers_at_once_exactly_one_wins(engine: Engine) -> None:
    case = open_case(engine)
    request_id = ask_hand_over(engine, case, case.hana)
    barrier = threading.Barrier(ANSWERS)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            answer(engine, request_id, case.hana, accept=i % 2 == 0)
            return "won"
        except Conflict:
            return "refused"
        except DomainError as exc:  # pragma: no cover - shown on failure
            return f"other: {exc}"

    with ThreadPoolExecutor(ANSWERS) as pool:
        outcomes = list(pool.map(attempt, range(ANSWERS)))
    assert outcomes.count("won") == 1, outcomes
    assert outcomes.count("refused") == ANSWERS - 1, outcomes
    with Session(engine) as s:
        row = s.get(CafRequest, request_id)
        assert row is not None and row.status in ("accepted", "declined")
        spells = s.exec(
            select(LeadProfessionalAssignment).where(LeadProfessionalAssignment.child_id == case.child)
        ).all()
    assert len(spells) == (2 if row.status == "accepted" else 1)
    answered = [
        a
        for a, _ in events(engine, "lead-professional.hand-over")
        if a != "lead-professional.hand-over.request"
    ]
    assert len(answered) == 1
