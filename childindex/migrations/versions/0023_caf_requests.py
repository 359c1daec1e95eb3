"""Requests about a CAF (issue #18): a Lead Professional hand-over the named practitioner accepts or
declines, an ask to join a TAC, an invitation to one

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 22:55:00
"""

import sqlalchemy as sa
from alembic import op

from directory.models import UTCDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_ONE_HAND_OVER = "status = 'pending' AND kind IN ('hand-over')"
_ONE_TAC_REQUEST = "status = 'pending' AND kind IN ('join', 'invite')"


def upgrade() -> None:
    op.create_table(
        "caf_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("assessment_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("answered_by", sa.String(length=200), nullable=True),
        sa.Column("answer_reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint("kind IN ('hand-over', 'join', 'invite')", name="caf_request_kind"),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'replaced')", name="caf_request_status"
        ),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessment.id"]),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"]),
        sa.ForeignKeyConstraint(["requester_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("caf_request", schema=None) as batch_op:
        for column in ("assessment_id", "child_id", "practitioner_id", "requester_id", "status"):
            batch_op.create_index(f"ix_caf_request_{column}", [column], unique=False)
        batch_op.create_index(
            "caf_request_one_hand_over",
            ["assessment_id"],
            unique=True,
            sqlite_where=sa.text(_ONE_HAND_OVER),
            postgresql_where=sa.text(_ONE_HAND_OVER),
        )
        batch_op.create_index(
            "caf_request_one_tac_request",
            ["assessment_id", "practitioner_id"],
            unique=True,
            sqlite_where=sa.text(_ONE_TAC_REQUEST),
            postgresql_where=sa.text(_ONE_TAC_REQUEST),
        )


def downgrade() -> None:
    op.drop_table("caf_request")
