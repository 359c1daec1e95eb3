"""The match review queue: held feed rows listed to admins and data managers, decided once, audited;
shielded candidates only for those who may see them."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import service
from directory.db import unit_of_work
from directory.errors import Conflict
from directory.importer.precedence import Precedence
from directory.importer.reviews import ReviewDecision, decide_review
from directory.models import Role, ShieldSet
from tests.conftest import count
from tests.directory.test_reconcile import SHIELDER, TODAY, feed, row, run, scalar


def who(role: str, subject: str = "m1") -> dict[str, str]:
    return {"X-Dev-Actor": f"subject={subject}; role={role}", "X-Purpose-Of-Use": "administration"}


ADMIN = who("directory_admin")
MANAGER = who("data_manager")


def held(engine: Engine, tmp_path: Path, *, shielded: bool = False) -> tuple[uuid.UUID, uuid.UUID]:
    """A child, and a feed row held beside it; returns (child id, review id)."""
    run(engine, feed(tmp_path, row(1)), "pds")
    child = uuid.UUID(str(scalar(engine, "SELECT id FROM child")).replace("-", ""))
    if shielded:
        with Session(engine) as session:
            service.set_shield(
                session, actor=SHIELDER, child_id=child, data=ShieldSet(reason="fleeing violence")
            )
            session.commit()
    near = row(2, nhs_no="", local="mosaic:M1", born="2015-03-03", line1="3 Far Lane", postcode="OX1 2JD")
    if shielded:
        near = row(2, nhs_no="", local="mosaic:M1")
    result = run(engine, feed(tmp_path, near, name="b.csv"), "social-care")
    assert result.held == 1
    review = uuid.UUID(str(scalar(engine, "SELECT id FROM match_review")).replace("-", ""))
    return child, review


def test_reviewers_list_held_rows_with_candidates_and_others_are_refused(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    child, review = held(engine, tmp_path)
    for headers in (ADMIN, MANAGER):
        r = client.get("/api/v1/match-reviews", headers=headers)
        assert r.status_code == 200, r.text
        [item] = r.json()
        assert item["id"] == str(review) and item["line"] == 2 and item["source"] == "social-care"
        assert item["row"]["child"]["names"][0]["family"] == "Ward"
        assert [c["child_id"] for c in item["candidates"]] == [str(child)]
        assert item["candidates"][0]["grade"] in ("probable", "possible")
    for role in ("practitioner", "designated_practitioner", "auditor", "local_delivery_team"):
        r = client.get("/api/v1/match-reviews", headers=who(role))
        assert r.status_code == 403, (role, r.text)
    events = scalar(engine, "SELECT count(*) FROM audit_event WHERE action = 'match-review.list'")
    assert events == 2


def test_link_updates_the_record_with_trusted_fields_and_is_audited(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    child, review = held(engine, tmp_path)
    r = client.post(
        f"/api/v1/match-reviews/{review}", json={"decision": "link", "child_id": str(child)}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "linked" and r.json()["child_id"] == str(child)
    # social-care is trusted for the address: the record moved; no second record
    assert scalar(engine, "SELECT postcode FROM child_address WHERE until IS NULL") == "OX1 2JD"
    assert count(engine, "child") == 1
    detail = json.loads(
        str(scalar(engine, "SELECT detail FROM audit_event WHERE action = 'match-review.link'"))
    )
    assert detail == {"source": "social-care", "changed": "address"}
    # decided once: a second decision is a conflict and changes nothing
    again = client.post(f"/api/v1/match-reviews/{review}", json={"decision": "create"}, headers=MANAGER)
    assert again.status_code == 409 and count(engine, "child") == 1
    # a re-run of the feed follows the decision instead of holding the row again
    result = run(
        engine,
        feed(
            tmp_path,
            row(2, nhs_no="", local="mosaic:M1", born="2015-03-03", line1="3 Far Lane", postcode="OX1 2JD"),
            name="b.csv",
        ),
        "social-care",
    )
    assert (result.held, result.unchanged) == (0, 1) and count(engine, "match_review") == 1


def test_create_makes_a_new_record_and_linking_elsewhere_is_refused(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    _, review = held(engine, tmp_path)
    r = client.post(
        f"/api/v1/match-reviews/{review}",
        json={"decision": "link", "child_id": str(uuid.uuid4())},
        headers=MANAGER,
    )
    assert r.status_code == 422 or r.status_code == 400, r.text
    r = client.post(f"/api/v1/match-reviews/{review}", json={"decision": "create"}, headers=MANAGER)
    assert r.status_code == 200, r.text
    assert count(engine, "child") == 2
    made = r.json()["child_id"]
    assert scalar(engine, "SELECT count(*) FROM child_identifier WHERE system = 'local:mosaic'") == 1
    assert scalar(engine, "SELECT count(*) FROM audit_event WHERE action = 'match-review.create'") == 1
    assert str(scalar(engine, "SELECT child_id FROM match_review")).replace("-", "") == made.replace("-", "")


def test_a_review_beside_a_shielded_child_is_shown_only_to_who_may_see_it(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    child, review = held(engine, tmp_path, shielded=True)
    assert client.get("/api/v1/match-reviews", headers=ADMIN).json() == []
    r = client.post(f"/api/v1/match-reviews/{review}", json={"decision": "create"}, headers=ADMIN)
    unknown = client.post(f"/api/v1/match-reviews/{uuid.uuid4()}", json={"decision": "create"}, headers=ADMIN)
    assert r.status_code == unknown.status_code == 404
    assert r.json()["detail"] == unknown.json()["detail"]  # withheld reads exactly as absent
    [item] = client.get("/api/v1/match-reviews", headers=MANAGER).json()
    [candidate] = item["candidates"]
    assert candidate["child_id"] == str(child) and candidate["shielded"] is True
    assert "postcode" not in json.dumps(candidate) and "Mill Lane" not in json.dumps(candidate)
    assert count(engine, "child") == 1


def test_two_people_deciding_at_once_exactly_one_wins(engine: Engine, tmp_path: Path) -> None:
    child, review = held(engine, tmp_path)
    from tests.fixtures.builders import actor

    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def decide(kind: str) -> None:
        barrier.wait()
        try:
            with unit_of_work(engine) as session:
                decide_review(
                    session,
                    actor=actor(Role.DIRECTORY_ADMIN, subject=kind),
                    review_id=review,
                    decision=ReviewDecision(decision="link", child_id=child)
                    if kind == "link"
                    else ReviewDecision(decision="create"),
                    precedence=Precedence(),
                    today=TODAY,
                )
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=decide, args=(k,)) for k in ("link", "create")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "won"]
    status = scalar(engine, "SELECT status FROM match_review")
    assert count(engine, "child") == (2 if status == "created" else 1)  # nothing half-written by the loser
    with engine.connect() as conn:
        decisions = conn.execute(
            sa.text(
                "SELECT count(*) FROM audit_event "
                "WHERE action LIKE 'match-review.%' AND action <> 'match-review.list'"
            )
        ).scalar_one()
    assert decisions == 1


def test_a_shield_sent_for_a_held_child_is_set_when_a_person_links_it(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    from childindex.feeds import reconcile_files
    from interop import systems as S
    from search.embedded import EmbeddedBackend
    from tests.directory.test_importer import nhs
    from tests.directory.test_reconcile import ADMIN as FEED_ADMIN

    run(engine, feed(tmp_path, row(1)), "pds")
    child = uuid.UUID(str(scalar(engine, "SELECT id FROM child")).replace("-", ""))
    shielded_patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": S.NHS_NUMBER, "value": nhs(1)}],
        "name": [{"use": "official", "family": "Ward", "given": ["Amelia"]}],
        "gender": "female",
        "birthDate": "2015-03-02",
        "extension": [{"url": S.EXT_SHIELDED, "valueBoolean": True}],
    }
    path = tmp_path / "Patient.ndjson"
    path.write_text(json.dumps(shielded_patient) + "\n", encoding="utf-8")
    backend = EmbeddedBackend(engine)
    result = reconcile_files(
        engine,
        [path],
        fmt="fhir",
        source="fhir",
        backend=backend,
        precedence=Precedence(),
        actor=FEED_ADMIN,
        today=TODAY,
    )
    assert [(o.outcome.value, o.reason) for o in result.lines] == [("held", "review")]
    assert scalar(engine, "SELECT shielded FROM child") in (False, 0)  # nothing changed by the feed
    review = scalar(engine, "SELECT id FROM match_review")
    r = client.post(
        f"/api/v1/match-reviews/{review}", json={"decision": "link", "child_id": str(child)}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert scalar(engine, "SELECT shielded FROM child") in (True, 1)
