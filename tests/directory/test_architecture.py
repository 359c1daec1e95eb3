"""The layout rules from STYLE.md and the schema's agreement with its migrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from auth.limits import metadata as limits_metadata
from search.embedded import metadata as search_metadata

ROOT = Path(__file__).resolve().parents[2]


def test_import_rules_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_top_level_layout() -> None:
    for name in ("pyproject.toml", "README.md", "directory", "interop", "auth", "search", "tests", "deploy"):
        assert (ROOT / name).exists(), name


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        # PostgreSQL keeps the rate-limit counters in the directory's database; SQLite beside it.
        limits = [limits_metadata] if engine.dialect.name == "postgresql" else []
        metadata = [SQLModel.metadata, search_metadata, *limits]
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    # Ignore tables owned by other packages' metadata (none here) and pure type-affinity noise.
    assert diff == [], diff
