"""The reason given for lifting a shield is kept beside the audit chain (never in it) and shown to
auditors on the audit pages."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import service
from directory.models import Purpose, Role, ShieldClear
from tests.fixtures.builders import actor
from tests.web.world import World, sign_in


def test_auditors_see_the_reason_a_shield_was_lifted(
    browser: TestClient, engine: Engine, world: World
) -> None:
    noah = world.children["noah"]
    with Session(engine) as s:
        service.clear_shield(
            s,
            actor=actor(Role.DIRECTORY_ADMIN, subject="ops", purpose=Purpose.ADMINISTRATION),
            child_id=noah,
            data=ShieldClear(reason="the family is rehoused safely"),
        )
        s.commit()
    sign_in(browser, world, "aud")
    page = browser.get(f"/audit?child={noah}").text
    assert "Lifted the shield" in page and "Reason given" in page and "the family is rehoused safely" in page
    other = browser.get(f"/audit?child={world.children['olivia']}").text
    assert "Reason given" not in other
