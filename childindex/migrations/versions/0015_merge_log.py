"""merges of duplicate records and each value they moved (so an unmerge restores exactly that)

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-05 14:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from directory.db.rules import drop_merged_record_rules, install_merged_record_rules
from directory.models import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "child_merge",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kept_id", sa.Uuid(), nullable=False),
        sa.Column("duplicate_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("merged_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("merged_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["duplicate_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["kept_id"], ["child.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("duplicate_id"),
    )
    with op.batch_alter_table("child_merge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_child_merge_kept_id"), ["kept_id"], unique=False)
    op.create_table(
        "merge_move",
        sa.Column("merge_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("table_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("row_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("column_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("old_value", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("new_value", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["merge_id"], ["child_merge.id"]),
        sa.PrimaryKeyConstraint("merge_id", "seq"),
    )
    install_merged_record_rules(op.get_bind())


def downgrade() -> None:
    drop_merged_record_rules(op.get_bind())
    op.drop_table("merge_move")
    with op.batch_alter_table("child_merge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_child_merge_kept_id"))
    op.drop_table("child_merge")
