"""Fixtures for the page tests: the app in production mode on a seeded database, and a signed-in client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex.app import create_app
from tests.web.world import World, build_world, page_client, web_settings

ISSUER = "http://testserver"


@pytest.fixture
def world(engine: Engine) -> World:
    """The seeded directory (on SQLite and on PostgreSQL)."""
    return build_world(engine)


@pytest.fixture
def web_app(engine: Engine, world: World) -> FastAPI:
    """The whole app, as served, on the seeded database."""
    return create_app(web_settings(ISSUER), engine=engine)


@pytest.fixture
def browser(web_app: FastAPI) -> Iterator[TestClient]:
    """A cookie-keeping client on the issuer's host."""
    with page_client(web_app, ISSUER) as c:
        yield c
