"""notices to practitioners (a change someone else made to a CAF they hold); involvements indexed by
practitioner and sensitivity (whether a practitioner works in a sensitive service is asked per card
and search hit)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from directory.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("caf_id", sa.Uuid(), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("by_subject", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("by_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("by_role", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("by_organisation", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["caf_id"], ["assessment.id"]),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notice_practitioner_id"), ["practitioner_id"], unique=False)
    with op.batch_alter_table("involvement", schema=None) as batch_op:
        batch_op.create_index(
            "ix_involvement_practitioner_sensitive", ["practitioner_id", "sensitive"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("involvement", schema=None) as batch_op:
        batch_op.drop_index("ix_involvement_practitioner_sensitive")
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_practitioner_id"))
    op.drop_table("notice")
