"""a child's record kept as versions (child_version); parents and carers who are no longer around
the child kept with an end date (related_person.until)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 14:10:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import directory.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "child_version",
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", directory.models.UTCDateTime(), nullable=False),
        sa.Column("actor_subject", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("organisation", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("changed", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("snapshot", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.PrimaryKeyConstraint("child_id", "version"),
    )
    with op.batch_alter_table("related_person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("until", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("related_person", schema=None) as batch_op:
        batch_op.drop_column("until")
    op.drop_table("child_version")
