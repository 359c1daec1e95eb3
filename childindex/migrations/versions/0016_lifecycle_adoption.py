"""a record's life-cycle dates (archived, died, moved away, purged), the sealed adoption link, the
free-text notes of audit events kept beside the chain (a purge deletes them); a purged record (a
tombstone) keeps no date of birth

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-05 15:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from directory.models import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_BORN = "date_of_birth IS NOT NULL OR expected_delivery_date IS NOT NULL"


def upgrade() -> None:
    # (first: SQLite rebuilds the child table, before the new tables point at it)
    with op.batch_alter_table("child", schema=None) as batch_op:
        batch_op.drop_constraint("child_born_or_expected", type_="check")
        batch_op.create_check_constraint("child_born_or_expected", f"{_BORN} OR status = 'purged'")
    op.create_table(
        "child_lifecycle",
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=True),
        sa.Column("died_on", sa.Date(), nullable=True),
        sa.Column("moved_to", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("moved_on", sa.Date(), nullable=True),
        sa.Column("purged_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.PrimaryKeyConstraint("child_id"),
    )
    with op.batch_alter_table("child_lifecycle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_child_lifecycle_archived_at"), ["archived_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_child_lifecycle_moved_on"), ["moved_on"], unique=False)
    op.create_table(
        "adoption_link",
        sa.Column("sealed_id", sa.Uuid(), nullable=False),
        sa.Column("adoptive_id", sa.Uuid(), nullable=False),
        sa.Column("sealed_at", UTCDateTime(), nullable=False),
        sa.Column("sealed_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.ForeignKeyConstraint(["adoptive_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["sealed_id"], ["child.id"]),
        sa.PrimaryKeyConstraint("sealed_id"),
        sa.UniqueConstraint("adoptive_id"),
    )
    op.create_table(
        "audit_note",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_note", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_note_child_id"), ["child_id"], unique=False)
    # Records archived before this revision: their last change is taken as the day they were archived
    # (the purge period runs from it).
    op.execute(
        "INSERT INTO child_lifecycle (child_id, archived_at) "
        "SELECT id, updated_at FROM child WHERE status = 'archived'"
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_note_child_id"))
    op.drop_table("audit_note")
    op.drop_table("adoption_link")
    with op.batch_alter_table("child_lifecycle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_child_lifecycle_moved_on"))
        batch_op.drop_index(batch_op.f("ix_child_lifecycle_archived_at"))
    op.drop_table("child_lifecycle")
    # (last: SQLite rebuilds the child table, which the tables above pointed at)
    with op.batch_alter_table("child", schema=None) as batch_op:
        batch_op.drop_constraint("child_born_or_expected", type_="check")
        batch_op.create_check_constraint("child_born_or_expected", _BORN)
