"""Configuration from CHILDINDEX_* environment variables; only app.py and cli.py read it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting the service reads, with the embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="CHILDINDEX_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = Field(
        default="production",
        description="'development' accepts the X-Dev-Actor header; never use it with real data.",
    )
    database_url: str = "sqlite:///var/childindex.db"
    search_backend: Literal["embedded", "elasticsearch"] = "embedded"
    elasticsearch_url: str | None = None
    issuer: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    signal_expiry_days: int = Field(default=14, ge=1, le=90)
    authority_name: str = "Demoshire County Council"
    delivery_team_name: str = "Early Help Hub"
    delivery_team_phone: str | None = "01632 960000"
    delivery_team_email: str | None = "earlyhelp@demoshire.example.gov.uk"
    log_level: str = "info"
