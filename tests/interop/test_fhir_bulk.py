"""FHIR Bulk Data export (issue #19): kick-off, poll, download, delete; _since and _type; what goes out
is what a read shows (a shielded child, a sealed one); only the client that started it sees it; who
may export; one running export per client; every child included is in its access log."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from childindex.settings import Settings
from directory import audit, service
from directory.db import unit_of_work
from directory.models import CafClose, Child, InvolvementCreate, Purpose, Role, utcnow
from interop.bulk.worker import ExportRun
from tests.fixtures.builders import actor, make_child
from tests.interop.conftest import ISSUER, TRUST_SCOPES, World, system_headers
from tests.interop.test_fhir_api import outcome, valid
from tests.interop.test_onboarding import cli_env  # noqa: F401  (a fixture)

EXPORTER = (*TRUST_SCOPES, "system/Group.rs", "directory.export")
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def prod_settings(tmp_path: Path) -> Settings:
    """Production settings, with the export's files in the test's own folder and small batches."""
    return Settings(
        environment="production",
        database_url="sqlite://",
        issuer=ISSUER,
        secret_key="test-secret-key",
        search_rate_per_minute=10_000,
        trawl_distinct_children=10_000,
        fhir_bulk_dir=str(tmp_path / "bulk"),
        fhir_bulk_batch_size=2,
    )


def _exporter(
    state: AuthState, engine: Engine, subject: str = "trust-bulk", scopes: tuple[str, ...] = EXPORTER
) -> dict[str, str]:
    return system_headers(state, engine, subject=subject, scopes=scopes)


def _kick(api: TestClient, h: dict[str, str], path: str = "/fhir/$export", **params: str) -> str:
    r = api.get(path, headers={**h, **ASYNC}, params=params)
    assert r.status_code == 202, r.text
    return str(r.headers["content-location"]).removeprefix("http://testserver")


def _wait(api: TestClient, h: dict[str, str], status_url: str) -> Any:
    for _ in range(400):
        r = api.get(status_url, headers=h)
        if r.status_code != 202:
            return r
        assert "children" in r.headers["x-progress"] and int(r.headers["retry-after"]) > 0
        time.sleep(0.05)
    raise AssertionError("the export did not finish")


def _files(api: TestClient, h: dict[str, str], manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in manifest["output"]:
        r = api.get(
            o["url"].removeprefix("http://testserver"), headers={**h, "Accept": "application/fhir+ndjson"}
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(x) for x in r.text.splitlines()]
        assert len(lines) == o["count"] and all(x["resourceType"] == o["type"] for x in lines)
        out[o["type"]] = [valid(x) for x in lines]  # each line an R4(B) resource, strictly
    return out


def _export(
    api: TestClient, h: dict[str, str], path: str = "/fhir/$export", **params: str
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    r = _wait(api, h, _kick(api, h, path, **params))
    assert r.status_code == 200, r.text
    manifest = r.json()
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    assert manifest["request"].startswith("http://testserver/fhir/") and manifest["transactionTime"].endswith(
        "Z"
    )
    return manifest, _files(api, h, manifest)


def test_kick_off_poll_download_delete_and_a_read_shows_the_same(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _exporter(state, engine)
    status_url = _kick(api, h)
    r = _wait(api, h, status_url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    files = _files(api, h, r.json())
    patients = {p["id"]: p for p in files["Patient"]}
    assert set(patients) == {str(world.child), str(world.shielded_child)}
    # exactly what a read of each shows (the shielded child: official name only, no address)
    for pid, exported in patients.items():
        read = api.get(f"/fhir/Patient/{pid}", headers=h).json()
        assert exported == read
    assert "address" not in patients[str(world.shielded_child)]
    episodes = {e["id"] for e in files["EpisodeOfCare"]}
    assert str(world.involvement) in episodes
    assert str(world.sensitive_involvement) not in episodes  # as the read leaves it out
    search = api.get(f"/fhir/EpisodeOfCare?patient=Patient/{world.child}", headers=h).json()
    assert {e["resource"]["id"] for e in search.get("entry", [])} == episodes
    # DELETE removes the files; the status and the files are then gone
    url = r.json()["output"][0]["url"].removeprefix("http://testserver")
    assert api.delete(status_url, headers=h).status_code == 202
    outcome(api.get(status_url, headers=h), 404, "not-found")
    outcome(api.get(url, headers=h), 404, "not-found")
    assert not any((Path(api.app.state.bulk.cfg.directory)).glob("*/*.ndjson"))  # type: ignore[attr-defined]


def test_since_and_type(api: TestClient, engine: Engine, state: AuthState, world: World) -> None:
    h = _exporter(state, engine)
    mark = utcnow()
    with unit_of_work(engine) as s:
        new = make_child(s, names=[{"given": "Ada", "family": "Lane"}])
    manifest, files = _export(api, h, _since=mark.isoformat(), _type="Patient")
    assert [o["type"] for o in manifest["output"]] == ["Patient"]
    assert [p["id"] for p in files["Patient"]] == [str(new)]
    _, files = _export(api, h, "/fhir/Patient/$export", _type="Patient,EpisodeOfCare")
    assert set(files) == {"Patient", "EpisodeOfCare"} and len(files["Patient"]) == 3
    # an involvement recorded since brings its child (and only it) into the next export
    mark = utcnow()
    with unit_of_work(engine) as s:
        inv = service.record_involvement(
            s,
            actor=actor(Role.DIRECTORY_ADMIN),
            child_id=world.child,
            data=InvolvementCreate(
                service_id=world.school_nursing,
                role="health visitor",
                level_of_need=1,
                start_date=date.today(),
            ),
        )
    _, files = _export(api, h, _since=mark.isoformat())
    assert [p["id"] for p in files["Patient"]] == [str(world.child)]
    assert {e["id"] for e in files["EpisodeOfCare"]} == {str(world.involvement), str(inv.id)}
    # a shielded child's involvement changed: the client sees none of its involvements, so the child
    # does not come with the change (its arrival would tell of it)
    mark = utcnow()
    with unit_of_work(engine) as s:
        service.record_involvement(
            s,
            actor=actor(Role.DIRECTORY_ADMIN),
            child_id=world.shielded_child,
            data=InvolvementCreate(
                service_id=world.hv_service, role="health visitor", level_of_need=1, start_date=date.today()
            ),
        )
    _, files = _export(api, h, _since=mark.isoformat())
    assert files == {}
    # the CAF withdrawn since (the record itself unchanged): the child comes with its Flag
    mark = utcnow()
    with unit_of_work(engine) as s:
        service.close_caf(
            s,
            actor=actor(practitioner_id=world.senco, subject="sam"),
            caf_id=world.caf,
            data=CafClose(reason="the family moved on"),
            now=utcnow(),
        )
    _, files = _export(api, h, _since=mark.isoformat())
    assert [p["id"] for p in files["Patient"]] == [str(world.child)]
    assert f"caf-{world.caf.hex}" in {f["id"] for f in files["Flag"]}
    later = utcnow().isoformat()
    r = _wait(api, h, _kick(api, h, _since=later))
    assert r.json()["output"] == []  # nothing changed since: no files


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"_outputFormat": "application/fhir+json"}, "_outputFormat"),
        ({"_since": "yesterday"}, "_since"),
        ({"_type": "Patient,Observation"}, "_type"),
        ({"_type": "Practitioner"}, "_type"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    api: TestClient, engine: Engine, state: AuthState, params: dict[str, str], where: str
) -> None:
    h = _exporter(state, engine)
    r = api.get("/fhir/$export", headers={**h, **ASYNC}, params=params)
    outcome(r, 400, r.json()["issue"][0]["code"])
    assert r.json()["issue"][0]["expression"] == [where]


def test_prefer_respond_async_is_required_and_formats_accepted(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _exporter(state, engine)
    assert "respond-async" in outcome(api.get("/fhir/$export", headers=h), 400, "invalid")
    # NDJSON is what the files are; nothing else answers in it
    ndjson = {**h, "Accept": "application/fhir+ndjson"}
    outcome(api.get("/fhir/$export", headers={**ndjson, **ASYNC}), 406, "not-supported")
    outcome(api.get(f"/fhir/Patient/{world.child}", headers=ndjson), 406, "not-supported")
    for fmt in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        r = _wait(api, h, _kick(api, h, _outputFormat=fmt))
        assert r.status_code == 200


def test_a_type_the_token_cannot_read_is_400_naming_it(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _exporter(state, engine, scopes=("system/Patient.rs", "directory.export"))
    text = outcome(
        api.get("/fhir/$export", headers={**h, **ASYNC}, params={"_type": "Patient,Consent"}),
        400,
        "forbidden",
    )
    assert "Consent" in text and "Patient," not in text
    _, files = _export(api, h)  # without _type: only what it may read
    assert set(files) == {"Patient"}


def test_a_sealed_child_is_left_out(api: TestClient, engine: Engine, state: AuthState, world: World) -> None:
    with unit_of_work(engine) as s:
        s.execute(sa.update(Child).where(Child.id == world.child).values(status="sealed"))  # type: ignore[arg-type]
    h = _exporter(state, engine)
    _, files = _export(api, h)
    assert [p["id"] for p in files["Patient"]] == [str(world.shielded_child)]
    assert all(e["patient"]["reference"] != f"Patient/{world.child}" for e in files.get("EpisodeOfCare", []))


def test_another_client_gets_404_and_no_export_scope_403(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _exporter(state, engine)
    status_url = _kick(api, h)
    manifest = _wait(api, h, status_url).json()
    other = _exporter(state, engine, subject="other-trust")
    unknown = f"/fhir/$export-status/{uuid.uuid4().hex}"
    assert outcome(api.get(status_url, headers=other), 404, "not-found").replace(
        status_url.rsplit("/", 1)[1], "X"
    ) == outcome(api.get(unknown, headers=other), 404, "not-found").replace(unknown.rsplit("/", 1)[1], "X")
    outcome(
        api.get(manifest["output"][0]["url"].removeprefix("http://testserver"), headers=other),
        404,
        "not-found",
    )
    outcome(api.delete(status_url, headers=other), 404, "not-found")
    assert api.get(status_url, headers=h).status_code == 200  # still there for its owner
    plain = system_headers(state, engine, subject="no-export")  # every read scope, no directory.export
    r = api.get("/fhir/$export", headers={**plain, **ASYNC})
    assert r.status_code == 403 and "directory.export" in r.text
    assert api.get(status_url, headers=plain).status_code == 403
    person = system_headers(
        state, engine, subject="pat", role=Role.PRACTITIONER, scopes=("user/Patient.rs", "directory.export")
    )
    assert api.get("/fhir/$export", headers={**person, **ASYNC}).status_code == 403


def test_concurrent_kick_offs_run_one_export(
    api: TestClient, engine: Engine, state: AuthState, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _exporter(state, engine)
    held: list[ExportRun] = []
    monkeypatch.setattr(ExportRun, "start", lambda self: held.append(self))  # the worker waits

    def kick(_: int) -> Any:
        return api.get("/fhir/$export", headers={**h, **ASYNC})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(kick, range(8)))
    assert sorted(r.status_code for r in answers) == [202] + [429] * 7
    assert all(int(r.headers["retry-after"]) > 0 for r in answers if r.status_code == 429)
    with unit_of_work(engine) as s:
        rows = s.execute(sa.text("SELECT count(*) FROM bulk_export WHERE client_id = 'trust-bulk'")).scalar()
    assert rows == 1 and len(held) == 1
    # another client is not held up by this one
    assert api.get("/fhir/$export", headers={**_exporter(state, engine, "other"), **ASYNC}).status_code == 202
    held[0].run()  # the worker runs; then the client may start another
    started = [r for r in answers if r.status_code == 202][0]
    assert (
        _wait(api, h, started.headers["content-location"].removeprefix("http://testserver")).status_code
        == 200
    )
    assert api.get("/fhir/$export", headers={**h, **ASYNC}).status_code == 202
    for run in held[1:]:
        run.run()


def test_an_interrupted_export_is_failed_not_in_progress_for_ever(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _exporter(state, engine)
    eid = uuid.uuid4()
    with unit_of_work(engine) as s:  # as a process that died mid-export leaves it
        s.execute(
            sa.text(
                "INSERT INTO bulk_export (id, client_id, running_client, actor, scopes, level, types, "
                "request_url, status, transaction_time, heartbeat_at, children_done, children_total, "
                "output, created_at) VALUES (:id, 'trust-bulk', 'trust-bulk', '{}', '', 'system', "
                "'Patient', 'x', 'in-progress', :old, :old, 0, 10, '[]', :old)"
            ),
            {
                "id": eid.hex if engine.dialect.name == "sqlite" else eid,
                "old": "2026-01-01 00:00:00.000000"
                if engine.dialect.name == "sqlite"
                else "2026-01-01T00:00:00+00:00",
            },
        )
    r = api.get(f"/fhir/$export-status/{eid.hex}", headers=h)
    assert r.status_code == 500 and "start it again" in r.text
    assert _wait(api, h, _kick(api, h)).status_code == 200  # and the client may start a new one at once


def test_group_is_a_locality_and_exports_its_children(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _exporter(state, engine)
    groups = valid(api.get("/fhir/Group", headers=h).json())
    assert str(world.locality) in [e["resource"]["id"] for e in groups["entry"]]
    g = valid(api.get(f"/fhir/Group/{world.locality}", headers=h).json())
    assert g["type"] == "person" and g["actual"] is True
    with unit_of_work(engine) as s:
        s.execute(sa.update(Child).where(Child.id == world.child).values(locality_id=world.locality))  # type: ignore[arg-type]
        s.execute(sa.update(Child).where(Child.id == world.shielded_child).values(locality_id=None))  # type: ignore[arg-type]
    _, files = _export(api, h, f"/fhir/Group/{world.locality}/$export", _type="Patient")
    assert [p["id"] for p in files["Patient"]] == [str(world.child)]
    outcome(api.get(f"/fhir/Group/{uuid.uuid4()}/$export", headers={**h, **ASYNC}), 404, "not-found")


def test_the_access_log_finds_every_export_that_included_a_child(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _exporter(state, engine)
    _export(api, h, _type="Patient")
    with unit_of_work(engine) as s:
        seen = audit.who_looked(s, child_id=world.shielded_child)
        reads = [e for e in seen if e.action == "bulk.export.read"]
        assert len(reads) == 1 and reads[0].actor_subject == "trust-bulk"
        assert reads[0].target_type == "bulk-export"
        # the access log an auditor reads shows it too
        log = service.access_log(
            s, actor=actor(Role.AUDITOR, purpose=Purpose.AUDIT), child_id=world.shielded_child
        )
        assert "bulk.export.read" in [e.action for e in log]
        actions = [e.action for e in s.execute(sa.text("SELECT action FROM audit_event")).all()]
    assert "bulk.export" in str(actions) and "bulk.export.complete" in str(actions)
    # no names or other personal data in any of the export's events
    with engine.connect() as c:
        details = " ".join(
            str(x)
            for x in c.execute(sa.text("SELECT detail FROM audit_event WHERE action LIKE 'bulk%'")).scalars()
        )
    assert "Olivia" not in details and "Amira" not in details


@pytest.mark.usefixtures("cli_env")
def test_a_system_registered_with_the_export_scope_exports_once_a_second_admin_approves(
    api: TestClient, engine: Engine, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from joserfc.jwk import RSAKey

    from childindex.cli import app as cli
    from tests.interop.test_onboarding import Trust, _register, runner

    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    grant_id = _register(tmp_path, key, "demoshire-bulk", ["directory.export", "system/Patient.rs"])
    trust = Trust(api, key, "demoshire-bulk")
    status, body = trust.token("directory.export system/Patient.rs")
    assert status == 400 and "second administrator" in body["error_description"], body
    monkeypatch.setattr("getpass.getuser", lambda: "bob")
    said = runner.invoke(cli, ["grants", "approve", grant_id, "--reason", "checked the DPIA"])
    assert said.exit_code == 0, said.output
    h = trust.headers("directory.export system/Patient.rs")
    _, files = _export(api, h)
    assert set(files) == {"Patient"} and len(files["Patient"]) == 2
    # the same client without directory.export in its token may not
    plain = trust.headers("system/Patient.rs")
    assert api.get("/fhir/$export", headers={**plain, **ASYNC}).status_code == 403


def test_an_export_that_breaks_fails_with_an_outcome_and_leaves_no_files(
    api: TestClient, engine: Engine, state: AuthState, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interop import picture

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(picture, "for_child", broken)
    h = _exporter(state, engine)
    r = _wait(api, h, _kick(api, h))
    assert r.status_code == 500 and "start it again" in outcome(r, 500, "exception")
    assert "disk on fire" not in r.text  # nothing of the inside is told
    assert not any(Path(api.app.state.bulk.cfg.directory).glob("*/*"))  # type: ignore[attr-defined]
    assert _wait(api, h, _kick(api, h)).status_code == 500  # the client's slot is free again
