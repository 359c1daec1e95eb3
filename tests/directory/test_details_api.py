"""PATCH /api/v1/children/{id} and GET /api/v1/children/{id}/history: If-Match and ETag, 412 and
428, nothing written on bad input, fifty-fifty races, shield rules in the history."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from search.port import SearchQuery
from tests.conftest import count
from tests.directory.test_api import new_child, who
from tests.fixtures.builders import make_locality, make_org, make_practitioner, make_service

ADMIN = who("directory_admin", subject="admin")
DATA = {**who("data_manager", subject="dm"), "X-Purpose-Of-Use": "administration"}
DESIGNATED = who("designated_practitioner", subject="dp")


def _patch(
    client: TestClient,
    child: str,
    body: dict[str, Any],
    version: int | str | None,
    headers: dict[str, str] = ADMIN,
) -> httpx.Response:
    extra = (
        {"If-Match": version if isinstance(version, str) else f'W/"{version}"'} if version is not None else {}
    )
    answer: httpx.Response = client.patch(
        f"/api/v1/children/{child}", json=body, headers={**headers, **extra}
    )
    return answer


def _changes_audited(engine: Engine) -> int:
    """Audit events other than refusals (a refused request is audited as `refused.<route>`)."""
    with engine.connect() as c:
        sql = "SELECT count(*) FROM audit_event WHERE outcome <> 'refused'"
        return int(c.execute(sa.text(sql)).scalar_one())


def _audit_rows(engine: Engine, action: str) -> list[dict[str, Any]]:
    with engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT detail FROM audit_event WHERE action = :a ORDER BY seq"), {"a": action}
        ).all()
    return [json.loads(r[0]) if r[0] else {} for r in rows]


def test_read_sends_an_etag_and_patch_answers_the_new_one(client: TestClient, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
    child = new_child(client)
    r = client.get(f"/api/v1/children/{child}", headers=ADMIN)
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"1"'
    r = _patch(
        client,
        child,
        {"official_name": {"given": "Amelia", "family": "Jones"}, "sex": "other"},
        r.headers["ETag"],
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["changed"] == ["name", "sex"]
    assert r.headers["ETag"] == 'W/"2"'
    card = client.get(f"/api/v1/children/{child}", headers=ADMIN)
    assert card.headers["ETag"] == 'W/"2"'
    assert [(n["use"], n["family"]) for n in card.json()["names"]][:2] == [
        ("official", "Jones"),
        ("previous", "Khan"),
    ]
    assert _audit_rows(engine, "child.details.change") == [{"changed": "name, sex", "source": "api"}]
    # nothing to change: no new version, the same ETag
    r = _patch(client, child, {"sex": "other"}, 2)
    assert r.status_code == 200 and r.json() == {"id": child, "version": 2, "changed": []}


def test_a_stale_if_match_is_412_and_a_missing_one_428(client: TestClient, engine: Engine) -> None:
    child = new_child(client)
    assert _patch(client, child, {"sex": "male"}, 1).status_code == 200
    before = (count(engine, "child_version"), _changes_audited(engine), count(engine, "outbox"))
    r = _patch(client, child, {"sex": "female"}, 1)
    assert r.status_code == 412, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["current_version"] == 2 and "version 1" in r.json()["detail"]
    r = _patch(client, child, {"sex": "female"}, None)
    assert r.status_code == 428 and "If-Match" in r.json()["detail"]
    assert _patch(client, child, {"sex": "female"}, "*").status_code == 428
    assert _patch(client, child, {"sex": "female"}, "banana").status_code == 422
    assert (count(engine, "child_version"), _changes_audited(engine), count(engine, "outbox")) == before


def test_bad_input_is_4xx_and_changes_nothing(client: TestClient, engine: Engine) -> None:
    child = new_child(client)
    future = (date.today() + timedelta(days=2)).isoformat()
    before = (count(engine, "child_version"), count(engine, "outbox"), count(engine, "child_name"))
    audit_before = _changes_audited(engine)
    for body, status in (
        ({"sex": "male", "address": {"line1": "1 Road", "postcode": "ZZ99 ZZZZ"}}, 422),
        ({"sex": "male", "address": {"line1": "1 Road", "postcode": "QQ1 1QQ"}}, 422),
        ({"sex": "male", "date_of_birth": "2020-02-30"}, 422),
        ({"sex": "male", "date_of_birth": future}, 422),
        ({"sex": "male", "school_id": "00000000-0000-0000-0000-000000000000"}, 404),
        ({"sex": "male", "colour": "blue"}, 422),
    ):
        r = _patch(client, child, body, 1)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (count(engine, "child_version"), count(engine, "outbox"), count(engine, "child_name")) == before
    assert _changes_audited(engine) == audit_before  # only the refusals (`refused.change_child`)
    assert client.get(f"/api/v1/children/{child}", headers=ADMIN).headers["ETag"] == 'W/"1"'


def test_two_patches_with_the_same_if_match_at_once_exactly_one_wins(
    client: TestClient, engine: Engine
) -> None:
    child = new_child(client)
    tries = 6
    barrier = threading.Barrier(tries)

    def attempt(i: int) -> int:
        barrier.wait()
        return _patch(
            client, child, {"official_name": {"given": f"Name{i}", "family": "Race"}}, 1
        ).status_code

    with ThreadPoolExecutor(tries) as pool:
        statuses = list(pool.map(attempt, range(tries)))
    assert sorted(statuses) == [200] + [412] * (tries - 1), statuses
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT version FROM child")).scalar_one() == 2
        assert c.execute(sa.text("SELECT count(*) FROM child_name WHERE use = 'official'")).scalar_one() == 1
    assert count(engine, "child_version") == 2
    assert len(_audit_rows(engine, "child.details.change")) == 1


def test_a_practitioner_not_involved_is_refused(client: TestClient, engine: Engine) -> None:
    child = new_child(client)
    with unit_of_work(engine) as s:
        stranger = make_practitioner(s).id
    r = _patch(client, child, {"sex": "male"}, 1, who(subject="stranger", practitioner=str(stranger)))
    assert r.status_code == 403 and "local delivery team" in r.json()["detail"]
    auditor = {**who("auditor", subject="aud")}
    assert _patch(client, child, {"sex": "male"}, 1, auditor).status_code == 403  # the route's policy
    assert _patch(client, child, {"sex": "male"}, 1, DATA).status_code == 200


def test_an_involved_practitioner_may_but_not_a_shielded_childs_address(
    client: TestClient, engine: Engine
) -> None:
    child = new_child(client)
    with unit_of_work(engine) as s:
        org = make_org(s, name="Demoshire Health", kind="nhs_trust")
        svc = make_service(s, org)
        nurse = make_practitioner(s, org, name="Nina Nurse").id
    ldt = who("local_delivery_team", subject="ldt")
    r = client.post(
        f"/api/v1/children/{child}/involvements",
        json={
            "service_id": str(svc.id),
            "role": "health visitor",
            "level_of_need": 1,
            "start_date": date.today().isoformat(),
        },
        headers=ldt,
    )
    assert r.status_code == 201, r.text
    nurse_h = who(subject="nina", practitioner=str(nurse))
    assert _patch(client, child, {"sex": "male"}, 1, nurse_h).status_code == 200
    r = client.post(f"/api/v1/children/{child}/shielding", json={"reason": "fleeing violence"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["version"] == 3
    r = _patch(client, child, {"address": {"line1": "9 Hidden Lane", "postcode": "OX4 9ZZ"}}, 3, nurse_h)
    assert r.status_code == 403 and "designated practitioner" in r.json()["detail"]
    r = _patch(client, child, {"address": {"line1": "9 Hidden Lane", "postcode": "OX4 9ZZ"}}, 3, ADMIN)
    assert r.status_code == 403
    assert (
        _patch(
            client, child, {"address": {"line1": "9 Hidden Lane", "postcode": "OX4 9ZZ"}}, 3, ldt
        ).status_code
        == 403
    )
    # history: the nurse sees the versions, not where the child lives now or lived, nor its old names
    history = client.get(f"/api/v1/children/{child}/history", headers=nurse_h)
    assert history.status_code == 200, history.text
    body = history.text
    assert "Temple Road" not in body and "Sara Khan" not in body and "Brown" not in body
    assert [v["version"] for v in history.json()] == [1, 2, 3]
    # whose organisation made a version is not shown (but for the nurse's own version)
    assert [v["organisation"] for v in history.json()] == [None, "Cowley School", None]
    # a designated practitioner sees everything
    full = client.get(f"/api/v1/children/{child}/history", headers=DESIGNATED)
    assert "Temple Road" in full.text and "Sara Khan" in full.text
    assert [v["changed"] for v in full.json()] == [["created"], ["sex"], ["shield"]]
    assert _audit_rows(engine, "child.history.read") == [{}, {}]


def test_history_shows_each_version(client: TestClient, engine: Engine) -> None:
    child = new_child(client)
    _patch(client, child, {"address": {"line1": "5 New Street", "postcode": "OX4 3BB"}}, 1)
    _patch(client, child, {"official_name": {"given": "Amelia", "family": "Stone"}}, 2)
    r = client.get(f"/api/v1/children/{child}/history", headers=ADMIN)
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"3"'
    versions = r.json()
    assert [v["changed"] for v in versions] == [["created"], ["address"], ["name"]]
    assert [v["details"]["address"]["line1"] for v in versions] == [
        "2 Temple Road",
        "5 New Street",
        "5 New Street",
    ]
    assert (
        versions[2]["details"]["names"][0]["family"] == "Stone"
        and versions[1]["details"]["names"][0]["family"] == "Khan"
    )
    assert versions[1]["role"] == "directory_admin" and versions[1]["source"] == "api"
    # whoever may read the record reads its history: an auditor too (audited as any read)
    assert (
        client.get(f"/api/v1/children/{child}/history", headers=who("auditor", subject="a")).status_code
        == 200
    )
    adoption = {**who("adoption_officer"), "X-Purpose-Of-Use": "administration"}
    assert client.get(f"/api/v1/children/{child}/history", headers=adoption).status_code == 200


def test_the_running_indexer_takes_a_change_into_search_without_help(tmp_path: Any) -> None:
    """The outbox carries a change to the search index: with the app's own background indexer (no
    test draining it), a search by the new surname finds the child soon after the PATCH answers."""
    import time

    from childindex.app import create_app
    from childindex.settings import Settings
    from directory.db import create_schema, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'indexer.db'}")
    create_schema(engine)
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
    settings = Settings(environment="development", database_url="sqlite://", indexer_interval_seconds=0.5)
    app = create_app(settings, engine=engine)

    def found(family: str, born: str) -> list[str]:
        """What the search engine the route uses finds (polled here: the route has a rate limit)."""
        q = SearchQuery(given="Amelia", family=family, birth_date=date.fromisoformat(born))
        return [str(uuid.UUID(m.child_id)) for m in app.state.search_engine.search(q).matches]

    def waited(family: str, born: str, child: str) -> float:
        started = time.monotonic()
        while child not in found(family, born):
            assert time.monotonic() - started < 10, f"not indexed: {family}"
            time.sleep(0.02)
        return time.monotonic() - started

    with TestClient(app) as client:
        child = new_child(client)
        born = client.get(f"/api/v1/children/{child}", headers=ADMIN).json()["date_of_birth"]
        waited("Khan", born, child)
        r = _patch(client, child, {"official_name": {"given": "Amelia", "family": "Okonjo"}}, 1)
        assert r.status_code == 200, r.text
        lag = waited("Okonjo", born, child)
        print(f"indexed {lag:.2f} s after the change")  # about the indexer's interval (0.5 s)
        r = client.post(
            "/api/v1/children/search",
            headers=who(),
            json={"given": "Amelia", "family": "Okonjo", "birth_date": born},
        )
        assert r.status_code == 200 and r.json()["hits"][0]["child_id"] == child, r.text
    engine.dispose()
