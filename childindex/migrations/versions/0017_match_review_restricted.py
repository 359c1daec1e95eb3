"""a held feed row's readers when a candidate is a sealed record (the adoption team only) or an
archived one (data managers only): match_review.restricted

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 17:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("match_review", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("restricted", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("match_review", schema=None) as batch_op:
        batch_op.drop_column("restricted")
