"""Requests under /api/v1 on SQLite and PostgreSQL: a hand-over answers 202 with the request (201 when
you name yourself), only the named practitioner accepts it, an answered one is a 409; asks to join;
`GET /api/v1/requests`; a shielded child's holder is not named to the asker."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.conftest import count
from tests.directory.test_api import SIGNAL, catalogue, new_child, who

PROBLEM = "application/problem+json"


def _started(client: TestClient, ids: dict[str, str], child: str) -> tuple[str, dict[str, str]]:
    sam = who(subject="sam", practitioner=ids["p1"])
    caf = client.post(f"/api/v1/children/{child}/caf", headers=sam, json=SIGNAL).json()["id"]
    consent = client.post(
        f"/api/v1/children/{child}/consents",
        headers=sam,
        json={"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Sara Khan"},
    ).json()["id"]
    assert (
        client.post(f"/api/v1/cafs/{caf}/start", headers=sam, json={"consent_id": consent}).status_code == 200
    )
    return caf, sam


def test_a_hand_over_is_a_request_the_named_practitioner_answers(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    child = new_child(client)
    caf, sam = _started(client, ids, child)
    yusuf = who(subject="yusuf", practitioner=ids["p2"])
    nora = who(subject="nora", practitioner=ids["p3"])
    asked = client.post(
        f"/api/v1/cafs/{caf}/lead-professional",
        headers=sam,
        json={"to_practitioner_id": ids["p2"], "reason": "young person prefers youth worker"},
    )
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert (
        body["kind"] == "hand-over"
        and body["status"] == "pending"
        and body["practitioner"]["name"] == "Yusuf Youth"
    )
    card = client.get(f"/api/v1/children/{child}", headers=who()).json()
    assert card["lead_professional"]["contact"]["name"] == "Sam Senco"

    mine = client.get("/api/v1/requests", headers=yusuf).json()
    assert [(r["id"], r["mine_to_answer"]) for r in mine] == [(body["id"], True)]
    assert [r["mine_to_answer"] for r in client.get("/api/v1/requests", headers=sam).json()] == [False]

    rows = count(engine, "lead_professional_assignment")
    for headers in (sam, nora):  # not addressed to them: 403, nothing changes
        for verb in ("accept", "decline"):
            r = client.post(f"/api/v1/requests/{body['id']}/{verb}", headers=headers)
            assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text
    assert count(engine, "lead_professional_assignment") == rows
    declined = client.post(
        f"/api/v1/requests/{body['id']}/decline", headers=yusuf, json={"reason": "on leave"}
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    again = client.post(f"/api/v1/requests/{body['id']}/accept", headers=yusuf)
    assert again.status_code == 409 and "already declined" in again.json()["detail"]
    assert count(engine, "lead_professional_assignment") == rows
    unknown = client.post("/api/v1/requests/00000000-0000-4000-8000-000000000000/accept", headers=yusuf)
    assert unknown.status_code == 404

    # Sam's TAC colleague takes the role on herself: at once, 201
    client.post(
        f"/api/v1/cafs/{caf}/tac",
        headers=sam,
        json={"add_members": [{"practitioner_id": ids["p3"], "role": "nurse"}]},
    )
    took = client.post(
        f"/api/v1/cafs/{caf}/lead-professional",
        headers=nora,
        json={"to_practitioner_id": ids["p3"], "reason": "I see the family weekly"},
    )
    assert took.status_code == 201 and took.json()["status"] == "current", took.text
    card = client.get(f"/api/v1/children/{child}", headers=who()).json()
    assert card["lead_professional"]["contact"]["name"] == "Nora Nurse"


def test_ask_to_join_through_the_api(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    child = new_child(client)
    caf, sam = _started(client, ids, child)
    yusuf = who(subject="yusuf", practitioner=ids["p2"])
    asked = client.post(f"/api/v1/cafs/{caf}/join-requests", headers=yusuf, json={"role": "youth worker"})
    assert asked.status_code == 201 and asked.json()["kind"] == "join", asked.text
    twice = client.post(f"/api/v1/cafs/{caf}/join-requests", headers=yusuf, json={"role": "youth worker"})
    assert twice.status_code == 409 and "already asked" in twice.json()["detail"]
    assert (
        client.post(f"/api/v1/cafs/{caf}/join-requests", headers=yusuf, json={"role": ""}).status_code == 422
    )
    unlinked = client.post(f"/api/v1/cafs/{caf}/join-requests", headers=who(subject="x"), json={"role": "x"})
    assert unlinked.status_code == 403
    assert client.post(f"/api/v1/requests/{asked.json()['id']}/accept", headers=yusuf).status_code == 403
    accepted = client.post(f"/api/v1/requests/{asked.json()['id']}/accept", headers=sam)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    card = client.get(f"/api/v1/children/{child}", headers=who()).json()
    assert [(m["contact"]["name"], m["role"]) for m in card["tac"]["members"]] == [
        ("Yusuf Youth", "youth worker")
    ]
    member = client.post(f"/api/v1/cafs/{caf}/join-requests", headers=yusuf, json={"role": "youth worker"})
    assert member.status_code == 409 and "already a member" in member.json()["detail"]


def test_the_asker_is_not_told_who_holds_a_shielded_childs_caf(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    child = new_child(client)
    caf, sam = _started(client, ids, child)
    shield = client.post(
        f"/api/v1/children/{child}/shielding",
        headers=who("designated_practitioner"),
        json={"reason": "refuge"},
    )
    assert shield.status_code == 200
    yusuf = who(subject="yusuf", practitioner=ids["p2"])
    asked = client.post(f"/api/v1/cafs/{caf}/join-requests", headers=yusuf, json={"role": "youth worker"})
    assert asked.status_code == 201, asked.text
    listed = client.get("/api/v1/requests", headers=yusuf)
    for text in (asked.text, listed.text):
        assert "Sam Senco" not in text and "07700 900101" not in text
    to_answer = client.get("/api/v1/requests", headers=sam).json()
    assert to_answer[0]["mine_to_answer"] and to_answer[0]["practitioner"]["name"] == "Yusuf Youth"


def test_an_invitation_through_the_api(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    child = new_child(client)
    caf, sam = _started(client, ids, child)
    nora = who(subject="nora", practitioner=ids["p3"])
    body = {"practitioner_id": ids["p3"], "role": "school nurse"}
    refused = client.post(f"/api/v1/cafs/{caf}/tac-invitations", headers=nora, json=body)
    assert refused.status_code == 403  # she may not change the CAF
    invited = client.post(f"/api/v1/cafs/{caf}/tac-invitations", headers=sam, json=body)
    assert invited.status_code == 201 and invited.json()["kind"] == "invite", invited.text
    assert client.post(f"/api/v1/requests/{invited.json()['id']}/accept", headers=sam).status_code == 403
    accepted = client.post(f"/api/v1/requests/{invited.json()['id']}/accept", headers=nora)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    card = client.get(f"/api/v1/children/{child}", headers=who()).json()
    assert [(m["contact"]["name"], m["role"]) for m in card["tac"]["members"]] == [
        ("Nora Nurse", "school nurse")
    ]
    again = client.post(f"/api/v1/cafs/{caf}/tac-invitations", headers=sam, json=body)
    assert again.status_code == 409 and "already a member" in again.json()["detail"]
