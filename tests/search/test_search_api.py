"""The search endpoint end to end: directory write -> outbox -> index -> ranked, audited hits."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from search.indexer import drain, pending
from tests.directory.test_api import catalogue, new_child, who
from tests.fixtures.builders import next_nhs_number

DOB = (date.today() - timedelta(days=365 * 9 + 40)).isoformat()


def _index(client: TestClient, engine: Engine) -> None:
    drain(engine, client.app.state.search_backend, wait=True)  # type: ignore[attr-defined]
    assert pending(engine) == 0


def _child(
    client: TestClient,
    given: str,
    family: str,
    *,
    dob: str = DOB,
    postcode: str = "OX4 2AB",
    nhs: str | None = None,
) -> str:
    return new_child(
        client,
        names=[{"given": given, "family": family}],
        date_of_birth=dob,
        identifiers=[{"system": "nhs", "value": nhs or next_nhs_number()}],
        address={"line1": "1 Road", "postcode": postcode},
    )


def test_finds_the_right_child_first_with_grade_and_summary(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    target = _child(client, "Alexander", "Fitzgerald-Jones")
    _child(client, "Alexandra", "Jones", postcode="OX3 1AA")
    _child(client, "Peter", "Fitzgerald", dob="2012-03-04")
    signal = client.post(
        f"/api/v1/children/{target}/caf",
        headers=who(practitioner=ids["p1"]),
        json={"no_risk_of_significant_harm": True},
    )
    assert signal.status_code == 201, signal.text
    _index(client, engine)
    r = client.post(
        "/api/v1/children/search",
        headers=who(),
        json={"given": "alex", "family": "fitzgerald jones", "birth_date": DOB},
    )
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["child_id"].replace("-", "") == target.replace("-", "")
    assert hits[0]["grade"] in ("certain", "probable")
    assert 0 < hits[0]["score"] <= 1 and hits[0]["explanation"]
    assert hits[0]["involvement"]["caf_status"] == "signalled"
    assert hits[0]["involvement"]["lead_professional"].startswith("Sam Senco")
    get = client.get(
        "/api/v1/children/search",
        headers=who(),
        params={"given": "alex", "family": "fitzgerald jones", "birth_date": DOB},
    )
    assert get.status_code == 200 and get.json()["hits"][0]["child_id"] == hits[0]["child_id"]


def test_identifier_short_circuits(client: TestClient, engine: Engine) -> None:
    nhs = next_nhs_number()
    target = _child(client, "Mia", "Wong", nhs=nhs)
    _index(client, engine)
    r = client.post("/api/v1/children/search", headers=who(), json={"nhs_number": nhs})
    assert [h["child_id"].replace("-", "") for h in r.json()["hits"]] == [target.replace("-", "")]


def test_minimum_criteria_are_enforced_with_a_clear_message(client: TestClient, engine: Engine) -> None:
    too_little = (
        {"family": "Smith"},
        {"given": "Olivia"},
        {"postcode": "OX4 2AB"},
        {"family": "Smith", "birth_date_from": "2010-01-01", "birth_date_to": "2014-01-01"},
    )
    for body in too_little:
        r = client.post("/api/v1/children/search", headers=who(subject="wide"), json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]
    # Each refusal is audited (a pattern of them is what a trawl looks like), with no search made.
    with engine.connect() as conn:
        audited = conn.execute(
            sa.text("SELECT action, outcome, detail FROM audit_event WHERE actor_subject = 'wide'")
        ).all()
    assert [(a, o) for a, o, _ in audited] == [("refused.search_children", "refused")] * len(too_little)
    assert all(d == '{"error":"invalid-input"}' for _, _, d in audited), audited
    r = client.post("/api/v1/children/search", headers=who(), json={"family": "Smith", "limit": 500})
    assert r.status_code == 422
    r = client.post("/api/v1/children/search", headers=who(), json={"nhs_number": "123"})
    assert r.status_code == 422


def test_changes_reach_the_index_through_the_outbox(client: TestClient, engine: Engine) -> None:
    child = _child(client, "Noah", "Baker")
    assert pending(engine) >= 1
    _index(client, engine)
    body = {"given": "Noah", "family": "Baker", "birth_date": DOB}
    assert len(client.post("/api/v1/children/search", headers=who(), json=body).json()["hits"]) == 1
    # Running the indexer again (as after a crash mid-run) changes nothing.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE outbox SET processed_at = NULL"))
    _index(client, engine)
    assert len(client.post("/api/v1/children/search", headers=who(), json=body).json()["hits"]) == 1
    assert child


def test_shielded_child_is_not_found_by_postcode_and_hides_location(
    client: TestClient, engine: Engine
) -> None:
    catalogue(engine)
    child = _child(client, "Ruby", "Holt", postcode="OX4 9ZZ")
    client.post(
        f"/api/v1/children/{child}/shielding",
        headers=who("designated_practitioner"),
        json={"reason": "refuge"},
    )
    _index(client, engine)
    by_postcode = client.post(
        "/api/v1/children/search",
        headers=who(),
        json={"family": "Holt", "birth_date": DOB, "postcode": "OX4 9ZZ"},
    ).json()
    for hit in by_postcode["hits"]:
        assert "postcode" not in hit["agreed"]
    by_name = client.post(
        "/api/v1/children/search", headers=who(), json={"given": "Ruby", "family": "Holt", "birth_date": DOB}
    ).json()["hits"]
    assert len(by_name) == 1 and by_name[0]["shielded"]
    assert by_name[0]["postcode_district"] is None and by_name[0]["involvement"]["lead_professional"] is None
    assert "East Early Help Team" in by_name[0]["involvement"]["ask"]


def test_search_is_audited_by_fingerprint_not_query(client: TestClient, engine: Engine) -> None:
    child = _child(client, "Isla", "Murray")
    _index(client, engine)
    client.post(
        "/api/v1/children/search",
        headers=who(subject="searcher"),
        json={"given": "Isla", "family": "Murray", "birth_date": DOB},
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT detail FROM audit_event WHERE action = 'search'")).scalars().all()
    assert rows and all("Murray" not in (d or "") and "Isla" not in (d or "") for d in rows)
    assert "fingerprint" in rows[-1]
    log = client.get(f"/api/v1/children/{child}/access-log", headers=who("auditor", subject="aud")).json()
    assert any(e["actor_subject"] == "searcher" and e["action"] == "search" for e in log)


def test_search_needs_purpose_and_is_refused_to_auditors(client: TestClient) -> None:
    headers = who()
    del headers["X-Purpose-Of-Use"]
    assert (
        client.post(
            "/api/v1/children/search", headers=headers, json={"family": "X", "birth_date": DOB}
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/v1/children/search", headers=who("auditor"), json={"family": "X", "birth_date": DOB}
        ).status_code
        == 403
    )


def test_a_search_answers_alike_on_the_event_loop_and_in_a_worker_thread(
    client: TestClient, engine: Engine
) -> None:
    """With the index in memory a search runs on the event loop; reading SQL it runs in a worker
    thread. Same answer, same audit, either way."""
    from search.embedded import EmbeddedBackend

    target = _child(client, "Maisie", "Okafor")
    _child(client, "Maisy", "Okafor", postcode="OX3 1AA")
    _index(client, engine)
    backend = client.app.state.search_backend  # type: ignore[attr-defined]
    assert isinstance(backend, EmbeddedBackend)
    resident = backend.start_resident()
    assert resident.wait_ready(30)
    query = {"given": "Maisie", "family": "Okafor", "birth_date": DOB}
    answers = []
    for in_memory in (True, False):
        if not in_memory:
            backend.stop_resident()
        assert backend.in_memory is in_memory
        r = client.post("/api/v1/children/search", headers=who(subject=f"loop-{in_memory}"), json=query)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert answers[0] == answers[1]
    assert answers[0]["hits"][0]["child_id"].replace("-", "") == target.replace("-", "")
    with engine.connect() as conn:
        audited = conn.execute(
            sa.text(
                "SELECT actor_subject FROM audit_event "
                "WHERE action = 'search' AND actor_subject LIKE 'loop-%'"
            )
        ).scalars()
        assert sorted(audited) == ["loop-False", "loop-True"]


def test_a_shielded_childs_former_names_and_aliases_lead_nowhere(client: TestClient, engine: Engine) -> None:
    """The adoption case: a shielded child is found and shown by its current official name only,
    never by a birth name or an alias, to anyone who may not see the record."""
    catalogue(engine)
    child = new_child(
        client,
        names=[
            {"given": "Maya", "family": "Okafor"},
            {"given": "Poppy", "family": "Birchall", "use": "previous", "until": "2020-01-01"},
            {"given": "Mimi", "family": "Stone", "use": "alias"},
        ],
        date_of_birth=DOB,
        identifiers=[{"system": "nhs", "value": next_nhs_number()}],
        address={"line1": "1 Road", "postcode": "OX4 2AB"},
    )

    def found(given: str, family: str, role: str = "practitioner") -> list[dict[str, object]]:
        body = {"given": given, "family": family, "birth_date": DOB}
        r = client.post("/api/v1/children/search", headers=who(role), json=body)
        assert r.status_code == 200, r.text
        return [h for h in r.json()["hits"] if str(h["child_id"]).replace("-", "") == child.replace("-", "")]

    _index(client, engine)
    assert found("Poppy", "Birchall") and found("Mimi", "Stone")  # before the shield: any name finds it
    shield = client.post(
        f"/api/v1/children/{child}/shielding",
        headers=who("designated_practitioner"),
        json={"reason": "adopted"},
    )
    assert shield.status_code in (200, 201), shield.text
    _index(client, engine)
    assert found("Poppy", "Birchall") == [] and found("Mimi", "Stone") == []
    assert found("Poppy", "Birchall", "designated_practitioner") == []  # the index keys no former name
    hits = found("Maya", "Okafor")
    assert len(hits) == 1 and hits[0]["name"] == "Maya Okafor"
    assert "Birchall" not in str(hits[0]) and "Stone" not in str(hits[0])
    card = client.get(f"/api/v1/children/{child}", headers=who()).json()
    assert [(n["given"], n["family"]) for n in card["names"]] == [("Maya", "Okafor")]
    seen = client.get(f"/api/v1/children/{child}", headers=who("designated_practitioner")).json()
    assert {n["family"] for n in seen["names"]} == {"Okafor", "Birchall", "Stone"}
