"""A practitioner's own lists (directory/service/mine.py): children I'm involved with, and my CAFs, on
the pages and the app API. Only your own rows, from your sign-in; audited with each child named."""

from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory import service
from directory.errors import NotAllowed
from directory.models import (
    AuditEvent,
    AuditSubject,
    CafClose,
    Child,
    Contact,
    Involvement,
    InvolvementEnd,
    LocalityReach,
    Role,
    utcnow,
)
from directory.service.card import build_card
from directory.service.mine import my_work
from tests.fixtures.auth_builders import bearer, token_for
from tests.fixtures.builders import actor
from tests.web.test_worklist_pages import started_caf
from tests.web.world import World, sign_in


def _mine_events(engine: Engine) -> list[tuple[AuditEvent, set[uuid.UUID]]]:
    """Each look at the lists, with the children it names."""
    with Session(engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "mine.read")).all()
        return [
            (e, set(s.exec(select(AuditSubject.child_id).where(AuditSubject.seq == e.seq)).all()))
            for e in events
        ]


def test_a_practitioner_sees_their_children_and_their_cafs(
    browser: TestClient, world: World, engine: Engine
) -> None:
    caf = started_caf(engine, world, child="olivia", by="pat")
    sign_in(browser, world, "pat")
    assert 'href="/mine"' in browser.get("/search").text
    page = browser.get("/mine")
    assert page.status_code == 200, page.text
    children, cafs = page.text.split('id="cafs"')
    assert "Olivia Smith" in children and "Cowley SEN support" in children and "In progress" in children
    assert "Amara Smith" not in page.text  # Hana's, not Pat's
    assert "Olivia Smith" in cafs and "Lead Professional" in cafs and "Started it" in cafs
    events = _mine_events(engine)
    assert [named for _, named in events] == [{world.children["olivia"]}]
    assert str(caf) not in str(page.url)


def test_ended_involvements_and_closed_cafs_drop_off(world: World, engine: Engine) -> None:
    caf = started_caf(engine, world, child="olivia", by="pat")
    pat = actor(practitioner_id=world.practitioners["pat"], subject="pat")
    with Session(engine, expire_on_commit=False) as s:
        mine = my_work(s, actor=pat)
        assert [c.child_id for c in mine.children] == [world.children["olivia"]]
        assert [c.caf_id for c in mine.cafs] == [caf]
        inv = s.exec(
            select(Involvement).where(Involvement.practitioner_id == world.practitioners["pat"])
        ).one()
        service.end_involvement(
            s, actor=pat, involvement_id=inv.id, data=InvolvementEnd(end_date=date.today(), reason="left")
        )
        service.close_caf(s, actor=pat, caf_id=caf, data=CafClose(reason="needs met"), now=utcnow())
        s.commit()
    with Session(engine) as s:
        after = my_work(s, actor=pat)
    assert after.children == [] and after.cafs == []


def test_a_grant_limited_to_other_localities_lists_none_of_them(world: World, engine: Engine) -> None:
    # Olivia has no locality on record: outside every grant that names localities when reads are limited
    pat = actor(
        practitioner_id=world.practitioners["pat"],
        subject="pat",
        localities=("NORTH",),
        locality_reach=LocalityReach.ALL,
    )
    with Session(engine) as s:
        assert my_work(s, actor=pat).children == []
    writes_only = actor(
        practitioner_id=world.practitioners["pat"],
        subject="pat",
        localities=("NORTH",),
        locality_reach=LocalityReach.WRITES,
    )
    with Session(engine) as s:
        assert [c.child_id for c in my_work(s, actor=writes_only).children] == [world.children["olivia"]]


def test_without_a_practitioner_link_or_as_an_admin_there_is_nothing_to_list(
    browser: TestClient, web_app: FastAPI, world: World, engine: Engine
) -> None:
    with Session(engine) as s:
        for who in (
            actor(subject="x"),
            actor(Role.DIRECTORY_ADMIN, practitioner_id=world.practitioners["pat"]),
        ):
            try:
                my_work(s, actor=who)
            except NotAllowed as refused:
                assert "practitioner" in str(refused)
            else:
                raise AssertionError("listed work for someone who has none")
    sign_in(browser, world, "ada")
    assert browser.get("/mine").status_code == 403
    assert 'href="/mine"' not in browser.get("/admin/grants").text
    state = web_app.state.auth
    with TestClient(web_app, raise_server_exceptions=False) as api:
        pat = bearer(
            token_for(state, "pat", scopes=("directory.search",), practitioner_id=world.practitioners["pat"]),
            purpose=None,
        )
        r = api.get("/api/v1/me/work", headers=pat)
        assert r.status_code == 200, r.text
        assert [c["child_id"] for c in r.json()["children"]] == [str(world.children["olivia"])]
        cora = bearer(token_for(state, "cora", scopes=("directory.search",)), purpose=None)
        unlinked = api.get("/api/v1/me/work", headers=cora)
        assert unlinked.status_code == 403 and "not linked" in unlinked.json()["detail"]
    with Session(engine) as s:
        count = s.execute(
            sa.select(sa.func.count()).select_from(AuditEvent).where(col(AuditEvent.action) == "mine.read")
        )
        assert count.scalar_one() >= 1


def test_the_card_does_not_tell_the_holder_to_contact_themselves(world: World, engine: Engine) -> None:
    started_caf(engine, world, child="olivia", by="pat")
    team = Contact(name="City locality team", role="locality team")
    with Session(engine) as s:
        child = s.get(Child, world.children["olivia"])
        assert child is not None
        for who, expected in (("pat", "you hold it"), ("hana", "contact Pat Okafor")):
            reader = actor(practitioner_id=world.practitioners[who], subject=who)
            card = build_card(s, actor=reader, child=child, now=utcnow(), fallback_team=team)
            assert card.caf is not None and card.caf.advice is not None
            assert expected in card.caf.advice
