"""shared limits: sign-in failures per account and address; on PostgreSQL the rate-limit and
trawling counters (UNLOGGED: they need not survive a crash; on SQLite they live in a side file)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import directory.models
from auth.limits import RATE_HIT_FUNCTION

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UNLOGGED = {"prefixes": ["UNLOGGED"]}


def upgrade() -> None:
    op.create_table(
        "signin_source",
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", directory.models.UTCDateTime(), nullable=True),
        sa.Column("last_failure_at", directory.models.UTCDateTime(), nullable=True),
        sa.Column("last_success_at", directory.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("username", "source"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return  # auth/limits.py keeps SQLite's counters in a side file
    op.create_table(
        "rate_hit",
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("slot", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "slot"),
        **UNLOGGED,
    )
    op.create_table(
        "trawl_look",
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "subject", "child_id"),
        **UNLOGGED,
    )
    op.create_table(
        "trawl_tally",
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("children", sa.Integer(), nullable=False),
        sa.Column("fresh", sa.Integer(), nullable=False),
        sa.Column("looks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "bucket"),
        **UNLOGGED,
    )
    op.execute(RATE_HIT_FUNCTION)
    op.create_table(
        "trawl_alert",
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
        **UNLOGGED,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS childindex_rate_hit(varchar, bigint, integer)")
        for table in ("trawl_alert", "trawl_tally", "trawl_look", "rate_hit"):
            op.drop_table(table)
    op.drop_table("signin_source")
