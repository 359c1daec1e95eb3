"""Who is told of what, and what each may learn: the people's notifier on SQLite and PostgreSQL.

Each test acts through the domain (or appends the contract's audit events of the parts not built
here), runs the notifier's fan-out, and reads the notices written."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from childindex import people_notify
from directory import service
from directory.db import unit_of_work
from directory.models import (
    Actor,
    CafClose,
    Child,
    Involvement,
    Role,
    Tac,
    TacUpdate,
    utcnow,
)
from directory.models.notifications import EmailOutbox, Notice
from directory.service.common import audit_change
from tests.conftest import count
from tests.notices.scene import build, notices_of, open_caf


def fan_out(engine: Engine, *, email: bool = False) -> int:
    return people_notify.fan_out(engine, email=email)


def test_a_caf_signalled_tells_the_childs_people_once_each_but_not_the_actor(engine: Engine) -> None:
    w = build(engine)
    with unit_of_work(engine) as s:
        from directory.models import CafSignal

        service.signal_caf(
            s,
            actor=w.person("sam"),
            child_id=w.child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
    made = fan_out(engine)
    told = {
        p for p in (w.sam, w.tess, w.nia, w.lee, w.lina, w.wes, w.dee) if notices_of(engine, p, "caf.signal")
    }
    # the involved practitioners (Tess, Nia on her own sensitive involvement, Dee) and EAST's team (Lina);
    # not Sam (who signalled), not Lee (no part yet), not WEST's team
    assert told == {w.tess, w.nia, w.lina, w.dee}
    assert made == 4
    (tess,) = notices_of(engine, w.tess, "caf.signal")
    assert tess.event == "caf-signalled" and tess.link == f"/children/{w.child}"
    assert tess.message.startswith("Sam Carter") and tess.audit_seq is not None
    assert fan_out(engine) == 0  # the cursor moved: nothing twice


def test_a_change_by_someone_else_is_told_to_the_holder_once_with_the_reason(engine: Engine) -> None:
    w = build(engine)
    caf, _ = open_caf(engine, w)
    fan_out(engine)
    with unit_of_work(engine) as s:
        service.update_tac(
            s,
            actor=w.person("tess"),
            caf_id=caf,
            data=TacUpdate(reason="review moved", next_review_date=date.today() + timedelta(days=20)),
            now=utcnow(),
        )
    fan_out(engine, email=True)
    (told,) = notices_of(engine, w.sam, "tac.update")  # written with the change; adopted, not repeated
    assert told.reason == "review moved" and told.audit_seq is not None and told.event == "caf-changed"
    assert not notices_of(engine, w.lee, "tac.update")  # a member, not a holder: not told of an update
    with Session(engine) as s:  # the holder's notice is emailed too, once
        assert [e.notice_id for e in s.exec(select(EmailOutbox)).all()].count(told.id) == 1


def test_closing_by_the_locality_team_tells_holder_once_and_the_rest_of_the_childs_people(
    engine: Engine,
) -> None:
    w = build(engine)
    caf, _ = open_caf(engine, w)
    fan_out(engine)
    lina = Actor(subject="lina", role=Role.LOCAL_DELIVERY_TEAM, practitioner_id=w.lina, localities=("EAST",))
    with unit_of_work(engine) as s:
        service.close_caf(s, actor=lina, caf_id=caf, data=CafClose(reason="family moved on"), now=utcnow())
    fan_out(engine)
    assert len(notices_of(engine, w.sam, "caf.close")) == 1  # told with the change (with the reason) only
    assert notices_of(engine, w.sam, "caf.close")[0].reason == "family moved on"
    assert len(notices_of(engine, w.lee, "caf.close")) == 1  # a TAC member
    assert len(notices_of(engine, w.tess, "caf.close")) == 1
    assert not notices_of(engine, w.lina, "caf.close")  # the actor


def test_a_shielded_child_is_told_only_to_those_who_may_see_it(engine: Engine) -> None:
    w = build(engine)
    with unit_of_work(engine) as s:
        child = s.get(Child, w.child)
        assert child is not None
        child.shielded, child.shielded_reason, child.shielded_by = True, "court order", "admin"
        s.add(child)
    open_caf(engine, w)
    fan_out(engine)
    assert notices_of(engine, w.dee, "caf.signal")  # a designated practitioner may see it
    for plain in (w.tess, w.nia, w.lina, w.lee):
        assert notices_of(engine, plain) == []  # nothing at all: not even that there is something


def test_a_sensitive_services_practitioner_is_never_named_to_those_who_may_not_see_them(
    engine: Engine,
) -> None:
    w = build(engine)
    open_caf(engine, w, by="nia", tac=False)  # the sexual health nurse signals and starts the CAF
    fan_out(engine)
    (tess,) = notices_of(engine, w.tess, "caf.signal")
    assert "Nia" not in tess.message and "Health" not in tess.message and tess.message.startswith("Someone")
    assert tess.by_name is None and tess.by_organisation is None
    (dee,) = notices_of(engine, w.dee, "caf.signal")  # a designated practitioner sees sensitive services
    assert dee.message.startswith("Nia Patel")


def _append(engine: Engine, who: Actor, action: str, child: uuid.UUID, detail: dict[str, object]) -> None:
    with unit_of_work(engine) as s:
        audit_change(s, who, action, child, detail)  # type: ignore[arg-type]


def test_the_contract_events_of_the_other_parts_reach_their_people(engine: Engine) -> None:
    w = build(engine)
    caf, tac = open_caf(engine, w)
    assert tac is not None
    fan_out(engine)
    lina = Actor(subject="lina", role=Role.LOCAL_DELIVERY_TEAM, practitioner_id=w.lina)
    request = uuid.uuid4().hex
    _append(
        engine,
        w.person("lee"),
        "lead-professional.hand-over.request",
        w.child,
        {"caf_id": caf.hex, "request_id": request, "to": w.tess.hex},
    )
    _append(
        engine,
        w.person("dee"),
        "tac.join.request",
        w.child,
        {"caf_id": caf.hex, "request_id": request, "to": [w.sam.hex]},
    )
    _append(
        engine,
        w.person("sam"),
        "tac.join.decline",
        w.child,
        {"caf_id": caf.hex, "request_id": request, "requester": w.dee.hex},
    )
    _append(engine, w.person("sam"), "caf.panel.send", w.child, {"caf_id": caf.hex, "referral_id": request})
    _append(engine, lina, "caf.panel.decision", w.child, {"caf_id": caf.hex, "referral_id": request})
    _append(
        engine,
        w.person("sam"),
        "tac.action.add",
        w.child,
        {"caf_id": caf.hex, "tac_id": tac.hex, "action_id": request, "to": w.lee.hex},
    )
    _append(
        engine,
        w.person("sam"),
        "tac.review",
        w.child,
        {"caf_id": caf.hex, "tac_id": tac.hex, "review_id": request, "outcome": "reconvene"},
    )
    fan_out(engine)

    def who(action: str) -> set[uuid.UUID]:
        everyone = (w.sam, w.tess, w.nia, w.lee, w.lina, w.wes, w.dee)
        return {p for p in everyone if notices_of(engine, p, action)}

    assert who("lead-professional.hand-over.request") == {w.tess, w.sam}
    assert who("tac.join.request") == {w.sam}
    assert who("tac.join.decline") == {w.dee}
    assert who("caf.panel.send") == {w.lina}  # and the holders: Sam sent it
    assert who("caf.panel.decision") == {w.sam}
    assert who("tac.action.add") == {w.lee}
    assert who("tac.review") == {w.tess, w.lee}  # members and LP, not Sam who recorded it
    (panel,) = notices_of(engine, w.lina, "caf.panel.send")
    assert panel.link == "/worklist" and panel.event == "caf-sent-to-panel"


def test_two_workers_at_once_tell_each_person_once(engine: Engine) -> None:
    w = build(engine)
    open_caf(engine, w)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fan_out(engine)
        except Exception as exc:  # SQLite: the loser of a write race rolls back; the next round retries
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fan_out(engine)  # a round after the race (as the worker's next one)
    with engine.connect() as conn:
        dupes = conn.execute(
            sa.text(
                "SELECT practitioner_id, audit_seq FROM notice WHERE audit_seq IS NOT NULL "
                "GROUP BY practitioner_id, audit_seq HAVING count(*) > 1"
            )
        ).all()
    assert dupes == []
    assert len(notices_of(engine, w.tess, "caf.signal")) == 1
    assert len(notices_of(engine, w.lina, "caf.start")) == 1
    if engine.dialect.name == "postgresql":
        assert errors == []  # the cursor's row lock queues the workers: nobody fails


def test_reminders_are_made_once_per_due_item(engine: Engine) -> None:
    w = build(engine)
    _, tac = open_caf(engine, w)
    with unit_of_work(engine) as s:
        row = s.get(Tac, tac)
        assert row is not None
        row.status, row.next_review_date = "convened", date.today() - timedelta(days=1)
        inv = s.get(Involvement, w.hv_involvement)
        assert inv is not None
        inv.last_confirmed_at = utcnow() - timedelta(days=200)
        s.add(row)
        s.add(inv)
    fan_out(engine)
    assert people_notify.remind(engine, still_involved_days=180) == 2
    assert people_notify.remind(engine, still_involved_days=180) == 0  # once per due item
    fan_out(engine)
    (ask,) = notices_of(engine, w.tess, "involvement.still-involved")
    assert ask.link == f"/inbox/{ask.id}" and ask.event == "still-involved"
    assert notices_of(engine, w.sam, "involvement.still-involved") == []
    overdue = {
        p for p in (w.sam, w.tess, w.lee, w.lina, w.wes) if notices_of(engine, p, "tac.review-overdue")
    }
    assert overdue == {w.sam, w.tess, w.lee, w.lina}  # members, LP, EAST's team
    with unit_of_work(engine) as s:  # confirming (the notice's one click) makes it due again only later
        service.confirm_involvement(s, actor=w.person("tess"), involvement_id=w.hv_involvement)
    assert people_notify.remind(engine, still_involved_days=180) == 0


def test_a_health_system_looking_up_a_child_with_an_open_caf_tells_the_lead_once_a_day(
    engine: Engine,
) -> None:
    w = build(engine)
    open_caf(engine, w)
    fan_out(engine)
    system = Actor(
        subject="gp-system",
        role=Role.SYSTEM,
        organisation="Cowley Surgery",
        purpose="direct-care",
        client_id="gp-system",
    )
    for _ in range(3):
        _append(engine, system, "child.read", w.child, {})
    _append(engine, Actor(subject="other", role=Role.SYSTEM, organisation="A&E"), "child.read", w.child, {})
    _append(engine, w.person("tess"), "child.read", w.child, {})  # a person reading: no notice
    fan_out(engine)
    looked = notices_of(engine, w.sam, "child.read")
    assert sorted(n.message for n in looked) == [
        "A&E looked up a child whose CAF you lead.",
        "Cowley Surgery looked up a child whose CAF you lead.",
    ]
    assert notices_of(engine, w.tess, "child.read") == []


def test_no_consent_to_share_no_look_up_notice(engine: Engine) -> None:
    w = build(engine)
    with unit_of_work(engine) as s:
        from directory.models import CafSignal

        service.signal_caf(  # signalled only: no consent yet
            s,
            actor=w.person("sam"),
            child_id=w.child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
    fan_out(engine)
    _append(
        engine,
        Actor(subject="gp", role=Role.SYSTEM, organisation="Cowley Surgery"),
        "child.read",
        w.child,
        {},
    )
    fan_out(engine)
    assert notices_of(engine, w.sam, "child.read") == []
    assert count(engine, "notice_mark") == 0


def test_the_inbox_only_choice_and_a_missing_email_send_nothing(engine: Engine) -> None:
    w = build(engine)
    with unit_of_work(engine) as s:
        from directory import notices

        notices.choose_channel(s, actor=w.person("tess"), choice="inbox", now=utcnow())
    open_caf(engine, w)
    fan_out(engine, email=True)
    with Session(engine) as s:
        emailed = {e.practitioner_id for e in s.exec(select(EmailOutbox)).all()}
        assert s.exec(select(Notice).where(Notice.practitioner_id == w.tess)).first() is not None
    assert w.tess not in emailed and w.lina in emailed


def test_a_system_acting_for_a_practitioner_does_not_tell_them_of_their_own_act(engine: Engine) -> None:
    w = build(engine)
    caf, _ = open_caf(engine, w)
    fan_out(engine)
    system = Actor(subject="school-mis", role=Role.SYSTEM, organisation="Cowley School")
    _append(engine, system, "caf.complete", w.child, {"caf_id": caf.hex, "on_behalf_of": w.sam.hex})
    fan_out(engine)
    assert notices_of(engine, w.sam, "caf.complete") == []
    (lee,) = notices_of(engine, w.lee, "caf.complete")
    assert lee.message == "Cowley School completed a CAF for a child you work with."


def test_two_changes_in_a_row_by_someone_else_each_keep_their_own_notice(engine: Engine) -> None:
    w = build(engine)
    caf, _ = open_caf(engine, w)
    fan_out(engine)
    for days, why in ((20, "first"), (30, "second")):
        with unit_of_work(engine) as s:
            service.update_tac(
                s,
                actor=w.person("tess"),
                caf_id=caf,
                data=TacUpdate(reason=why, next_review_date=date.today() + timedelta(days=days)),
                now=utcnow(),
            )
    fan_out(engine)
    told = notices_of(engine, w.sam, "tac.update")
    assert [n.reason for n in told] == ["first", "second"]
    assert len({n.audit_seq for n in told}) == 2 and None not in {n.audit_seq for n in told}
    with Session(engine) as s:
        seqs = sorted(n.audit_seq or 0 for n in told)
        assert [s.get(Notice, n.id).audit_seq for n in told] == seqs  # type: ignore[union-attr]


def test_on_first_start_people_are_told_of_what_happens_from_then_on(engine: Engine) -> None:
    w = build(engine)
    open_caf(engine, w)  # before the notifier ever ran
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM notification_cursor")
    assert fan_out(engine) == 0  # the history is not told
    assert count(engine, "notice") == 0
    with unit_of_work(engine) as s:
        from directory import repository as repo
        from directory.models import CafComplete

        caf = repo.open_caf(s, w.child)
        assert caf is not None
        service.complete_caf(
            s,
            actor=w.person("sam"),
            caf_id=caf.id,
            data=CafComplete(outcome="multi_agency_response"),
            now=utcnow(),
        )
    assert fan_out(engine) > 0
    assert notices_of(engine, w.tess, "caf.complete") and not notices_of(engine, w.tess, "caf.signal")
