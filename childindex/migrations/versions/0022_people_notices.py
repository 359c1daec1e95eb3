"""notifications to people (issue #18): the inbox's notices tell of audit events (one per practitioner
and event), each person's email-or-inbox choice, the email outbox, and the marks that make each
reminder once

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 23:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from directory.models import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audit_seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True))
        batch_op.add_column(sa.Column("link", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.create_unique_constraint("notice_once", ["practitioner_id", "audit_seq"])
    op.create_table(
        "notice_preference",
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'inbox')", name="notice_channel"),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("practitioner_id"),
    )
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notice_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead', 'dropped')", name="email_status"),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notice_id"),
    )
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_outbox_practitioner_id"), ["practitioner_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_email_outbox_status"), ["status"], unique=False)
    op.create_table(
        "notice_mark",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("made_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("notice_mark")
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_outbox_status"))
        batch_op.drop_index(batch_op.f("ix_email_outbox_practitioner_id"))
    op.drop_table("email_outbox")
    op.drop_table("notice_preference")
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.drop_constraint("notice_once", type_="unique")
        batch_op.drop_column("link")
        batch_op.drop_column("event")
        batch_op.drop_column("audit_seq")
