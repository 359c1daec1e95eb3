"""The app in production mode (no development header) on the test database."""

from __future__ import annotations

import pytest

from childindex.settings import Settings

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
