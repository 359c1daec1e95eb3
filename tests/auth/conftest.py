"""The app in production mode (no development header) on the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory.app import create_app
from directory.settings import Settings

ISSUER = "http://testserver"


@pytest.fixture
def prod_settings() -> Settings:
    """Production settings: only access tokens get in."""
    return Settings(
        environment="production",
        database_url="sqlite://",
        issuer=ISSUER,
        secret_key="test-secret-key",
        search_rate_per_minute=1000,
    )


@pytest.fixture
def app(engine: Engine, prod_settings: Settings) -> FastAPI:
    """The app under test."""
    return create_app(prod_settings, engine=engine)


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client for the production-mode app."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def state(app: FastAPI) -> AuthState:
    """The app's auth state (keys, validator, config)."""
    return app.state.auth  # type: ignore[no-any-return]
