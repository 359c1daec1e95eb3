"""The inbox pages as practitioners see them (production mode, signed in through the pages, SQLite and
PostgreSQL): a notice the notifier wrote, marking it read, nobody else's (404), the one-click "still
involved?" confirm, and the choice of email or the inbox only."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex import people_notify
from directory import service
from directory.db import unit_of_work
from directory.models import CafSignal, Involvement, Role, utcnow
from tests.fixtures.builders import actor
from tests.notices.scene import notices_of
from tests.web.world import World, csrf_of, sign_in


def _pat_signals(engine: Engine, world: World) -> None:
    people_notify.start_cursor(engine)
    pat = actor(Role.PRACTITIONER, subject="pat", practitioner_id=world.practitioners["pat"])
    with unit_of_work(engine) as s:
        service.signal_caf(
            s,
            actor=pat,
            child_id=world.children["olivia"],
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
    people_notify.fan_out(engine, email=False)


def test_a_notice_in_the_inbox_is_read_and_marked_by_its_recipient_only(
    browser: TestClient, world: World, engine: Engine
) -> None:
    _pat_signals(engine, world)
    (notice,) = notices_of(engine, world.practitioners["hana"], "caf.signal")
    sign_in(browser, world, "hana")
    assert "1 new notice" in browser.get("/search").text
    page = browser.get("/inbox")
    assert page.status_code == 200, page.text
    assert "Pat Okafor (Test Org) signalled a CAF for a child you work with." in page.text
    assert f'href="/children/{world.children["olivia"]}"' in page.text
    one = browser.get(f"/inbox/{notice.id}")
    assert one.status_code == 200 and "Pat Okafor (Test Org) signalled" in one.text
    browser.post(f"/inbox/{notice.id}/read", data={"csrf_token": csrf_of(page.text)})
    assert "new notice" not in browser.get("/search").text
    assert "Show unread" in browser.get("/inbox").text
    assert "You have no unread notices" in browser.get("/inbox?unread=true").text

    browser.get("/signout")
    browser.cookies.clear()
    sign_in(browser, world, "pat")
    assert browser.get(f"/inbox/{notice.id}").status_code == 404
    mine = browser.get("/inbox")
    gone = browser.post(f"/inbox/{notice.id}/read", data={"csrf_token": csrf_of(mine.text)})
    assert gone.status_code == 404
    assert "Pat Okafor (Test Org) signalled" not in mine.text  # the actor is not told of their own act


def test_still_involved_is_confirmed_in_one_click(browser: TestClient, world: World, engine: Engine) -> None:
    people_notify.start_cursor(engine)
    hana = world.practitioners["hana"]
    with unit_of_work(engine) as s:
        from sqlmodel import select

        rows = s.exec(select(Involvement).where(Involvement.practitioner_id == hana)).all()
        for row in rows:
            row.last_confirmed_at = utcnow() - timedelta(days=400)
            s.add(row)
    assert people_notify.remind(engine, still_involved_days=180) == len(rows) == 2
    people_notify.fan_out(engine, email=False)
    asks = notices_of(engine, hana, "involvement.still-involved")
    assert len(asks) == 2
    sign_in(browser, world, "hana")
    page = browser.get(asks[0].link or "")
    assert page.status_code == 200 and "Yes, I am still involved" in page.text
    end = re.search(r'href="(/children/[0-9a-f-]+/involvement-end\?item=[0-9a-f-]+)"', page.text)
    assert end and browser.get(end[1].replace("&amp;", "&")).status_code == 200  # the end page, reused
    done = browser.post(f"/inbox/{asks[0].id}/still-involved", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 200 and "your involvement is confirmed" in done.text
    with unit_of_work(engine) as s:
        from sqlmodel import select

        confirmed = [
            r
            for r in s.exec(select(Involvement).where(Involvement.practitioner_id == hana)).all()
            if r.last_confirmed_at > utcnow() - timedelta(minutes=5)
        ]
    assert len(confirmed) == 1
    assert people_notify.remind(engine, still_involved_days=180) == 0  # not asked again for the same


def test_the_choice_of_email_or_the_inbox_only(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "hana")
    form = browser.get("/inbox/preference")
    assert form.status_code == 200 and 'value="email" checked' in form.text
    saved = browser.post("/inbox/preference", data={"csrf_token": csrf_of(form.text), "channel": "inbox"})
    assert saved.status_code == 200 and "You see notices here only" in saved.text
    bad = browser.post("/inbox/preference", data={"csrf_token": csrf_of(form.text), "channel": "pigeon"})
    assert bad.status_code == 400
