"""The early intervention panel over /api/v1 (issue #18 part 4), on SQLite and PostgreSQL: who sends a
CAF to panel, who sees the queue, who decides, and that bad input changes nothing."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from directory.models import Practitioner
from tests.conftest import count
from tests.directory.test_api import SIGNAL, new_child, who
from tests.fixtures.builders import make_locality, make_org, make_practitioner


@dataclass
class World:
    child: str
    caf: str
    ids: dict[str, str]

    def person(self, key: str, role: str = "practitioner", **extra: str) -> dict[str, str]:
        return who(role=role, subject=key, practitioner=self.ids[key], **extra)


def people(engine: Engine) -> dict[str, str]:
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
        make_locality(s, code="WEST", areas=("OX2",))
        school = make_org(s, name="Cowley School")
        out = {
            key: str(make_practitioner(s, school, name=name, email=f"{key}@example.org").id)
            for key, name in (
                ("sam", "Sam Senco"),
                ("yusuf", "Yusuf Youth"),
                ("nora", "Nora Nurse"),
                ("stranger", "Stella Stranger"),
                ("gone", "Gus Gone"),
                ("sw", "Sofia Social"),
            )
        }
        gone = s.get(Practitioner, uuid.UUID(out["gone"]))
        assert gone is not None
        gone.active = False
        s.add(gone)
    return out


def completed_caf(client: TestClient, engine: Engine, *, outcome: str = "multi_agency_response") -> World:
    ids = people(engine)
    child = new_child(client)
    sam = who(subject="sam", practitioner=ids["sam"])
    caf = client.post(f"/api/v1/children/{child}/caf", headers=sam, json=SIGNAL).json()["id"]
    consent = client.post(
        f"/api/v1/children/{child}/consents",
        headers=sam,
        json={"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Sara Khan"},
    ).json()["id"]
    assert (
        client.post(f"/api/v1/cafs/{caf}/start", headers=sam, json={"consent_id": consent}).status_code == 200
    )
    done = client.post(f"/api/v1/cafs/{caf}/complete", headers=sam, json={"outcome": outcome})
    assert done.status_code == 200, done.text
    return World(child, caf, ids | {"consent": consent})


TEAM = who(role="local_delivery_team", subject="east-team", localities="EAST")


def decision(w: World, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "risk_of_harm": False,
        "need_level_3_4_screened": True,
        "tac_needed": True,
        "suggested_members": [
            {"practitioner_id": w.ids["yusuf"], "role": "youth worker"},
            {"practitioner_id": w.ids["nora"], "role": "school nurse"},
        ],
        "practitioner_support": "supervision",
        "level_benchmark": 3,
        "reason": "agreed at panel",
    }
    body.update(overrides)
    return body


def actions(engine: Engine, prefix: str) -> list[tuple[str, dict[str, str]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action, detail FROM audit_event WHERE action LIKE :p ORDER BY seq"),
            {"p": prefix + "%"},
        ).all()
    return [(a, json.loads(d) if d else {}) for a, d in rows]


def test_a_caf_goes_to_panel_and_the_locality_team_decides(client: TestClient, engine: Engine) -> None:
    w = completed_caf(client, engine)
    sent = client.post(f"/api/v1/cafs/{w.caf}/panel", headers=w.person("sam"), json={})
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "waiting" and sent.json()["locality"] == "EAST"
    again = client.post(f"/api/v1/cafs/{w.caf}/panel", headers=w.person("sam"), json={})
    assert again.status_code == 409 and "already" in again.json()["detail"]

    queue = client.get("/api/v1/panel", headers=TEAM)
    assert queue.status_code == 200
    assert [q["referral"]["caf_id"] for q in queue.json()] == [w.caf]
    assert queue.json()[0]["child_name"] == "Amelia Khan"
    # another locality's team sees nothing of it; a practitioner has no queue at all
    west = who(role="local_delivery_team", subject="west-team", localities="WEST")
    assert client.get("/api/v1/panel", headers=west).json() == []
    assert client.get("/api/v1/panel", headers=w.person("sam")).status_code == 403

    decided = client.post(f"/api/v1/cafs/{w.caf}/panel/decision", headers=TEAM, json=decision(w))
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["status"] == "decided" and body["level_benchmark"] == 3 and body["advice"] is None
    assert {(s["practitioner_id"], s["role"], s["status"]) for s in body["suggestions"]} == {
        (w.ids["yusuf"], "youth worker", "invited"),
        (w.ids["nora"], "school nurse", "invited"),
    }
    assert count(engine, "panel_suggestion") == 2
    # the suggestions became TAC invitations, each for its practitioner to accept or decline
    invited = client.get("/api/v1/requests", headers=w.person("yusuf")).json()
    assert [(r["kind"], r["role"], r["mine_to_answer"]) for r in invited] == [
        ("invite", "youth worker", True)
    ]
    taken = client.post(f"/api/v1/requests/{invited[0]['id']}/accept", headers=w.person("yusuf"))
    assert taken.status_code == 200, taken.text
    card = client.get(f"/api/v1/children/{w.child}", headers=who(subject="reader")).json()
    assert "Yusuf Youth" in {m["contact"]["name"] for m in card["tac"]["members"]}
    assert client.get("/api/v1/panel", headers=TEAM).json() == []  # no longer waiting
    assert len(client.get("/api/v1/panel?status=decided", headers=TEAM).json()) == 1

    # the holder reads the decision; a second decision is refused and changes nothing
    assert client.get(f"/api/v1/cafs/{w.caf}/panel", headers=w.person("sam")).json()["status"] == "decided"
    second = client.post(
        f"/api/v1/cafs/{w.caf}/panel/decision", headers=TEAM, json=decision(w, level_benchmark=4)
    )
    assert second.status_code == 409 and "already recorded" in second.json()["detail"]
    assert client.get(f"/api/v1/cafs/{w.caf}/panel", headers=TEAM).json()["level_benchmark"] == 3
    assert count(engine, "panel_suggestion") == 2

    events = actions(engine, "caf.panel.")
    assert [a for a, _ in events if a in ("caf.panel.send", "caf.panel.decision")] == [
        "caf.panel.send",
        "caf.panel.decision",
    ]
    send = next(d for a, d in events if a == "caf.panel.send")
    assert set(send) == {"caf_id", "referral_id"} and send["caf_id"] == uuid.UUID(w.caf).hex
    # ids and codes only: the reason is kept beside the chain, never in it
    assert all("agreed at panel" not in json.dumps(d) for _, d in events)


def test_a_decision_that_breaks_a_rule_changes_nothing(client: TestClient, engine: Engine) -> None:
    w = completed_caf(client, engine)
    url = f"/api/v1/cafs/{w.caf}/panel/decision"
    not_sent = client.post(url, headers=TEAM, json=decision(w))
    assert not_sent.status_code == 409 and "not been sent to panel" in not_sent.json()["detail"]
    assert client.post(f"/api/v1/cafs/{w.caf}/panel", headers=w.person("sam"), json={}).status_code == 201

    refusals = {
        "risk and a TAC": (decision(w, risk_of_harm=True), 422, "safeguarding"),
        "members without a TAC": (decision(w, tac_needed=False), 422, "only when"),
        "an inactive member": (
            decision(w, suggested_members=[{"practitioner_id": w.ids["gone"], "role": "x"}]),
            404,
            "No active practitioner",
        ),
        "twice the same": (
            decision(w, suggested_members=[{"practitioner_id": w.ids["nora"], "role": "x"}] * 2),
            422,
            "twice",
        ),
        "level 5": (decision(w, level_benchmark=5), 422, ""),
        "a long reason": (decision(w, reason="x" * 201), 422, ""),
        "an unknown support": (decision(w, practitioner_support="anything"), 422, ""),
    }
    for name, (body, code, words) in refusals.items():
        r = client.post(url, headers=TEAM, json=body)
        assert r.status_code == code and words in r.text, (name, r.text)
    west = who(role="local_delivery_team", subject="west-team", localities="WEST")
    outsider = client.post(url, headers=west, json=decision(w))
    assert outsider.status_code == 403 and "East Early Help Team" in outsider.json()["detail"]
    assert (
        client.post(url, headers=w.person("sam"), json=decision(w)).status_code == 403
    )  # the route's policy
    assert count(engine, "panel_suggestion") == 0
    assert client.get(f"/api/v1/cafs/{w.caf}/panel", headers=TEAM).json()["status"] == "waiting"

    # a risk of harm: safeguarding advice, no TAC, no suggestions
    risk = decision(w, risk_of_harm=True, tac_needed=False, suggested_members=[])
    r = client.post(url, headers=TEAM, json=risk)
    assert r.status_code == 200 and "safeguarding procedures" in r.json()["advice"]
    assert r.json()["suggestions"] == [] and count(engine, "panel_suggestion") == 0


def test_only_a_completed_multi_agency_caf_goes_to_panel_and_only_by_who_may_change_it(
    client: TestClient, engine: Engine
) -> None:
    w = completed_caf(client, engine, outcome="needs_met_in_service")
    r = client.post(f"/api/v1/cafs/{w.caf}/panel", headers=w.person("sam"), json={})
    assert r.status_code == 409 and "multi-agency" in r.json()["detail"]
    other = new_child(client)
    sam = w.person("sam")
    signalled = client.post(f"/api/v1/children/{other}/caf", headers=sam, json=SIGNAL).json()["id"]
    assert client.post(f"/api/v1/cafs/{signalled}/panel", headers=sam, json={}).status_code == 409
    stranger = client.post(f"/api/v1/cafs/{signalled}/panel", headers=w.person("stranger"), json={})
    assert stranger.status_code == 403 and "Sam Senco" in stranger.json()["detail"]
    # the locality team may send it, with a reason (the holder is told)
    no_reason = client.post(f"/api/v1/cafs/{signalled}/panel", headers=TEAM, json={})
    assert no_reason.status_code == 422
    assert client.post(f"/api/v1/cafs/{uuid.uuid4()}/panel", headers=sam, json={}).status_code == 404
    assert count(engine, "panel_referral") == 0


def test_fifty_sends_at_once_make_one_referral(client: TestClient, engine: Engine) -> None:
    w = completed_caf(client, engine)
    sam = w.person("sam")

    def send(_: int) -> int:
        return int(client.post(f"/api/v1/cafs/{w.caf}/panel", headers=sam, json={}).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(send, range(50)))
    assert sorted(set(codes)) == [201, 409] and codes.count(201) == 1
    assert count(engine, "panel_referral") == 1
    assert len([a for a, _ in actions(engine, "caf.panel.send")]) == 1


def test_a_shielded_childs_queue_entry_shows_only_the_official_name(
    client: TestClient, engine: Engine
) -> None:
    w = completed_caf(client, engine)
    r = client.post(
        f"/api/v1/children/{w.child}/shielding",
        headers=who("designated_practitioner", subject="dp"),
        json={"reason": "risk from a relative"},
    )
    assert r.status_code == 200, r.text
    assert client.post(f"/api/v1/cafs/{w.caf}/panel", headers=w.person("sam"), json={}).status_code == 201
    queue = client.get("/api/v1/panel", headers=TEAM).json()
    assert [q["child_name"] for q in queue] == ["Amelia Khan"]
    assert "Brown" not in json.dumps(queue)  # the previous name stays hidden
    with engine.connect() as conn:
        listed = conn.execute(
            sa.text(
                "SELECT s.child_id FROM audit_subject s JOIN audit_event e ON e.seq = s.seq "
                "WHERE e.action = 'caf.panel.queue'"
            )
        ).all()
    assert [uuid.UUID(str(c)) for (c,) in listed] == [uuid.UUID(w.child)]


def test_twenty_decisions_at_once_record_one(client: TestClient, engine: Engine) -> None:
    w = completed_caf(client, engine)
    assert client.post(f"/api/v1/cafs/{w.caf}/panel", headers=w.person("sam"), json={}).status_code == 201

    def decide(n: int) -> int:
        body = decision(w, level_benchmark=1 + n % 4)
        return int(client.post(f"/api/v1/cafs/{w.caf}/panel/decision", headers=TEAM, json=body).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(decide, range(20)))
    assert codes.count(200) == 1 and set(codes) == {200, 409}
    assert count(engine, "panel_suggestion") == 2
    assert len([a for a, _ in actions(engine, "caf.panel.decision")]) == 1
