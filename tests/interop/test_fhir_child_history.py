"""Type-level `_history` of the child's resources (issue #19, staying in sync): what changed since,
for systems granted reads in bulk (directory.export), each child as a read shows it, audited."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.policy import FHIR_CHILD_TYPES
from directory import service
from directory.db import unit_of_work
from directory.models import CafClose, InvolvementCreate, Role, utcnow
from tests.fixtures.builders import actor, make_child
from tests.interop.conftest import TRUST_SCOPES, World, system_headers
from tests.interop.test_fhir_api import outcome, valid

BULK = (*TRUST_SCOPES, "directory.export")
KINDS = FHIR_CHILD_TYPES


def _history(api: TestClient, h: dict[str, str], path: str, **params: str) -> dict[str, Any]:
    r = api.get(path, headers=h, params=params or None)  # (an empty dict would drop a next link's query)
    assert r.status_code == 200, r.text
    return valid(r.json())


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] != "OperationOutcome"
    ]


def test_patient_history_lists_what_changed_since_as_a_read_shows_it(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine, subject="trust-bulk", scopes=BULK)
    everything = _history(api, h, "/fhir/Patient/_history", _count="100")
    ids = _ids(everything)
    assert str(world.child) in ids and str(world.shielded_child) in ids
    shielded = next(
        e["resource"] for e in everything["entry"] if e["resource"]["id"] == str(world.shielded_child)
    )
    assert "address" not in shielded  # as a read shows it to this system
    read = api.get(f"/fhir/Patient/{world.shielded_child}", headers=h).json()
    assert shielded == read
    for e in everything["entry"]:
        assert e["fullUrl"].endswith(f"/Patient/{e['resource']['id']}")
        assert e["response"]["lastModified"] == e["resource"]["meta"]["lastUpdated"]
    # what changed after the Bundle was taken: only the child changed since
    since = everything["meta"]["lastUpdated"]
    assert _ids(_history(api, h, "/fhir/Patient/_history", _since=since)) == []
    with unit_of_work(engine) as s:
        other = make_child(s, names=[{"given": "Noah", "family": "Reed"}])
    assert _ids(_history(api, h, "/fhir/Patient/_history", _since=since)) == [str(other)]
    # paged newest first through next links, each child once
    seen: list[str] = []
    page = _history(api, h, "/fhir/Patient/_history", _count="1")
    while True:
        seen += _ids(page)
        nxt = [x["url"] for x in page["link"] if x["relation"] == "next"]
        if not nxt:
            break
        page = _history(api, h, nxt[0].removeprefix("http://testserver"))
    assert sorted(seen) == sorted({*ids, str(other)})


def test_episode_history_leaves_out_what_the_caller_may_not_see(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine, subject="trust-bulk", scopes=BULK)
    ids = _ids(_history(api, h, "/fhir/EpisodeOfCare/_history", _count="100"))
    assert str(world.involvement) in ids
    assert str(world.sensitive_involvement) not in ids  # a sensitive service, no consent covering this system
    with unit_of_work(engine) as s:  # a sealed (adopted) record's involvements are nobody's to list
        sealed = make_child(s, names=[{"given": "Ruby", "family": "Cole"}])
        inv = service.record_involvement(
            s,
            actor=actor(Role.DIRECTORY_ADMIN),
            child_id=sealed,
            data=InvolvementCreate(
                service_id=world.school_service,
                role="SENCO",
                level_of_need=2,
                start_date=date.today() - timedelta(days=2),
            ),
        )
        s.execute(sa.text("UPDATE child SET status = 'sealed' WHERE id = :id"), {"id": sealed.hex})
    assert str(inv.id) not in _ids(_history(api, h, "/fhir/EpisodeOfCare/_history", _count="100"))
    assert str(sealed) not in _ids(_history(api, h, "/fhir/Patient/_history", _count="100"))


def test_only_bulk_readers_may_and_each_page_is_audited_per_child(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    plain = system_headers(state, engine, subject="trust-plain", scopes=TRUST_SCOPES)
    for kind in KINDS:
        outcome(api.get(f"/fhir/{kind}/_history", headers=plain), 403, "forbidden")
    person = system_headers(
        state,
        engine,
        subject="dp",
        role=Role.DESIGNATED_PRACTITIONER,
        scopes=("user/Patient.rs", "directory.export"),
    )
    r = api.get("/fhir/Patient/_history", headers=person)
    assert r.status_code in (401, 403), r.text
    h = system_headers(state, engine, subject="trust-bulk", scopes=BULK)
    before = utcnow()
    shown = _ids(_history(api, h, "/fhir/Patient/_history", _count="100"))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT s.child_id FROM audit_event e JOIN audit_subject s ON s.seq = e.seq "
                "WHERE e.action = 'history.read' AND e.at >= :t"
            ),
            {"t": before},
        ).all()
    assert {str(r[0]).replace("-", "") for r in rows} == {i.replace("-", "") for i in shown}


def test_every_childs_type_lists_what_a_read_shows_and_nothing_hidden(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """The history of each of the child's types: each entry is exactly what a read of it shows this
    caller; a sensitive service's consent and involvement are not listed; a CAF's change lists its
    Flags (its status, and the Lead Professional in place)."""
    h = system_headers(state, engine, subject="trust-bulk", scopes=BULK)
    listed: dict[str, list[str]] = {}
    for kind in KINDS:
        bundle = _history(api, h, f"/fhir/{kind}/_history", _count="100")
        listed[kind] = _ids(bundle)
        for e in bundle.get("entry", []):
            read = api.get(f"/fhir/{kind}/{e['resource']['id']}", headers=h)
            assert read.status_code == 200 and read.json() == e["resource"], (kind, read.text)
    assert str(world.sensitive_involvement) not in listed["EpisodeOfCare"]
    with engine.connect() as conn:
        sensitive = (
            conn.execute(sa.text("SELECT id FROM consent WHERE scope LIKE 'sensitive%'")).scalars().all()
        )
    assert sensitive and not {str(c).replace("-", "") for c in sensitive} & {
        c.replace("-", "") for c in listed["Consent"]
    }
    assert {f"caf-{world.caf.hex}", f"lp-{world.child.hex}"} <= set(listed["Flag"])
    assert listed["RelatedPerson"]  # the world child's mother
    # the CAF withdrawn: its Flags are listed since, and nothing else of the child's changed
    since = utcnow().isoformat()
    with unit_of_work(engine) as s:
        service.close_caf(
            s,
            actor=actor(practitioner_id=world.senco, subject="sam"),
            caf_id=world.caf,
            data=CafClose(reason="the family moved on"),
            now=utcnow(),
        )
    assert _ids(_history(api, h, "/fhir/Flag/_history", _since=since)) == [f"caf-{world.caf.hex}"]
    for kind in ("Patient", "RelatedPerson", "EpisodeOfCare", "Consent"):
        assert _ids(_history(api, h, f"/fhir/{kind}/_history", _since=since)) == [], kind
