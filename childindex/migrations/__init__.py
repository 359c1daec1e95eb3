"""Alembic migrations, run programmatically: `childindex migrate` or on start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

HERE = Path(__file__).parent


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs against an existing engine."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to a revision (default: the newest)."""
    command.upgrade(alembic_config(engine), revision)
