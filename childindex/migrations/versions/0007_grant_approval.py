"""grant approval: pending client grants, the person responsible, who registered a client

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import directory.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_STATUSES_BEFORE = "status IN ('active', 'suspended', 'revoked')"
_STATUSES_AFTER = "status IN ('pending', 'active', 'suspended', 'revoked')"


def upgrade() -> None:
    # On SQLite a CHECK constraint changes only by copying the table: batch mode does that.
    with op.batch_alter_table("access_grant", recreate="auto") as batch_op:
        batch_op.add_column(sa.Column("responsible", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("approved_at", directory.models.UTCDateTime(), nullable=True))
        batch_op.drop_constraint("grant_status", type_="check")
        batch_op.create_check_constraint("grant_status", _STATUSES_AFTER)
    with op.batch_alter_table("oauth_client") as batch_op:
        batch_op.add_column(sa.Column("registered_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_client") as batch_op:
        batch_op.drop_column("registered_by")
    op.execute("UPDATE access_grant SET status = 'suspended' WHERE status = 'pending'")
    with op.batch_alter_table("access_grant", recreate="auto") as batch_op:
        batch_op.drop_constraint("grant_status", type_="check")
        batch_op.create_check_constraint("grant_status", _STATUSES_BEFORE)
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")
        batch_op.drop_column("responsible")
