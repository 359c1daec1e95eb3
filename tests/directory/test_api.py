"""The /api/v1 surface: the involvement card, the actions, problem+json errors, no partial writes."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex.app import create_app
from childindex.settings import Settings
from directory.db import unit_of_work
from tests.conftest import count
from tests.fixtures.builders import make_locality, make_org, make_practitioner, make_service, next_nhs_number

PURPOSE = {"X-Purpose-Of-Use": "considering-caf"}
SIGNAL = {"no_risk_of_significant_harm": True}
# A purpose each role may give (auth/purposes.py): administrators administer, auditors audit.
ROLE_PURPOSE = {"directory_admin": "administration", "auditor": "audit"}


def who(role: str = "practitioner", subject: str = "alice", **extra: str) -> dict[str, str]:
    fields = {"subject": subject, "role": role, "org": "Cowley School", **extra}
    purpose = ROLE_PURPOSE.get(role, PURPOSE["X-Purpose-Of-Use"])
    return {"X-Dev-Actor": "; ".join(f"{k}={v}" for k, v in fields.items()), "X-Purpose-Of-Use": purpose}


def new_child(client: TestClient, **overrides: object) -> str:
    body: dict[str, object] = {
        "names": [
            {"given": "Amelia", "family": "Khan"},
            {"given": "Amelia", "family": "Brown", "use": "previous"},
        ],
        "date_of_birth": (date.today() - timedelta(days=365 * 6)).isoformat(),
        "sex": "female",
        "identifiers": [{"system": "nhs", "value": next_nhs_number()}],
        "address": {"line1": "2 Temple Road", "town": "Oxford", "postcode": "ox4 2ab"},
        "related_people": [
            {
                "name": "Sara Khan",
                "relationship": "mother",
                "parental_responsibility": True,
                "phone": "07700 900777",
                "email": "sara@example.com",
            }
        ],
    }
    body.update(overrides)
    r = client.post("/api/v1/children", json=body, headers=who("directory_admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def catalogue(engine: Engine) -> dict[str, str]:
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
        health = make_org(s, name="Demoshire Health", kind="nhs_trust")
        hv = make_service(s, health)
        sh = make_service(
            s,
            name="Sexual Health",
            service_type="sexual_health",
            level_of_need=2,
            tier="specialist",
            sensitive=True,
            sensitive_category="sexual_health",
        )
        people = [
            make_practitioner(s, health if i == 0 else None, name=n, phone=f"07700 90010{i}")
            for i, n in enumerate(["Hannah Visitor", "Sam Senco", "Yusuf Youth", "Nora Nurse"])
        ]
    return {"hv": str(hv.id), "sh": str(sh.id), **{f"p{i}": str(p.id) for i, p in enumerate(people)}}


def test_full_caf_journey_and_card(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    child = new_child(client)
    hannah = who(subject="hannah", practitioner=ids["p0"])
    sam = who(subject="sam", practitioner=ids["p1"])
    r = client.post(
        f"/api/v1/children/{child}/involvements",
        headers=hannah,
        json={
            "service_id": ids["hv"],
            "practitioner_id": ids["p0"],
            "role": "health visitor",
            "level_of_need": 1,
            "start_date": date.today().isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    caf = client.post(f"/api/v1/children/{child}/caf", headers=sam, json=SIGNAL)
    assert caf.status_code == 201 and caf.json()["status"] == "signalled"
    caf_id = caf.json()["id"]

    # The whole point: a second practitioner is told who holds it and how to reach them.
    second = client.post(
        f"/api/v1/children/{child}/caf", headers=who(subject="bob", practitioner=ids["p2"]), json=SIGNAL
    )
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    problem = second.json()
    assert "Sam Senco" in problem["detail"] and "07700 900101" in problem["detail"]
    assert problem["holder"]["name"] == "Sam Senco"

    no_consent = client.post(
        f"/api/v1/cafs/{caf_id}/start", headers=sam, json={"consent_id": str(uuid.uuid4())}
    )
    assert no_consent.status_code == 422 and "consent" in no_consent.json()["detail"].lower()
    consent = client.post(
        f"/api/v1/children/{child}/consents",
        headers=sam,
        json={"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Sara Khan"},
    )
    assert consent.status_code == 201
    started = client.post(
        f"/api/v1/cafs/{caf_id}/start", headers=sam, json={"consent_id": consent.json()["id"]}
    )
    assert started.json()["status"] == "in_progress"
    handed = client.post(
        f"/api/v1/cafs/{caf_id}/lead-professional",
        headers=sam,
        json={"to_practitioner_id": ids["p2"], "reason": "young person prefers youth worker"},
    )
    # a request: Sam stays Lead Professional until Yusuf accepts it
    assert handed.status_code == 202 and handed.json()["status"] == "pending", handed.text
    waiting = client.get(f"/api/v1/children/{child}", headers=who()).json()
    assert waiting["lead_professional"]["contact"]["name"] == "Sam Senco"
    accepted = client.post(
        f"/api/v1/requests/{handed.json()['id']}/accept", headers=who(subject="bob", practitioner=ids["p2"])
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text
    tac = client.post(
        f"/api/v1/cafs/{caf_id}/tac",
        headers=sam,
        json={"add_members": [{"practitioner_id": ids[p], "role": "member"} for p in ("p1", "p2")]},
    )
    tac_id = tac.json()["id"]
    review = (date.today() + timedelta(days=30)).isoformat()
    too_small = client.post(f"/api/v1/tacs/{tac_id}/convene", headers=sam, json={"next_review_date": review})
    assert too_small.status_code == 422 and "more than two" in too_small.json()["detail"]
    client.post(
        f"/api/v1/cafs/{caf_id}/tac",
        headers=sam,
        json={"add_members": [{"practitioner_id": ids["p3"], "role": "school nurse"}]},
    )
    convened = client.post(f"/api/v1/tacs/{tac_id}/convene", headers=sam, json={"next_review_date": review})
    assert convened.json()["status"] == "convened"

    card = client.get(f"/api/v1/children/{child}", headers=who())
    assert card.status_code == 200
    body = card.json()
    assert body["caf"]["status"] == "in_progress" and "contact" in body["caf"]["advice"]
    assert body["lead_professional"]["contact"]["name"] == "Yusuf Youth"
    assert body["lead_professional_history"][-1]["reason"] == "young person prefers youth worker"
    assert body["tac"]["status"] == "convened" and len(body["tac"]["members"]) == 3
    assert body["involvements"][0]["contact"]["phone"] == "07700 900100"
    assert body["address"]["postcode"] == "OX4 2AB" and body["locality"] == "East locality"
    assert [n["use"] for n in body["names"]] == ["official", "previous"]


def test_card_read_is_audited_and_access_log_is_restricted(client: TestClient) -> None:
    child = new_child(client)
    assert client.get(f"/api/v1/children/{child}", headers=who(subject="reader")).status_code == 200
    refused = client.get(f"/api/v1/children/{child}/access-log", headers=who())
    assert refused.status_code == 403
    log = client.get(f"/api/v1/children/{child}/access-log", headers=who("auditor", subject="aud"))
    assert log.status_code == 200
    entries = log.json()
    assert any(
        e["actor_subject"] == "reader" and e["action"] == "child.read" and e["purpose"] == "considering-caf"
        for e in entries
    )


def test_purpose_is_required_and_validated(client: TestClient) -> None:
    child = new_child(client)
    headers = who()
    del headers["X-Purpose-Of-Use"]
    r = client.get(f"/api/v1/children/{child}", headers=headers)
    assert r.status_code == 422 and "purpose" in r.json()["detail"]
    r = client.get(f"/api/v1/children/{child}", headers={**who(), "X-Purpose-Of-Use": "curiosity"})
    assert r.status_code == 400 and "considering-caf" in r.json()["detail"]


def test_dev_header_is_refused_outside_development(engine: Engine) -> None:
    app = create_app(Settings(environment="production", database_url="sqlite://"), engine=engine)
    with TestClient(app) as c:
        r = c.get(f"/api/v1/children/{uuid.uuid4()}", headers=who())
        assert r.status_code == 401
        assert "development" in r.json()["detail"]


def test_missing_or_malformed_actor(client: TestClient) -> None:
    assert client.get("/api/v1/services").status_code == 401
    r = client.get("/api/v1/services", headers={"X-Dev-Actor": "subject=a; role=wizard"})
    assert r.status_code == 400 and "unknown role" in r.json()["detail"]
    r = client.get("/api/v1/services", headers={"X-Dev-Actor": "role=practitioner"})
    assert r.status_code == 400


def test_bad_input_is_a_clear_422_and_writes_nothing(client: TestClient, engine: Engine) -> None:
    before = count(engine, "child")
    cases = [
        {"names": [], "date_of_birth": "2020-01-01"},
        {"names": [{"given": "A", "family": "B"}], "date_of_birth": "not-a-date"},
        {
            "names": [{"given": "A", "family": "B"}],
            "date_of_birth": "2020-01-01",
            "identifiers": [{"system": "nhs", "value": "9434765918"}],
        },
        {
            "names": [{"given": "A", "family": "B"}],
            "date_of_birth": "2020-01-01",
            "address": {"line1": "x", "postcode": "ZZ99 9ZZZ"},
        },
        {"names": [{"given": "A", "family": "B"}], "date_of_birth": "2020-01-01", "unexpected": 1},
        {"names": [{"given": "A" * 500, "family": "B"}], "date_of_birth": "2020-01-01"},
        {"names": [{"given": "A", "family": "B"}]},
    ]
    for body in cases:
        r = client.post("/api/v1/children", json=body, headers=who("directory_admin"))
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]
    r = client.post(
        "/api/v1/children", content=b"{not json", headers={**who(), "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert count(engine, "child") == before
    assert count(engine, "child_name") == 0


def test_failed_write_leaves_nothing_behind_and_is_audited(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    nhs = next_nhs_number()
    new_child(client, identifiers=[{"system": "nhs", "value": nhs}])
    names_before = count(engine, "child_name")
    r = client.post(
        "/api/v1/children",
        headers=who("directory_admin"),
        json={
            "names": [{"given": "Dup", "family": "Licate"}],
            "date_of_birth": "2019-05-05",
            "identifiers": [{"system": "upn", "value": "A801200001001"}, {"system": "nhs", "value": nhs}],
        },
    )
    assert r.status_code in (409, 422)
    assert count(engine, "child_name") == names_before
    child = new_child(client)
    r = client.post(
        f"/api/v1/children/{child}/involvements",
        headers=who("local_delivery_team", subject="sneaky"),
        json={
            "service_id": ids["sh"],
            "role": "nurse",
            "level_of_need": 2,
            "start_date": date.today().isoformat(),
        },
    )
    assert r.status_code == 422 and "consent" in r.json()["detail"]
    assert count(engine, "involvement") == 0
    log = client.get(f"/api/v1/children/{child}/access-log", headers=who("auditor", subject="aud")).json()
    assert any(e["actor_subject"] == "sneaky" and e["outcome"] == "refused" for e in log)


def test_unknown_ids_are_404_problems(client: TestClient) -> None:
    missing = uuid.uuid4()
    for method, path, body in [
        ("get", f"/api/v1/children/{missing}", None),
        ("post", f"/api/v1/cafs/{missing}/start", {"consent_id": str(uuid.uuid4())}),
        ("post", f"/api/v1/tacs/{missing}/convene", {"next_review_date": "2099-01-01"}),
        ("post", f"/api/v1/consents/{missing}/withdraw", {"reason": "x"}),
    ]:
        r = client.request(method, path, json=body, headers=who())
        assert r.status_code == 404, (path, r.text)
        assert r.json()["status"] == 404
    r = client.get("/api/v1/children/not-a-uuid", headers=who())
    assert r.status_code == 422


def test_shielding_through_the_api(client: TestClient, engine: Engine) -> None:
    catalogue(engine)
    child = new_child(client)
    r = client.post(f"/api/v1/children/{child}/shielding", headers=who(), json={"reason": "refuge"})
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/children/{child}/shielding",
        headers=who("designated_practitioner"),
        json={"reason": "refuge"},
    )
    assert r.status_code == 200
    card = client.get(f"/api/v1/children/{child}", headers=who()).json()
    assert card["address"] is None and card["related_people"] == []
    assert card["shield_notice"]["ask"]["name"] == "East Early Help Team"
    full = client.get(f"/api/v1/children/{child}", headers=who("designated_practitioner")).json()
    assert full["address"]["postcode"] == "OX4 2AB"
    assert (
        client.delete(
            f"/api/v1/children/{child}/shielding", headers=who("designated_practitioner")
        ).status_code
        == 200
    )
    client.post(
        f"/api/v1/children/{child}/shielding",
        headers=who("designated_practitioner"),
        json={"reason": "again"},
    )
    # A reason for lifting the shield may come in the body; it is kept beside the audit event (its
    # note, which a purge deletes), never in the chain itself.
    r = client.request(
        "DELETE",
        f"/api/v1/children/{child}/shielding",
        headers=who("designated_practitioner"),
        json={"reason": "family rehoused safely"},
    )
    assert r.status_code == 200, r.text
    with engine.connect() as conn:
        detail = conn.execute(
            sa.text("SELECT detail FROM audit_event WHERE action = 'child.shield.clear' ORDER BY seq DESC")
        ).scalar()
    assert "family rehoused safely" not in str(detail) and '"note":"kept"' in str(detail)
    with engine.connect() as conn:
        notes = conn.execute(sa.text("SELECT text FROM audit_note")).scalars().all()
    assert notes == ["family rehoused safely"]
    blank = client.request(
        "DELETE",
        f"/api/v1/children/{child}/shielding",
        headers=who("designated_practitioner"),
        json={"reason": " "},
    )
    assert blank.status_code == 422


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op.get("description") or op.get("summary"), path


def test_health_and_request_id(client: TestClient) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abcdef12-3456"})
    assert r.json() == {"status": "ok"} and r.headers["X-Request-ID"] == "abcdef12-3456"
    # A malformed id is replaced, never echoed; errors carry the same headers as answers.
    r = client.get("/api/v1/children/not-a-uuid", headers={**who(), "X-Request-ID": "<script>"})
    assert r.status_code == 422 and re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers.get_list("Cache-Control") == ["no-store"]


def test_merging_a_duplicate_keeps_both_and_points_to_the_survivor(
    client: TestClient, engine: Engine
) -> None:
    keep = new_child(client)
    dup = new_child(client)
    body = {"duplicate_id": dup, "reason": "same child"}
    assert client.post(f"/api/v1/children/{keep}/merge", headers=who(), json=body).status_code == 403
    r = client.post(f"/api/v1/children/{keep}/merge", headers=who("directory_admin"), json=body)
    assert r.status_code == 200 and r.json()["duplicate_id"] == dup and r.json()["kept_id"] == keep
    read = client.get(f"/api/v1/children/{dup}", headers=who(), follow_redirects=False)
    assert read.status_code == 301 and read.headers["location"] == f"/api/v1/children/{keep}"
    ids = catalogue(engine)
    r = client.post(f"/api/v1/children/{dup}/caf", headers=who(practitioner=ids["p0"]), json=SIGNAL)
    assert r.status_code == 422 and "merged" in r.json()["detail"]
    assert count(engine, "child") == 2
