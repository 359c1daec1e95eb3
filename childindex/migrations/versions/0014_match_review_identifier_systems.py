"""the match review queue (feed rows held for a person to decide) and identifier systems wide
enough to keep a foreign FHIR system URI exactly as sent

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 14:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from directory.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_review",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("file", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("row_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("shielded_candidate", sa.Boolean(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=True),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'linked', 'created')", name="match_review_status"),
        sa.CheckConstraint("status = 'open' OR child_id IS NOT NULL", name="match_review_decided_child"),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_match_review_status", "match_review", ["status"])
    op.create_index("match_review_row", "match_review", ["source", "row_hash"])
    with op.batch_alter_table("child_identifier", schema=None) as batch_op:
        batch_op.alter_column(
            "system",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
            type_=sqlmodel.sql.sqltypes.AutoString(length=255),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("child_identifier", schema=None) as batch_op:
        batch_op.alter_column(
            "system",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=255),
            type_=sqlmodel.sql.sqltypes.AutoString(length=64),
            existing_nullable=False,
        )
    op.drop_index("match_review_row", table_name="match_review")
    op.drop_index("ix_match_review_status", table_name="match_review")
    op.drop_table("match_review")
