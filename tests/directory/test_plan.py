"""A TAC's plan through /api/v1 (issue #18 item 6): actions and reviews, who may change them, bad
input changing nothing, the events the notices are made from, what a shielded child's or a sensitive
owner's plan shows to whom, and the overdue queries of the locality worklist. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory import service
from directory.db import unit_of_work
from directory.errors import Conflict
from directory.models import (
    ActionCreate,
    CafSignal,
    CafStart,
    ConsentCreate,
    InvolvementCreate,
    ReviewCreate,
    ReviewOutcome,
    Role,
    ShieldSet,
    TacConvene,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from directory.plan_repository import overdue_actions, overdue_reviews
from directory.service import plan
from tests.conftest import count
from tests.directory.test_api import who
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)


@dataclass
class Plan:
    child: uuid.UUID
    caf: uuid.UUID
    tac: uuid.UUID
    locality: uuid.UUID
    sam: uuid.UUID  # holder (initiator and Lead Professional)
    tess: uuid.UUID  # TAC member
    lee: uuid.UUID  # TAC member
    nia: uuid.UUID  # TAC member who works in a sensitive service
    olly: uuid.UUID  # no part in it

    def h(self, name: str, role: str = "practitioner") -> dict[str, str]:
        return who(role=role, subject=name, practitioner=str(getattr(self, name)))


def build(
    engine: Engine, *, convened: datetime | None = None, shielded: bool = False, code: str = "EAST"
) -> Plan:
    """A child in a locality with a convened TAC (Sam, Tess, Lee, Nia), convened at `convened`."""
    now = convened or utcnow()
    with unit_of_work(engine) as s:
        area = "OX4" if code == "EAST" else "OX1"
        loc = make_locality(s, code=code, areas=(area,))
        school = make_org(s, name="Cowley School", kind="school")
        trust = make_org(s, name="Demoshire Health", kind="nhs_trust")
        clinic = make_service(
            s,
            trust,
            name="Young People's Sexual Health",
            service_type="sexual_health",
            level_of_need=3,
            tier="aligned",
            sensitive=True,
            sensitive_category="sexual_health",
        )
        sam = make_practitioner(s, school, name="Sam Carter").id
        tess = make_practitioner(s, trust, name="Tess Vale", role="health visitor").id
        lee = make_practitioner(s, name="Lee Park", role="youth worker").id
        nia = make_practitioner(s, trust, name="Nia Patel", role="sexual health nurse").id
        olly = make_practitioner(s, school, name="Olly Stone", role="class teacher").id
        child = make_child(s, address={"line1": "1 High Street", "town": "Oxford", "postcode": f"{area} 1AB"})
        as_sam, as_nia = actor(subject="sam", practitioner_id=sam), actor(subject="nia", practitioner_id=nia)
        consent = service.record_consent(
            s,
            actor=as_nia,
            child_id=child,
            data=ConsentCreate(
                scope="sensitive:sexual_health",
                given_by_kind="young_person",
                given_by_name="Young Person",
                young_person_competent=True,
            ),
        ).id
        service.record_involvement(
            s,
            actor=as_nia,
            child_id=child,
            data=InvolvementCreate(
                service_id=clinic.id,
                practitioner_id=nia,
                role="sexual health nurse",
                level_of_need=3,
                start_date=date.today(),
                consent_id=consent,
            ),
        )
        caf = service.signal_caf(
            s,
            actor=as_sam,
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=now,
        ).id
        caf_consent = service.record_consent(
            s,
            actor=as_sam,
            child_id=child,
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
        ).id
        service.start_caf(s, actor=as_sam, caf_id=caf, data=CafStart(consent_id=caf_consent), now=now)
        tac = service.update_tac(
            s,
            actor=as_sam,
            caf_id=caf,
            data=TacUpdate(
                add_members=[TacMemberIn(practitioner_id=p, role="member") for p in (sam, tess, lee, nia)]
            ),
            now=now,
        ).id
        service.convene_tac(
            s,
            actor=as_sam,
            tac_id=tac,
            data=TacConvene(next_review_date=now.date() + timedelta(days=30)),
            now=now,
        )
        if shielded:
            service.set_shield(
                s, actor=actor(Role.DIRECTORY_ADMIN), child_id=child, data=ShieldSet(reason="x")
            )
    return Plan(child, caf, tac, loc.id, sam, tess, lee, nia, olly)


def events(engine: Engine, action: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT detail FROM audit_event WHERE action = :a ORDER BY seq"), {"a": action}
        ).all()
    return [json.loads(r[0]) if isinstance(r[0], str) else (r[0] or {}) for r in rows]


def action_body(p: Plan, **over: Any) -> dict[str, Any]:
    body = {
        "title": "Book a hearing test",
        "area": "child.health",
        "owner": str(p.tess),
        "due_date": str(date.today()),
    }
    body.update(over)
    return body


def test_the_holder_adds_an_action_and_its_owner_is_told(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    r = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["owner"] == "practitioner" and body["owner_contact"]["name"] == "Tess Vale"
    assert body["status"] == "open" and body["area_label"].startswith("Development of the child")
    (event,) = events(engine, "tac.action.add")
    assert event == {
        "caf_id": p.caf.hex,
        "tac_id": p.tac.hex,
        "action_id": uuid.UUID(body["id"]).hex,
        "to": p.tess.hex,
    }
    family = client.post(
        f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p, owner="family")
    )
    assert family.status_code == 201 and family.json()["owner"] == "family"
    assert "to" not in events(engine, "tac.action.add")[1]
    listed = client.get(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("olly"))
    assert listed.status_code == 200 and [a["title"] for a in listed.json()] == ["Book a hearing test"] * 2
    assert events(engine, "tac.actions.read")[-1] == {"tac_id": p.tac.hex}  # a read of the child, audited


def test_bad_input_is_refused_and_writes_nothing(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    bad = {
        "due before the TAC": (action_body(p, due_date=str(date.today() - timedelta(days=1))), "due_date"),
        "owner not a member": (action_body(p, owner=str(p.olly)), "owner"),
        "owner unknown": (action_body(p, owner=str(uuid.uuid4())), "owner"),
        "title too long": (action_body(p, title="x" * 81), "title"),
        "unknown area": (action_body(p, area="child.diagnosis"), "area"),
        "free text": (action_body(p, notes="Mum said that..."), "notes"),
        "no title": (action_body(p, title="  "), "title"),
    }
    for name, (body, field) in bad.items():
        r = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=body)
        assert r.status_code == 422, (name, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in r.text, (name, r.text)
    unknown = client.post(f"/api/v1/tacs/{uuid.uuid4()}/actions", headers=p.h("sam"), json=action_body(p))
    assert unknown.status_code == 404
    assert count(engine, "tac_action") == 0 and events(engine, "tac.action.add") == []


def test_who_may_change_the_plan(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    refused = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("olly"), json=action_body(p))
    assert refused.status_code == 403 and refused.json()["ask"]["name"] == "Sam Carter"
    no_reason = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("tess"), json=action_body(p))
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    assert count(engine, "tac_action") == 0
    member = client.post(
        f"/api/v1/tacs/{p.tac}/actions", headers=p.h("tess"), json=action_body(p, reason="agreed at the TAC")
    )
    assert member.status_code == 201, member.text
    assert events(engine, "tac.action.add")[0]["by"] == "team"  # the holder is told someone else changed it
    team = client.post(
        f"/api/v1/tacs/{p.tac}/actions",
        headers=who(role="local_delivery_team", subject="lena"),
        json=action_body(p, owner="family", reason="from the TAC meeting"),
    )
    assert team.status_code == 201, team.text


def test_an_action_changes_status_and_date(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    other = build(engine, code="WEST")
    made = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p)).json()
    url = f"/api/v1/tacs/{p.tac}/actions/{made['id']}"
    later = str(date.today() + timedelta(days=14))
    r = client.patch(url, headers=p.h("sam"), json={"due_date": later})
    assert r.status_code == 200 and r.json()["due_date"] == later and r.json()["version"] == 2
    r = client.patch(url, headers=p.h("sam"), json={"status": "done"})
    assert r.status_code == 200 and r.json()["status"] == "done"
    for body, code in (
        ({}, 422),
        ({"status": "finished"}, 422),
        ({"due_date": str(date.today() - timedelta(days=3))}, 422),
    ):
        assert client.patch(url, headers=p.h("sam"), json=body).status_code == code, body
    # the action of another TAC is not this TAC's, even to that TAC's holder
    wrong = client.patch(
        f"/api/v1/tacs/{other.tac}/actions/{made['id']}", headers=other.h("sam"), json={"status": "done"}
    )
    assert wrong.status_code == 404
    assert (
        client.patch(url, headers=p.h("olly"), json={"status": "dropped", "reason": "x"}).status_code == 403
    )
    updates = events(engine, "tac.action.update")
    assert [e["status"] for e in updates] == ["open", "done"] and all(e["to"] == p.tess.hex for e in updates)


def test_a_review_that_reconvenes_moves_the_next_review(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    next_review = str(date.today() + timedelta(days=60))
    bad = [
        {
            "held_on": str(date.today() + timedelta(days=1)),
            "outcome": "reconvene",
            "next_review_date": next_review,
        },
        {
            "held_on": str(date.today() - timedelta(days=1)),
            "outcome": "reconvene",
            "next_review_date": next_review,
        },
        {"held_on": str(date.today()), "outcome": "reconvene"},
        {"held_on": str(date.today()), "outcome": "reconvene", "next_review_date": str(date.today())},
        {"held_on": str(date.today()), "outcome": "needs_met", "next_review_date": next_review},
        {"held_on": str(date.today()), "outcome": "adjourned", "next_review_date": next_review},
    ]
    for body in bad:
        r = client.post(
            f"/api/v1/tacs/{p.tac}/reviews", headers=p.h("sam"), json={**body, "family_has_plan": True}
        )
        assert r.status_code == 422, (body, r.text)
    assert count(engine, "tac_review") == 0
    good = {
        "held_on": str(date.today()),
        "outcome": "reconvene",
        "next_review_date": next_review,
        "family_has_plan": True,
    }
    r = client.post(f"/api/v1/tacs/{p.tac}/reviews", headers=p.h("sam"), json=good)
    assert r.status_code == 201, r.text
    card = client.get(f"/api/v1/children/{p.child}", headers=p.h("sam")).json()
    assert card["tac"]["next_review_date"] == next_review and card["caf"]["status"] == "in_progress"
    (event,) = events(engine, "tac.review")
    assert event == {
        "caf_id": p.caf.hex,
        "tac_id": p.tac.hex,
        "review_id": uuid.UUID(r.json()["id"]).hex,
        "outcome": "reconvene",
    }
    listed = client.get(f"/api/v1/tacs/{p.tac}/reviews", headers=p.h("tess")).json()
    assert [x["outcome"] for x in listed] == ["reconvene"] and listed[0]["family_has_plan"] is True


def test_needs_met_closes_the_caf_and_the_tac(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    made = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p)).json()
    r = client.post(
        f"/api/v1/tacs/{p.tac}/reviews",
        headers=p.h("sam"),
        json={"held_on": str(date.today()), "outcome": "needs_met", "family_has_plan": False},
    )
    assert r.status_code == 201, r.text
    card = client.get(f"/api/v1/children/{p.child}", headers=p.h("sam")).json()
    assert card["caf"]["status"] == "closed" and card.get("tac") is None
    assert [e["caf_id"] for e in events(engine, "caf.close")] == [p.caf.hex]
    after = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p))
    assert after.status_code == 409
    patched = client.patch(
        f"/api/v1/tacs/{p.tac}/actions/{made['id']}", headers=p.h("sam"), json={"status": "done"}
    )
    assert patched.status_code == 409
    again = client.post(
        f"/api/v1/tacs/{p.tac}/reviews",
        headers=p.h("sam"),
        json={"held_on": str(date.today()), "outcome": "needs_met", "family_has_plan": False},
    )
    assert again.status_code == 409 and count(engine, "tac_review") == 1


def test_a_tac_not_yet_convened_has_no_plan(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    with unit_of_work(engine) as s:
        s.exec(sa.text("UPDATE tac SET status = 'forming', convened_at = NULL"))  # type: ignore[call-overload]
    r = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p))
    assert r.status_code == 422 and "convene" in r.json()["detail"]


def test_a_shielded_childs_plan_is_not_there_for_those_who_may_not_see_it(
    client: TestClient, engine: Engine
) -> None:
    p = build(engine, shielded=True)
    designated = p.h("sam", role="designated_practitioner")  # the holder, who may see shielded records
    made = client.post(
        f"/api/v1/tacs/{p.tac}/actions", headers=designated, json=action_body(p, reason="agreed at the TAC")
    )
    assert made.status_code == 201, made.text
    for path in (f"/api/v1/tacs/{p.tac}/actions", f"/api/v1/tacs/{p.tac}/reviews"):
        assert client.get(path, headers=designated).status_code == 200
        hidden = client.get(path, headers=p.h("olly"))
        unknown = client.get(path.replace(str(p.tac), str(uuid.uuid4())), headers=p.h("olly"))
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json()["detail"] == unknown.json()["detail"]
    # a TAC member who may not see the shielded record changes nothing, and learns nothing of it
    r = client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("tess"), json=action_body(p, reason="x"))
    assert r.status_code == 404 and count(engine, "tac_action") == 1


def test_an_owner_in_a_sensitive_service_is_not_named(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    r = client.post(
        f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p, owner=str(p.nia))
    )
    assert r.status_code == 201
    for headers in (p.h("sam"), p.h("olly")):
        shown = client.get(f"/api/v1/tacs/{p.tac}/actions", headers=headers)
        (row,) = shown.json()
        assert row["owner"] == "withheld" and row["owner_practitioner_id"] is None
        assert "Nia" not in shown.text and p.nia.hex not in shown.text.replace("-", "")
    assert "Nia" not in r.text  # not even to whoever just gave it to them
    for headers in (p.h("nia"), who(role="designated_practitioner", subject="dee")):
        (row,) = client.get(f"/api/v1/tacs/{p.tac}/actions", headers=headers).json()
        assert row["owner_contact"]["name"] == "Nia Patel"


def test_overdue_reviews_and_actions_per_locality(engine: Engine) -> None:
    long_ago = utcnow() - timedelta(days=40)
    p = build(engine, convened=long_ago)  # its review was due 10 days ago
    other = build(engine, convened=long_ago, code="WEST")
    with unit_of_work(engine) as s:

        def add(tac: uuid.UUID, due: date, owner: uuid.UUID | str) -> uuid.UUID:
            data = ActionCreate.model_validate(
                {"title": "Call back", "area": "family.wider-family", "owner": owner, "due_date": due}
            )
            return plan.add_action(
                s, actor=actor(subject="sam", practitioner_id=p.sam), tac_id=tac, data=data, now=utcnow()
            ).id

        late = add(p.tac, date.today() - timedelta(days=5), p.tess)
        add(p.tac, date.today(), "family")  # due today: not overdue
        done = add(p.tac, date.today() - timedelta(days=6), "family")
        s.exec(sa.text("UPDATE tac_action SET status = 'done' WHERE id = :i").bindparams(i=done))  # type: ignore[call-overload]
    with unit_of_work(engine) as s:
        reviews = overdue_reviews(s, [p.locality], date.today())
        actions = overdue_actions(s, [p.locality], date.today())
        assert (
            overdue_reviews(s, [], date.today()) == []
            and overdue_actions(s, [uuid.uuid4()], date.today()) == []
        )
        both = overdue_reviews(s, [p.locality, other.locality], date.today())
    assert [(r.child_id, r.caf_id, r.tac_id) for r in reviews] == [(p.child, p.caf, p.tac)]
    assert reviews[0].due_date == long_ago.date() + timedelta(days=30)
    assert [(a.tac_id, a.action_id, a.due_date) for a in actions] == [
        (p.tac, late, date.today() - timedelta(days=5))
    ]
    assert {r.tac_id for r in both} == {p.tac, other.tac}


def test_every_problem_of_a_review_comes_back_at_once(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    body = {"held_on": str(date.today() + timedelta(days=1)), "outcome": "reconvene", "family_has_plan": True}
    r = client.post(f"/api/v1/tacs/{p.tac}/reviews", headers=p.h("sam"), json=body)
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"held_on", "next_review_date"}


REVIEWERS = 10


def test_reviews_at_once_close_the_caf_exactly_once(engine: Engine) -> None:
    p = build(engine)
    barrier = threading.Barrier(REVIEWERS)
    data = ReviewCreate(held_on=date.today(), outcome=ReviewOutcome.NEEDS_MET, family_has_plan=True)

    def review(_: int) -> str:
        barrier.wait()
        try:
            with unit_of_work(engine) as s:
                plan.record_review(
                    s,
                    actor=actor(subject="sam", practitioner_id=p.sam),
                    tac_id=p.tac,
                    data=data,
                    now=utcnow(),
                )
            return "recorded"
        except Conflict:
            return "closed already"

    with ThreadPoolExecutor(REVIEWERS) as pool:
        outcomes = list(pool.map(review, range(REVIEWERS)))
    assert outcomes.count("recorded") == 1 and outcomes.count("closed already") == REVIEWERS - 1
    assert count(engine, "tac_review") == 1 and len(events(engine, "caf.close")) == 1


def test_actions_added_at_once_are_all_kept(engine: Engine) -> None:
    p = build(engine)
    barrier = threading.Barrier(REVIEWERS)

    def add(i: int) -> None:
        barrier.wait()
        data = ActionCreate.model_validate(
            {"title": f"Action {i}", "area": "child.learning", "owner": "family", "due_date": date.today()}
        )
        with unit_of_work(engine) as s:
            plan.add_action(
                s, actor=actor(subject="sam", practitioner_id=p.sam), tac_id=p.tac, data=data, now=utcnow()
            )

    with ThreadPoolExecutor(REVIEWERS) as pool:
        list(pool.map(add, range(REVIEWERS)))
    assert count(engine, "tac_action") == REVIEWERS == len(events(engine, "tac.action.add"))


def test_the_subject_access_export_holds_the_plan(client: TestClient, engine: Engine) -> None:
    p = build(engine)
    client.post(f"/api/v1/tacs/{p.tac}/actions", headers=p.h("sam"), json=action_body(p, owner=str(p.nia)))
    later = str(date.today() + timedelta(days=60))
    review = {
        "held_on": str(date.today()),
        "outcome": "reconvene",
        "next_review_date": later,
        "family_has_plan": True,
    }
    assert client.post(f"/api/v1/tacs/{p.tac}/reviews", headers=p.h("sam"), json=review).status_code == 201
    admin = who(role="directory_admin", subject="ada")
    bundle = client.get(f"/api/v1/children/{p.child}/subject-access", headers=admin).json()
    (care_plan,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"]
    assert care_plan["subject"]["reference"] == f"Patient/{p.child}" and care_plan["status"] == "active"
    (activity,) = care_plan["activity"]
    assert activity["detail"]["description"] == "Book a hearing test"
    assert activity["detail"]["code"]["coding"][0]["code"] == "child.health"
    assert activity["detail"]["performer"][0]["display"] == "Nia Patel"  # everything held, for the SAR
    assert activity["detail"]["scheduledPeriod"]["end"] == str(date.today())
    reviews = [x for x in care_plan["extension"] if x["url"].endswith("/tac-review")]
    assert {"url": "outcome", "valueCode": "reconvene"} in reviews[0]["extension"]
    page = client.get(f"/api/v1/children/{p.child}/subject-access?format=html", headers=admin).text
    assert "Book a hearing test" in page and "reconvene" in page
