"""Every resource the FHIR surface shows says when it last changed (meta.lastUpdated, and a read's
Last-Modified header), and the time moves on when, and only when, the resource changes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory import service
from directory.db import unit_of_work
from directory.models import (
    CafStart,
    ConsentCreate,
    ConsentWithdraw,
    HandOver,
    InvolvementCreate,
    InvolvementUpdate,
    Role,
    TacUpdate,
    utcnow,
)
from interop import systems as S
from tests.fixtures.builders import actor, make_child
from tests.interop.conftest import World, system_headers

SCOPES = (
    "system/Patient.rs",
    "system/EpisodeOfCare.rs",
    "system/Flag.rs",
    "system/CareTeam.rs",
    "system/Consent.rs",
    "system/RelatedPerson.rs",
    "system/Practitioner.rs",
    "system/PractitionerRole.rs",
    "system/Organization.rs",
    "system/HealthcareService.rs",
    "system/Location.rs",
)
EVERYTHING = (
    "_revinclude=EpisodeOfCare:patient&_revinclude=Flag:patient&_revinclude=CareTeam:patient"
    "&_revinclude=RelatedPerson:patient&_revinclude=Consent:patient&_include=Patient:general-practitioner"
)


def _start_caf_with_team(engine: Engine, world: World) -> None:
    """The world's signalled CAF started (with the young person's consent) and a TAC formed."""
    sam = actor(practitioner_id=world.senco, subject="sam")
    with unit_of_work(engine) as s:
        consent = service.record_consent(
            s,
            actor=sam,
            child_id=world.child,
            data=ConsentCreate(
                scope="caf", given_by_kind="young_person", given_by_name="Olivia", young_person_competent=True
            ),
        )
        service.start_caf(s, actor=sam, caf_id=world.caf, data=CafStart(consent_id=consent.id), now=utcnow())
        service.update_tac(
            s,
            actor=sam,
            caf_id=world.caf,
            data=TacUpdate(add_members=[{"practitioner_id": world.hv, "role": "health visitor"}]),
            now=utcnow(),
        )


def _picture(api: TestClient, h: dict[str, str], world: World) -> dict[str, dict[str, Any]]:
    r = api.get(f"/fhir/Patient?identifier={S.NHS_NUMBER}|{world.nhs}&{EVERYTHING}", headers=h)
    assert r.status_code == 200, r.text
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in r.json()["entry"]
    }


def _updated(resource: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(resource["meta"]["lastUpdated"])


def test_every_resource_of_a_childs_picture_carries_last_updated_and_its_read_last_modified(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    _start_caf_with_team(engine, world)
    h = system_headers(state, engine, scopes=SCOPES)
    shown = _picture(api, h, world)
    kinds = {key.split("/")[0] for key in shown}
    assert kinds >= {
        "Patient",
        "EpisodeOfCare",
        "Flag",
        "CareTeam",
        "Consent",
        "RelatedPerson",
        "Organization",
    }
    extra = [f"/fhir/Practitioner/{world.hv}", f"/fhir/HealthcareService/{world.hv_service}"]
    extra += [f"/fhir/Location/{world.locality}", f"/fhir/PractitionerRole/{world.hv}"]
    for path in [f"/fhir/{key}" for key in shown] + extra:
        r = api.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert "lastUpdated" in body.get("meta", {}), path
        # Last-Modified (an HTTP date, to the second) is meta.lastUpdated
        modified = parsedate_to_datetime(r.headers["last-modified"])
        assert modified == _updated(body).replace(microsecond=0), path
        assert utcnow() - timedelta(minutes=5) < _updated(body) <= utcnow(), path


def test_a_change_moves_the_resources_it_changes_and_no_other(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    _start_caf_with_team(engine, world)
    h = system_headers(state, engine, scopes=SCOPES)
    before = _picture(api, h, world)
    episode, caf_flag, team = (
        f"EpisodeOfCare/{world.involvement}",
        f"Flag/caf-{world.caf.hex}",
        next(k for k in before if k.startswith("CareTeam/")),
    )
    hannah = actor(practitioner_id=world.hv, subject="hannah")
    sam = actor(practitioner_id=world.senco, subject="sam")
    with unit_of_work(engine) as s:
        service.update_involvement(
            s,
            actor=hannah,
            involvement_id=world.involvement,
            data=InvolvementUpdate(practitioner_id=world.hv, role="health visitor", level_of_need=2),
        )
    after = _picture(api, h, world)
    assert _updated(after[episode]) > _updated(before[episode])
    assert after[episode]["meta"]["versionId"] == str(int(before[episode]["meta"]["versionId"]) + 1)
    for key in (caf_flag, team, f"Patient/{world.child}"):
        assert after[key]["meta"] == before[key]["meta"], key

    # a confirmation changes what the episode shows (last confirmed) and its time, not its version
    with unit_of_work(engine) as s:
        service.confirm_involvement(s, actor=hannah, involvement_id=world.involvement)
    confirmed = _picture(api, h, world)
    assert _updated(confirmed[episode]) > _updated(after[episode])
    assert confirmed[episode]["meta"]["versionId"] == after[episode]["meta"]["versionId"]

    # a hand-over of the Lead Professional moves the CAF's flags and the team, not the episode
    with unit_of_work(engine) as s:
        service.hand_over_lead(
            s,
            actor=sam,
            caf_id=world.caf,
            data=HandOver(to_practitioner_id=world.hv, reason="health visitor knows the family"),
            now=utcnow(),
        )
    handed = _picture(api, h, world)
    lead_flag = f"Flag/lp-{world.child.hex}"
    for key in (caf_flag, lead_flag, team):
        assert _updated(handed[key]) > _updated(confirmed[key]), key
    assert handed[episode]["meta"] == confirmed[episode]["meta"]


def test_a_withdrawn_consent_says_when(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    _start_caf_with_team(engine, world)
    h = system_headers(state, engine, scopes=SCOPES)
    consents = [k for k in _picture(api, h, world) if k.startswith("Consent/")]
    assert consents
    first = api.get(f"/fhir/{consents[0]}", headers=h).json()
    with unit_of_work(engine) as s:
        service.withdraw_consent(
            s,
            actor=actor(practitioner_id=world.senco, subject="sam"),
            consent_id=uuid.UUID(first["id"]),
            data=ConsentWithdraw(reason="the young person withdrew it"),
        )
    again = api.get(f"/fhir/{consents[0]}", headers=h).json()
    assert again["status"] == "inactive"
    assert _updated(again) > _updated(first)
    assert again["provision"]["period"]["end"] == again["meta"]["lastUpdated"]


def test_a_merge_moves_the_time_of_each_row_it_moves(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """A sync client polling `_since` must see an episode whose patient a merge changed."""
    admin = actor(Role.DIRECTORY_ADMIN)
    with unit_of_work(engine) as s:
        duplicate = make_child(s, names=[{"given": "Olivia", "family": "Smith"}])
        inv = service.record_involvement(
            s,
            actor=admin,
            child_id=duplicate,
            data=InvolvementCreate(
                service_id=world.school_service,
                role="SENCO",
                level_of_need=2,
                start_date=date.today() - timedelta(days=3),
            ),
        )
    h = system_headers(state, engine, scopes=SCOPES)
    before = api.get(f"/fhir/EpisodeOfCare/{inv.id}", headers=h).json()
    assert before["patient"]["reference"] == f"Patient/{duplicate}"
    with unit_of_work(engine) as s:
        service.merge_children(
            s,
            actor=actor(Role.DATA_MANAGER),
            duplicate_id=duplicate,
            into_id=world.child,
            reason="same child",
        )
    after = api.get(f"/fhir/EpisodeOfCare/{inv.id}", headers=h).json()
    assert after["patient"]["reference"] == f"Patient/{world.child}"
    assert _updated(after) > _updated(before)


def test_last_updated_narrows_the_searches_of_childrens_resources(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine, scopes=SCOPES)
    episode = api.get(f"/fhir/EpisodeOfCare/{world.involvement}", headers=h).json()
    patient = api.get(f"/fhir/Patient/{world.child}", headers=h).json()
    mark = max(_updated(episode), _updated(patient)).isoformat()
    by_nhs = {"identifier": f"{S.NHS_NUMBER}|{world.nhs}"}

    def patients(**extra: str) -> int:
        r = api.get("/fhir/Patient", headers=h, params={**by_nhs, **extra})
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    def episodes(**extra: str) -> list[str]:
        r = api.get("/fhir/EpisodeOfCare", headers=h, params={"patient": f"Patient/{world.child}", **extra})
        assert r.status_code == 200, r.text
        return [e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]

    assert patients(_lastUpdated=f"le{mark}") == 1 and patients(_lastUpdated=f"gt{mark}") == 0
    assert str(world.involvement) in episodes(_lastUpdated=f"le{mark}")
    assert episodes(_lastUpdated=f"gt{mark}") == []
    # a change to the episode: it alone is newer than the mark; the record did not change
    with unit_of_work(engine) as s:
        service.confirm_involvement(
            s, actor=actor(practitioner_id=world.hv, subject="hannah"), involvement_id=world.involvement
        )
    assert episodes(_lastUpdated=f"gt{mark}") == [str(world.involvement)]
    assert patients(_lastUpdated=f"gt{mark}") == 0
    # one occurrence's values are OR-ed, occurrences AND-ed; a date covers its day
    today = utcnow().date().isoformat()
    assert episodes(_lastUpdated=f"lt2000-01-01,gt{mark}") == [str(world.involvement)]
    assert patients(_lastUpdated=today) == 1
    # it only narrows: alone it is not enough to search children by; a bad value is 400 naming it
    r = api.get("/fhir/Patient", headers=h, params={"_lastUpdated": f"ge{today}"})
    assert r.status_code == 400 and r.json()["issue"][0]["code"] == "too-costly", r.text
    for path, params in (
        ("/fhir/Patient", {**by_nhs, "_lastUpdated": "yesterday"}),
        ("/fhir/EpisodeOfCare", {"patient": f"Patient/{world.child}", "_lastUpdated": "gt2026-13-01"}),
        ("/fhir/Flag", {"_lastUpdated": "2026-12-05T10:00"}),
    ):
        r = api.get(path, headers=h, params=params)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["issue"][0]["expression"] == ["_lastUpdated"], (path, r.text)


def test_a_time_in_memory_and_a_column_are_tested_alike(engine: Engine) -> None:
    """`_lastUpdated` on resources built in memory (holds) answers as on a column (condition)."""
    import sqlalchemy as sa

    from directory.models import UTCDateTime
    from interop.sync import parse_last_updated

    table = sa.Table("t_times", sa.MetaData(), sa.Column("at", UTCDateTime()))
    base = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
    times = [base + timedelta(milliseconds=ms) for ms in (-1, 0, 1, 999, 1000, 1001)]
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"at": t} for t in times])
        for prefix in ("eq", "ne", "lt", "le", "gt", "ge"):
            for value in ("2026-12-05T10:00:00Z", "2026-12-05", "2026-12-05T10:00:00.000+00:00"):
                test = parse_last_updated(prefix + value)
                in_sql = {r[0] for r in conn.execute(sa.select(table.c.at).where(test.condition(table.c.at)))}
                assert in_sql == {t for t in times if test.holds(t)}, (prefix, value)
        table.drop(conn)
