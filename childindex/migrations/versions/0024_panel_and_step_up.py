"""The early intervention panel, step up and step down (issue #18 parts 4, 5): panel referrals and
their suggested members, step-ups (the core group) and the front door's referral notices; where a
CAF came from

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 23:00:00
"""

import sqlalchemy as sa
from alembic import op

from directory.models import UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "panel_referral",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("caf_id", sa.Uuid(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("locality_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("sent_by", sa.String(length=200), nullable=False),
        sa.Column("sent_by_practitioner_id", sa.Uuid(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("risk_of_harm", sa.Boolean(), nullable=True),
        sa.Column("need_level_3_4_screened", sa.Boolean(), nullable=True),
        sa.Column("tac_needed", sa.Boolean(), nullable=True),
        sa.Column("practitioner_support", sa.String(length=20), nullable=True),
        sa.Column("level_benchmark", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('waiting', 'decided')", name="panel_referral_status"),
        sa.CheckConstraint(
            "level_benchmark IS NULL OR level_benchmark BETWEEN 1 AND 4", name="panel_level_benchmark"
        ),
        sa.CheckConstraint(
            "status <> 'decided' OR (decided_at IS NOT NULL AND risk_of_harm IS NOT NULL)",
            name="panel_decided_has_decision",
        ),
        sa.ForeignKeyConstraint(["caf_id"], ["assessment.id"]),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["locality_id"], ["locality.id"]),
        sa.ForeignKeyConstraint(["sent_by_practitioner_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("caf_id"),
    )
    op.create_index("ix_panel_referral_child_id", "panel_referral", ["child_id"], unique=False)
    op.create_index("ix_panel_referral_locality_id", "panel_referral", ["locality_id"], unique=False)
    op.create_index("ix_panel_referral_status", "panel_referral", ["status"], unique=False)
    op.create_table(
        "panel_suggestion",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('suggested', 'invited')", name="panel_suggestion_status"),
        sa.ForeignKeyConstraint(["referral_id"], ["panel_referral.id"]),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("referral_id", "practitioner_id", name="panel_suggestion_once"),
    )
    op.create_index("ix_panel_suggestion_referral_id", "panel_suggestion", ["referral_id"], unique=False)
    op.create_index("ix_panel_suggestion_child_id", "panel_suggestion", ["child_id"], unique=False)
    op.create_table(
        "step_up",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("caf_id", sa.Uuid(), nullable=False),
        sa.Column("tac_id", sa.Uuid(), nullable=True),
        sa.Column("stepped_up_by", sa.String(length=200), nullable=False),
        sa.Column("referrer_id", sa.Uuid(), nullable=True),
        sa.Column("stepped_up_at", UTCDateTime(), nullable=False),
        sa.Column("stepped_down_at", UTCDateTime(), nullable=True),
        sa.Column("stepped_down_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["caf_id"], ["assessment.id"]),
        sa.ForeignKeyConstraint(["tac_id"], ["tac.id"]),
        sa.ForeignKeyConstraint(["referrer_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_step_up_child_id", "step_up", ["child_id"], unique=False)
    op.create_index("ix_step_up_caf_id", "step_up", ["caf_id"], unique=False)
    op.create_index("ix_step_up_tac_id", "step_up", ["tac_id"], unique=False)
    op.create_index(
        "one_open_step_up_per_caf",
        "step_up",
        ["caf_id"],
        unique=True,
        sqlite_where=sa.text("stepped_down_at IS NULL"),
        postgresql_where=sa.text("stepped_down_at IS NULL"),
    )
    op.create_table(
        "front_door_notice",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("step_up_id", sa.Uuid(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("channel IN ('webhook', 'email')", name="front_door_channel"),
        sa.CheckConstraint("status IN ('queued', 'delivered', 'dead')", name="front_door_status"),
        sa.ForeignKeyConstraint(["step_up_id"], ["step_up.id"]),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("step_up_id", "channel", name="front_door_notice_once"),
    )
    op.create_index("ix_front_door_notice_step_up_id", "front_door_notice", ["step_up_id"], unique=False)
    op.create_index("ix_front_door_notice_child_id", "front_door_notice", ["child_id"], unique=False)
    op.create_index("ix_front_door_notice_status", "front_door_notice", ["status"], unique=False)
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("came_from", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.drop_column("came_from")
    op.drop_table("front_door_notice")
    op.drop_index("one_open_step_up_per_caf", table_name="step_up")
    op.drop_table("step_up")
    op.drop_table("panel_suggestion")
    op.drop_table("panel_referral")
