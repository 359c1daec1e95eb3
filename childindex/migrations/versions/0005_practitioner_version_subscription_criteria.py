"""practitioner version (PractitionerRole If-Match); FHIR Subscription reason and criteria

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # existing rows start at version 1; bulk loaders may leave the column out
    with op.batch_alter_table("practitioner", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("criteria", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.drop_column("criteria")
        batch_op.drop_column("reason")
    with op.batch_alter_table("practitioner", schema=None) as batch_op:
        batch_op.drop_column("version")
