"""Staying in sync with the catalogue (issue #19, IHE mCSD ITI-91): type- and system-level _history
with _since and _count, _lastUpdated on the catalogue's searches, meta.lastUpdated, who may ask."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory import service
from directory.db import unit_of_work
from directory.models import Locality, Practitioner, PractitionerCreate, Role, utcnow
from interop.sync import CHILD_TABLES
from tests.fixtures.builders import actor, make_practitioner
from tests.interop.conftest import World, system_headers
from tests.interop.test_fhir_api import outcome, valid

CATALOGUE = ("Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Location")


def _touch(engine: Engine, practitioner_id: uuid.UUID, phone: str) -> None:
    """A directory admin changes a practitioner's phone number."""
    with unit_of_work(engine) as s:
        p = s.get(Practitioner, practitioner_id)
        assert p is not None
        data = PractitionerCreate(
            name=p.name, role=p.role, organisation_id=p.organisation_id, phone=phone, email=p.email
        )
        service.update_practitioner(
            s, actor=actor(Role.DIRECTORY_ADMIN), practitioner_id=practitioner_id, data=data
        )


def _history(api: TestClient, h: dict[str, str], path: str, **params: str) -> dict[str, Any]:
    r = api.get(path, headers=h, params=params)
    assert r.status_code == 200, r.text
    return valid(r.json())


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])]


def _follow(api: TestClient, h: dict[str, str], first: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page, following the next links from the first."""
    pages = [first]
    while nxt := [x["url"] for x in pages[-1]["link"] if x["relation"] == "next"]:
        r = api.get(nxt[0].removeprefix("http://testserver"), headers=h)
        assert r.status_code == 200, r.text
        pages.append(valid(r.json()))
        assert len(pages) < 50
    return pages


def test_a_change_appears_in_history_since_just_before_it_and_not_after(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    before = utcnow()
    _touch(engine, world.hv, "07700 900321")
    after = utcnow()
    seen = _history(api, h, "/fhir/Practitioner/_history", _since=before.isoformat())
    assert seen["type"] == "history" and _ids(seen) == [f"Practitioner/{world.hv}"]
    entry = seen["entry"][0]
    assert entry["fullUrl"] == f"http://testserver/fhir/Practitioner/{world.hv}"
    assert entry["request"] == {"method": "PUT", "url": f"Practitioner/{world.hv}"}
    changed = datetime.fromisoformat(entry["response"]["lastModified"])
    assert before <= changed <= after
    assert entry["resource"]["meta"]["lastUpdated"] == entry["response"]["lastModified"]
    # the read says the same, and so does the role (the same row), with its version
    read = api.get(f"/fhir/Practitioner/{world.hv}", headers=h).json()
    assert read["meta"]["lastUpdated"] == entry["response"]["lastModified"]
    role = _history(api, h, "/fhir/PractitionerRole/_history", _since=before.isoformat())
    assert _ids(role) == [f"PractitionerRole/{world.hv}"]
    assert role["entry"][0]["response"]["etag"] == 'W/"2"'
    assert role["entry"][0]["resource"]["telecom"][0]["value"] == "07700 900321"
    assert [x["relation"] for x in seen["link"]] == ["self"]
    assert "_since=" in seen["link"][0]["url"]
    # taken after the change: not there; nothing else changed either
    assert _ids(_history(api, h, "/fhir/Practitioner/_history", _since=after.isoformat())) == []
    assert _ids(_history(api, h, "/fhir/Organization/_history", _since=before.isoformat())) == []
    # the system-level history has both faces of the practitioner
    system = _history(api, h, "/fhir/_history", _since=before.isoformat())
    assert sorted(_ids(system)) == [f"Practitioner/{world.hv}", f"PractitionerRole/{world.hv}"]
    # the bundle's own time is the next poll's _since: what changes afterwards is in that poll
    _touch(engine, world.senco, "07700 900456")
    again = _history(api, h, "/fhir/Practitioner/_history", _since=seen["meta"]["lastUpdated"])
    assert _ids(again) == [f"Practitioner/{world.senco}"]


def test_without_since_every_catalogue_row_is_there_and_new_ones_are_created(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    everything = _history(api, h, "/fhir/HealthcareService/_history", _count="100")
    searched = api.get("/fhir/HealthcareService", headers=h, params={"_count": "100"}).json()
    assert sorted(_ids(everything)) == sorted(_ids(searched))
    with unit_of_work(engine) as s:
        org = s.get(Practitioner, world.hv)
        assert org is not None
        new = make_practitioner(s, name="Nia Patel", organisation_id=org.organisation_id).id
    page = _history(api, h, "/fhir/PractitionerRole/_history", _count="1")
    assert _ids(page) == [f"PractitionerRole/{new}"]  # newest first
    assert page["entry"][0]["request"] == {"method": "POST", "url": "PractitionerRole"}
    assert page["entry"][0]["response"]["status"] == "201"


def test_paging_follows_next_links_newest_first_and_a_change_meanwhile_moves_to_the_next_poll(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    start = utcnow()
    made = []
    with unit_of_work(engine) as s:
        org_id = s.get(Practitioner, world.hv).organisation_id  # type: ignore[union-attr]
    for n in range(7):
        with unit_of_work(engine) as s:
            made.append(make_practitioner(s, name=f"Worker {n}", organisation_id=org_id).id)
    first = _history(api, h, "/fhir/Practitioner/_history", _since=start.isoformat(), _count="3")
    assert len(first["entry"]) == 3
    _touch(engine, made[0], "07700 900777")  # the oldest changes while the client pages
    pages = _follow(api, h, first)
    assert [len(p["entry"]) for p in pages] == [3, 3]
    got = [i for p in pages for i in _ids(p)]
    assert len(got) == len(set(got))  # nothing twice
    assert set(got) == {f"Practitioner/{x}" for x in made[1:]}  # the changed one left for the next poll
    times = [e["response"]["lastModified"] for p in pages for e in p.get("entry", [])]
    assert times == sorted(times, reverse=True)
    assert all(p["link"][0]["relation"] == "self" for p in pages)
    nxt = _history(api, h, "/fhir/Practitioner/_history", _since=first["meta"]["lastUpdated"])
    assert _ids(nxt) == [f"Practitioner/{made[0]}"]


def test_malformed_parameters_are_400_naming_the_parameter(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    for bad in (
        "yesterday",
        "2026-12-05",
        "2026-12-05T10:00:00",
        "2026-13-05T10:00:00Z",
        "2026-12-05T10:00Z",
    ):
        for path in ("/fhir/Practitioner/_history", "/fhir/_history"):
            r = api.get(path, headers=h, params={"_since": bad})
            assert "_since" in outcome(r, 400, "invalid"), bad
            assert r.json()["issue"][0]["expression"] == ["_since"]
    outcome(api.get("/fhir/Location/_history", headers=h, params={"_count": "x"}), 400, "invalid")
    r = api.get("/fhir/Location/_history", headers=h, params={"_cursor": "20261205T000000.0.Location.zz"})
    assert "_cursor" in outcome(r, 400, "invalid")
    # An unknown parameter is ignored (and reported), unless the client asks for strict handling.
    strict = {**h, "Prefer": "handling=strict"}
    outcome(api.get("/fhir/Location/_history", headers=strict, params={"name": "x"}), 400, "not-supported")
    assert api.get("/fhir/Location/_history", headers=h, params={"name": "x"}).status_code == 200
    # the calendar's edges, in any zone, are 400 too, never 500
    for bad in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00Z"):
        outcome(api.get("/fhir/_history", headers=h, params={"_since": bad}), 400, "invalid")
    for bad in ("gt-soon", "ge9999-12", "9999", "le9999-12-31T23:59:59-01:00", "2026-02-30", "eq2026-1-1"):
        r = api.get("/fhir/Practitioner", headers=h, params={"_lastUpdated": bad})
        assert "_lastUpdated" in outcome(r, 400, "invalid"), bad


def test_last_updated_searches_the_catalogue(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    before = utcnow()
    _touch(engine, world.hv, "07700 900321")
    ts = before.isoformat()
    for kind in ("Practitioner", "PractitionerRole"):
        newer = api.get(f"/fhir/{kind}", headers=h, params={"_lastUpdated": f"ge{ts}"}).json()
        assert _ids(valid(newer)) == [f"{kind}/{world.hv}"]
        older = api.get(f"/fhir/{kind}", headers=h, params={"_lastUpdated": f"lt{ts}"}).json()
        assert f"{kind}/{world.senco}" in _ids(older) and f"{kind}/{world.hv}" not in _ids(older)
    # both bounds, and a day's precision
    both = api.get(
        "/fhir/Practitioner",
        headers=h,
        params=[("_lastUpdated", f"gt{ts}"), ("_lastUpdated", f"le{utcnow().isoformat()}")],
    ).json()
    assert _ids(both) == [f"Practitioner/{world.hv}"]
    today = before.date().isoformat()
    for kind in ("Organization", "HealthcareService", "Location"):
        r = api.get(f"/fhir/{kind}", headers=h, params={"_lastUpdated": f"lt{today}"})
        assert r.status_code == 200 and r.json()["total"] == 0, r.text
        every = valid(api.get(f"/fhir/{kind}", headers=h).json())
        assert every["total"] > 0
        for e in every["entry"]:  # meta.lastUpdated on every catalogue resource, consistent with the search
            stamp = e["resource"]["meta"]["lastUpdated"]
            r = api.get(
                f"/fhir/{kind}", headers=h, params={"_id": e["resource"]["id"], "_lastUpdated": f"eq{stamp}"}
            )
            assert r.json()["total"] == 1, (kind, stamp)


def test_who_may_ask_is_who_may_search_the_catalogue(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    assert api.get("/fhir/Practitioner/_history").status_code == 401
    assert api.get("/fhir/_history").status_code == 401
    reader = system_headers(
        state, engine, subject="reader", scopes=("system/Practitioner.r", "system/Patient.rs")
    )
    r = api.get("/fhir/Practitioner/_history", headers=reader)
    assert r.status_code == 403 and "Practitioner.s" in r.text
    assert api.get("/fhir/_history", headers=reader).status_code == 403
    locations = system_headers(state, engine, subject="places", scopes=("system/Location.rs",))
    assert api.get("/fhir/Practitioner/_history", headers=locations).status_code == 403
    only = _history(api, locations, "/fhir/_history", _count="100")
    assert {e["resource"]["resourceType"] for e in only["entry"]} == {"Location"}
    # a person: the history answers exactly as the catalogue's search does, whatever the token holds
    statuses = []
    for scopes in (("directory.search",), ("user/Location.rs",), ("user/Location.r",)):
        person = system_headers(
            state, engine, subject=f"pat-{scopes[0]}", scopes=scopes, role=Role.PRACTITIONER, purpose=None
        )
        search = api.get("/fhir/Location", headers=person).status_code
        assert api.get("/fhir/Location/_history", headers=person).status_code == search, scopes
        statuses.append(search)
    assert statuses == [403, 200, 403]


def test_history_shows_no_more_than_search_of_a_sensitive_service(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """The sexual health service and its practitioners: history shows exactly what search shows."""
    h = system_headers(state, engine)
    with unit_of_work(engine) as s:
        nurse = make_practitioner(
            s, name="Nora Quinn", role="sexual health nurse", organisation_id=world.trust
        ).id
    for kind in CATALOGUE:
        history = _history(api, h, f"/fhir/{kind}/_history", _count="100")
        searched = valid(api.get(f"/fhir/{kind}", headers=h, params={"_count": "100"}).json())
        by_id = {e["resource"]["id"]: e["resource"] for e in searched["entry"]}
        assert {e["resource"]["id"] for e in history["entry"]} == set(by_id), kind
        for e in history["entry"]:
            assert e["resource"] == by_id[e["resource"]["id"]], kind
    sensitive = api.get(f"/fhir/HealthcareService/{world.sexual_health}", headers=h).json()
    assert sensitive["meta"]["security"][0]["code"] == "R" and "lastUpdated" in sensitive["meta"]
    assert str(nurse) in {
        e["resource"]["id"] for e in _history(api, h, "/fhir/PractitionerRole/_history")["entry"]
    }


def test_the_capability_statement_says_what_is_built(api: TestClient) -> None:
    cs = valid(api.get("/fhir/metadata").json())
    rest = cs["rest"][0]
    assert {"code": "history-system"} in rest["interaction"]
    for res in rest["resource"]:
        codes = [i["code"] for i in res["interaction"]]
        params = {p["name"] for p in res.get("searchParam", [])}
        # the catalogue's, and the child's resources (for reads in bulk: interop/api/child_history.py)
        with_history = (*CATALOGUE, *CHILD_TABLES)
        assert ("history-type" in codes) == (res["type"] in with_history), res["type"]
        # on the catalogue and the child's resources (tests/interop/test_fhir_last_updated.py)
        assert ("_lastUpdated" in params) == (res["type"] != "AuditEvent" and "searchParam" in res), res[
            "type"
        ]


def test_configuring_localities_marks_only_what_changed(engine: Engine, world: World) -> None:
    with unit_of_work(engine) as s:
        loc = s.get(Locality, world.locality)
        assert loc is not None
        row = {
            "code": loc.code,
            "name": loc.name,
            "authority": loc.authority,
            "team_name": loc.team_name,
            "team_phone": loc.team_phone or "",
            "team_email": loc.team_email or "",
        }
        stamp = loc.updated_at
    admin = actor(Role.DIRECTORY_ADMIN)
    areas = "OX4"  # as make_locality gave it
    with unit_of_work(engine) as s:
        service.configure_localities(s, actor=admin, rows=[{**row, "areas": areas}])
    with unit_of_work(engine) as s:
        assert s.get(Locality, world.locality).updated_at == stamp  # type: ignore[union-attr]
    with unit_of_work(engine) as s:
        service.configure_localities(s, actor=admin, rows=[{**row, "areas": areas + "; OX9"}])
    with unit_of_work(engine) as s:
        assert s.get(Locality, world.locality).updated_at > stamp  # type: ignore[union-attr]
