"""The TAC's plan (issue #18 item 6): its actions (who, which area of need, by when, status, a short
title) and its reviews (when held, the outcome, whether the family has a copy)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 23:00:00
"""

import sqlalchemy as sa
from alembic import op

from directory.models import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tac_action",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tac_id", sa.Uuid(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=80), nullable=False),
        sa.Column("area", sa.String(length=40), nullable=False),
        sa.Column("owner_practitioner_id", sa.Uuid(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'done', 'dropped')", name="tac_action_status"),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["owner_practitioner_id"], ["practitioner.id"]),
        sa.ForeignKeyConstraint(["tac_id"], ["tac.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tac_action_tac_id", "tac_action", ["tac_id"], unique=False)
    op.create_index("ix_tac_action_child_id", "tac_action", ["child_id"], unique=False)
    op.create_index("ix_tac_action_due_date", "tac_action", ["due_date"], unique=False)
    op.create_table(
        "tac_review",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tac_id", sa.Uuid(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("next_review_date", sa.Date(), nullable=True),
        sa.Column("family_has_plan", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("outcome IN ('needs_met', 'reconvene')", name="tac_review_outcome"),
        sa.CheckConstraint(
            "outcome = 'needs_met' OR next_review_date IS NOT NULL", name="tac_review_reconvene_date"
        ),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["tac_id"], ["tac.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tac_review_tac_id", "tac_review", ["tac_id"], unique=False)
    op.create_index("ix_tac_review_child_id", "tac_review", ["child_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tac_review_child_id", table_name="tac_review")
    op.drop_index("ix_tac_review_tac_id", table_name="tac_review")
    op.drop_table("tac_review")
    op.drop_index("ix_tac_action_due_date", table_name="tac_action")
    op.drop_index("ix_tac_action_child_id", table_name="tac_action")
    op.drop_index("ix_tac_action_tac_id", table_name="tac_action")
    op.drop_table("tac_action")
