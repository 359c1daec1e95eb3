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
