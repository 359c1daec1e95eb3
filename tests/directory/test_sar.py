"""Subject access: everything held about a child and every access, as a FHIR Bundle and a document,
through /api/v1 and `childindex sar export`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from childindex.cli import app as cli
from tests.directory.test_api import new_child, who
from tests.directory.test_merge import ADMIN, DATA, _two_records
from tests.fixtures.builders import next_nhs_number


def _accesses(engine: Engine, *child_ids: str) -> set[str]:
    """The seq of every audit event that concerned these children."""
    ids = [uuid.UUID(c) for c in child_ids]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sa.text("seq"))
            .select_from(sa.table("audit_subject"))
            .where(sa.column("child_id").in_([i.hex if engine.dialect.name == "sqlite" else i for i in ids]))
        ).scalars()
        return {str(r) for r in rows}


def _world(client: TestClient, engine: Engine) -> tuple[str, str, str, str]:
    """A kept record with a merged duplicate, and another child with its own accesses."""
    keep, dup, nhs, _ = _two_records(client, engine)
    other_nhs = next_nhs_number()
    other = new_child(
        client,
        names=[{"given": "Zebedee", "family": "Quartermaine"}],
        identifiers=[{"system": "nhs", "value": other_nhs}],
        address={"line1": "77 Elsewhere Close", "town": "Oxford", "postcode": "OX4 7QQ"},
        related_people=[{"name": "Xanthe Quartermaine", "relationship": "mother"}],
    )
    client.get(f"/api/v1/children/{other}", headers=who(subject="stranger"))
    client.get(f"/api/v1/children/{keep}", headers=who(subject="reader-of-keep"))
    r = client.post(
        f"/api/v1/children/{keep}/merge", headers=DATA, json={"duplicate_id": dup, "reason": "same"}
    )
    assert r.status_code == 200, r.text
    return keep, dup, other, other_nhs


def test_the_bundle_and_document_hold_everything_and_every_access(client: TestClient, engine: Engine) -> None:
    keep, dup, other, other_nhs = _world(client, engine)
    expected = _accesses(engine, keep, dup)
    r = client.get(f"/api/v1/children/{keep}/subject-access", headers=DATA)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    for kind in ("Patient", "RelatedPerson", "EpisodeOfCare", "Flag", "CareTeam", "Consent", "AuditEvent"):
        assert kind in kinds, kind
    patient = bundle["entry"][0]["resource"]
    assert patient["id"] == keep and {n["family"] for n in patient["name"]} >= {"Khan", "Jones"}
    assert len(patient["address"]) == 2  # the current address and the duplicate's, now history
    seen = {e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "AuditEvent"}
    assert expected <= seen and len(expected) > 5  # every access, the duplicate's included
    who_looked = {
        e["resource"]["agent"][0]["who"]["display"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "AuditEvent"
    }
    assert {"looker", "reader-of-keep"} <= who_looked and "stranger" not in who_looked
    flags = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Flag"]
    assert sum(f["id"].startswith("lp-") for f in flags) >= 4  # each Lead Professional spell of both CAFs
    assert sum(f["id"].startswith("caf-") for f in flags) == 2
    text = r.text
    for about_other in (other, other_nhs, "Zebedee", "Quartermaine", "Elsewhere", "OX4 7QQ"):
        assert about_other not in text, about_other

    html = client.get(f"/api/v1/children/{keep}/subject-access?format=html", headers=ADMIN)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    page = html.text
    assert "Demoshire County Council" in page and "Refuge Lane" in page and "fleeing violence" in page
    assert "looker" in page and "reader-of-keep" in page and "Yusuf Youth" in page and "Sara Khan" in page
    for about_other in (other, other_nhs, "Zebedee", "Quartermaine", "Elsewhere", "stranger"):
        assert about_other not in page, about_other
    # The duplicate's id leads to the same export.
    again = client.get(f"/api/v1/children/{dup}/subject-access", headers=DATA).json()
    assert again["entry"][0]["resource"]["id"] == keep


def test_the_export_is_audited_and_only_for_admins_and_data_managers(
    client: TestClient, engine: Engine
) -> None:
    child = new_child(client)
    for role in (
        "practitioner",
        "designated_practitioner",
        "auditor",
        "local_delivery_team",
        "child_protection",
    ):
        r = client.get(f"/api/v1/children/{child}/subject-access", headers=who(role))
        assert r.status_code == 403, role
    assert client.get(f"/api/v1/children/{uuid.uuid4()}/subject-access", headers=DATA).status_code == 404
    assert client.get(f"/api/v1/children/{child}/subject-access?format=pdf", headers=DATA).status_code == 422
    assert client.get(f"/api/v1/children/{child}/subject-access", headers=DATA).status_code == 200
    with engine.connect() as conn:
        events = conn.execute(
            sa.text(
                "SELECT actor_subject, target_id, detail FROM audit_event "
                "WHERE action = 'child.subject-access.export'"
            )
        ).all()
    assert [(e[0], uuid.UUID(e[1])) for e in events] == [("dm", uuid.UUID(child))]
    assert "Olivia" not in (events[0][2] or "") and "Amelia" not in (events[0][2] or "")


def test_the_command_writes_the_same_export(
    client: TestClient, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep, dup, other, _ = _world(client, engine)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(cli, ["sar", "export", keep, "--out", str(tmp_path / "sar")])
    assert result.exit_code == 0, result.output
    bundle = json.loads((tmp_path / "sar" / f"subject-access-{keep}.json").read_text())
    html = (tmp_path / "sar" / f"subject-access-{keep}.html").read_text()
    assert bundle["type"] == "collection" and bundle["entry"][0]["resource"]["id"] == keep
    exported = {e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "AuditEvent"}
    assert len(_accesses(engine, keep, dup) - exported) == 1  # all but the export's own event
    assert "Demoshire County Council" in html and other not in html
    bad = CliRunner().invoke(cli, ["sar", "export", str(uuid.uuid4()), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "No child record" in bad.output
