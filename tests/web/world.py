"""A small directory for the page tests: localities, services, practitioners, children and signed-up users."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import unescape
from urllib.parse import urlparse

import pyotp
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.models import LocalUser
from childindex.settings import Settings
from directory import service
from directory.models import InvolvementCreate, Role, ShieldSet
from search.indexer import drain
from tests.fixtures.auth_builders import PASSWORD, make_grant, make_user
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)

SECRET = "test-web-secret-key"


@dataclass
class World:
    """What the tests refer to by name."""

    children: dict[str, uuid.UUID] = field(default_factory=dict)
    practitioners: dict[str, uuid.UUID] = field(default_factory=dict)
    totp: dict[str, str] = field(default_factory=dict)
    _used: dict[str, int] = field(default_factory=dict)

    def code(self, username: str) -> str:
        """A TOTP code the account has not used yet (each code is good once; one step of drift)."""
        n = self._used.get(username, 0)
        self._used[username] = n + 1
        return pyotp.TOTP(self.totp[username]).at(time.time() + 30 * n)


def web_settings(issuer: str, database_url: str = "sqlite://") -> Settings:
    """Production settings for the pages (no development header), with a fixed secret."""
    return Settings(
        environment="production",
        database_url=database_url,
        issuer=issuer,
        secret_key=SECRET,
        search_rate_per_minute=1000,
    )


USERS = [
    # username, role, practitioner key (or None)
    ("pat", Role.PRACTITIONER, "pat"),
    ("hana", Role.PRACTITIONER, "hana"),
    ("dee", Role.DESIGNATED_PRACTITIONER, "dee"),
    ("cora", Role.CHILD_PROTECTION, None),
    ("ada", Role.DIRECTORY_ADMIN, None),
    ("aud", Role.AUDITOR, None),
    ("lena", Role.LOCAL_DELIVERY_TEAM, None),
]


def build_world(engine: Engine) -> World:
    """Seed the directory through the domain services (and auth builders), commit, index for search."""
    world = World()
    admin = actor(Role.DIRECTORY_ADMIN, subject="seed")
    with Session(engine, expire_on_commit=False) as s:
        city = make_locality(s, code="CITY", areas=("OX4",))
        make_locality(s, code="NORTH", areas=("OX2",))
        school = make_org(s, name="Cowley Primary School", kind="school")
        health = make_org(s, name="Demoshire Health", kind="nhs_trust", phone="01632 960400")
        youth = make_org(s, name="Demoshire Youth Service", kind="local_authority")
        hv = make_service(s, health, name="Health Visiting", service_type="health_visiting", level_of_need=1)
        sen = make_service(s, school, name="Cowley SEN support", service_type="education", level_of_need=2)
        yw = make_service(s, youth, name="Targeted Youth Support", service_type="youth_work", level_of_need=2)
        people = {
            "pat": make_practitioner(
                s, school, name="Pat Okafor", role="SENCO", email="pat@cowley.example.sch.uk"
            ),
            "hana": make_practitioner(
                s,
                health,
                name="Hana Begum",
                role="health visitor",
                phone="07700 900222",
                email="hana.begum@health.example.nhs.uk",
            ),
            "dee": make_practitioner(s, youth, name="Dee Walsh", role="youth worker", phone="07700 900333"),
            "sam": make_practitioner(
                s, school, name="Sam Carter", role="class teacher", phone="07700 900444"
            ),
        }
        world.practitioners = {k: p.id for k, p in people.items()}
        world.children["olivia"] = make_child(
            s, names=[{"given": "Olivia", "family": "Smith"}], date_of_birth="2017-03-27"
        )
        world.children["noah"] = make_child(
            s,
            names=[{"given": "Noah", "family": "Jones"}],
            date_of_birth="2016-05-02",
            sex="male",
            address={"line1": "9 Hidden Lane", "town": "Oxford", "postcode": "OX4 2ZZ"},
        )
        world.children["amara"] = make_child(
            s,
            names=[{"given": "Amara", "family": "Smith"}],
            date_of_birth="2019-11-11",
            address={"line1": "4 North Road", "town": "Oxford", "postcode": "OX2 6AA"},
        )
        for key, svc, who, role, level in (
            ("olivia", hv, "hana", "health visitor", 1),
            ("olivia", sen, "pat", "SENCO", 2),
            ("noah", yw, "dee", "youth worker", 2),
            ("amara", hv, "hana", "health visitor", 1),
        ):
            service.record_involvement(
                s,
                actor=admin,
                child_id=world.children[key],
                data=InvolvementCreate(
                    service_id=svc.id,
                    practitioner_id=people[who].id,
                    role=role,
                    level_of_need=level,
                    start_date=date.today() - timedelta(days=90),
                ),
            )
        service.set_shield(
            s, actor=admin, child_id=world.children["noah"], data=ShieldSet(reason="family fleeing violence")
        )
        for username, role, pkey in USERS:
            user: LocalUser = make_user(s, username, practitioner_id=people[pkey].id if pkey else None)
            world.totp[username] = user.totp_secret
            make_grant(s, username, role=role)
        assert city.id
        s.commit()
    from search.embedded import EmbeddedBackend

    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    drain(engine, backend, wait=True)
    return world


_HIDDEN = re.compile(r"""<input type=["']hidden["'] name=["']([^"']+)["'] value=["']([^"']*)["']>""")


def _hidden_inputs(html: str) -> dict[str, str]:
    return {m.group(1): unescape(m.group(2)) for m in re.finditer(_HIDDEN, html)}


def sign_in(client: TestClient, world: World, username: str, *, password: str = PASSWORD) -> None:
    """Go through the pages' sign-in: /signin/start -> /oauth/authorize (password + TOTP) -> callback."""
    start = client.get("/signin/start", follow_redirects=False)
    assert start.status_code == 303, start.text
    page = client.get(start.headers["location"])
    assert page.status_code == 200, page.text
    form = _hidden_inputs(page.text)
    form.update(username=username, password=password, totp=world.code(username))
    answer = client.post("/oauth/authorize", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    callback = urlparse(answer.headers["location"])
    done = client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert done.status_code == 303, done.text


def csrf_of(html: str) -> str:
    """The CSRF token in a rendered page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def page_client(app: FastAPI, base_url: str) -> TestClient:
    """A TestClient whose host matches the issuer (the sign-in cookie is set on that host)."""
    return TestClient(app, base_url=base_url, raise_server_exceptions=False)
