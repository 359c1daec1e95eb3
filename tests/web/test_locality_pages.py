"""Grant localities on the pages (directory/reach.py): with CHILDINDEX_GRANT_LOCALITIES=all, a
practitioner whose grant names CITY finds and opens only children living there; the card of a child
living elsewhere says which team to ask, and a search says that some are not shown."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from childindex.app import create_app
from tests.web.test_pages import DOB, post_form, search
from tests.web.world import World, page_client, sign_in, web_settings

ISSUER = "http://testserver"


def _restrict(engine: Engine, username: str, localities: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE access_grant SET localities = :l WHERE subject = :s"),
            {"l": json.dumps(localities), "s": username},
        )


def test_pages_keep_to_the_grants_localities(engine: Engine, world: World) -> None:
    _restrict(engine, "pat", ["CITY"])
    settings = web_settings(ISSUER).model_copy(update={"grant_localities": "all"})
    with page_client(create_app(settings, engine=engine), ISSUER) as client:
        sign_in(client, world, "pat")
        olivia, amara = world.children["olivia"], world.children["amara"]
        results = search(client, given="Olivia", family="Smith", **DOB)
        assert f'href="/children/{olivia}"' in results
        # Amara Smith lives in NORTH: her card is refused, naming the team to ask; her hit is left out
        refused = client.get(f"/children/{amara}")
        assert refused.status_code == 403, refused.text
        assert "North Early Help Team" in refused.text and "Amara" not in refused.text
        found = search(
            client, given="Amara", family="Smith", **{"dob-day": "11", "dob-month": "11", "dob-year": "2019"}
        )
        assert f"/children/{amara}" not in found
        assert "outside the localities your access covers" in found


def test_pages_refuse_changes_outside_under_writes(engine: Engine, world: World) -> None:
    _restrict(engine, "pat", ["CITY"])
    settings = web_settings(ISSUER).model_copy(update={"grant_localities": "writes"})
    with page_client(create_app(settings, engine=engine), ISSUER) as client:
        sign_in(client, world, "pat")
        amara = world.children["amara"]
        found = search(
            client, given="Amara", family="Smith", **{"dob-day": "11", "dob-month": "11", "dob-year": "2019"}
        )
        assert f"/children/{amara}" in found  # found and read: only changes are restricted
        card = client.get(f"/children/{amara}")
        assert card.status_code == 200 and "Hana Begum" in card.text  # reads stay open
        with engine.connect() as conn:
            before = conn.execute(sa.text("SELECT count(*) FROM assessment")).scalar_one()
        done = post_form(client, f"/children/{amara}/caf-signal", {"not_safeguarding": "yes"})
        assert done.status_code == 403, done.text
        assert "North Early Help Team" in done.text
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM assessment")).scalar_one() == before
