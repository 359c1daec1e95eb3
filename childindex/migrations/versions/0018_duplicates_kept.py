"""the duplicates report, kept: its runs and their pairs (ids, grades and agreeing field names only),
and the pairs a person decided are two children

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 17:10:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from directory.models import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duplicate_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("started_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("children", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.CheckConstraint("state IN ('running', 'done', 'failed')", name="duplicate_run_state"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("duplicate_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_duplicate_run_started_at"), ["started_at"], unique=False)
    op.create_table(
        "duplicate_pair",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("first_id", sa.Uuid(), nullable=False),
        sa.Column("second_id", sa.Uuid(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("grade", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("agreed", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("shielded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["duplicate_run.id"]),
        sa.PrimaryKeyConstraint("run_id", "first_id", "second_id"),
    )
    op.create_table(
        "not_duplicate",
        sa.Column("first_id", sa.Uuid(), nullable=False),
        sa.Column("second_id", sa.Uuid(), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("first_id", "second_id"),
    )


def downgrade() -> None:
    op.drop_table("not_duplicate")
    op.drop_table("duplicate_pair")
    with op.batch_alter_table("duplicate_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_duplicate_run_started_at"))
    op.drop_table("duplicate_run")
