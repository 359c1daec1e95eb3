"""Purpose of use travels from the header into the Actor and the audit event."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory.db import unit_of_work
from directory.models import Role
from tests.fixtures.auth_builders import bearer, make_grant, token_for
from tests.fixtures.builders import make_child


def test_purpose_lands_in_the_audit_event(api: TestClient, engine: Engine, state: AuthState) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
        child = make_child(s)
    token = token_for(state, "pat", role=Role.PRACTITIONER)
    r = api.get(f"/api/v1/children/{child}", headers=bearer(token, purpose="safeguarding-concern"))
    assert r.status_code == 200, r.text
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT actor_subject, actor_role, client_id, purpose FROM audit_event "
                "WHERE action = 'child.read'"
            )
        ).one()
    assert tuple(row) == ("pat", "practitioner", "test-app", "safeguarding-concern")


def test_reads_without_or_with_an_unknown_purpose_are_refused(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
        child = make_child(s)
    token = token_for(state, "pat")
    missing = api.get(f"/api/v1/children/{child}", headers=bearer(token, purpose=None))
    assert missing.status_code == 422 and "purpose of use" in missing.json()["detail"]
    unknown = api.get(f"/api/v1/children/{child}", headers=bearer(token, purpose="curiosity"))
    assert unknown.status_code == 400 and "considering-caf" in unknown.json()["detail"]


def test_a_purpose_the_role_may_not_give_is_refused_naming_those_it_may(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
        make_grant(s, "ada", role=Role.DIRECTORY_ADMIN)
        make_grant(s, "aud", role=Role.AUDITOR)
        child = make_child(s)
    pat = token_for(state, "pat")
    claimed = api.get(f"/api/v1/children/{child}", headers=bearer(pat, purpose="audit"))
    assert claimed.status_code == 403, claimed.text
    problem = claimed.json()
    assert problem["type"].endswith("/purpose-not-allowed")
    assert "practitioner" in problem["detail"] and "'audit'" in problem["detail"]
    for allowed in ("considering-caf", "direct-care", "caf-coordination", "safeguarding-concern"):
        assert allowed in problem["detail"]
    assert "administration" not in problem["detail"]
    # A practitioner may not say they administer the directory either; their own purposes work.
    refused = api.get(f"/api/v1/children/{child}", headers=bearer(pat, purpose="administration"))
    assert refused.status_code == 403
    assert api.get(f"/api/v1/children/{child}", headers=bearer(pat, purpose="direct-care")).status_code == 200
    # An administrator administers (not "considering a CAF"); an auditor audits.
    ada = token_for(state, "ada", role=Role.DIRECTORY_ADMIN)
    assert (
        api.get(f"/api/v1/children/{child}", headers=bearer(ada, purpose="administration")).status_code == 200
    )
    assert api.get(f"/api/v1/children/{child}", headers=bearer(ada)).status_code == 403
    aud = token_for(state, "aud", role=Role.AUDITOR)
    log = api.get(f"/api/v1/children/{child}/access-log", headers=bearer(aud, purpose="audit"))
    assert log.status_code == 200, log.text
    wrong = api.get(f"/api/v1/children/{child}/access-log", headers=bearer(aud, purpose="direct-care"))
    assert wrong.status_code == 403 and "audit" in wrong.json()["detail"]
    # Each refusal is audited, with the purpose claimed.
    with engine.connect() as conn:
        refusals = conn.execute(
            sa.text("SELECT actor_subject, purpose FROM audit_event WHERE outcome = 'denied' ORDER BY seq")
        ).all()
    assert [tuple(r) for r in refusals] == [
        ("pat", "audit"),
        ("pat", "administration"),
        ("ada", "considering-caf"),
        ("aud", "direct-care"),
    ]


def test_the_development_header_is_held_to_the_same_purposes(client: TestClient) -> None:
    headers = {"X-Dev-Actor": "subject=pat; role=practitioner", "X-Purpose-Of-Use": "audit"}
    r = client.get("/api/v1/localities", headers=headers)
    assert r.status_code == 403 and "considering-caf" in r.json()["detail"]
