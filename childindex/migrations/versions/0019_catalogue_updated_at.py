"""catalogue rows' last change time (FHIR _history with _since, _lastUpdated, meta.lastUpdated)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 18:20:00
"""

import sqlalchemy as sa
from alembic import op

from directory.models import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLES = ("locality", "organisation", "service", "practitioner")


def upgrade() -> None:
    # Existing rows (and rows a bulk loader writes without the column: the seed) take the time the
    # row is written, in UTC, from the server default. SQLite cannot ALTER TABLE ADD a column whose
    # default is not a constant, so there the table is rebuilt (batch "move and copy", which keeps
    # its named CHECK constraints; foreign keys are off while migrating, see env.py).
    postgres = op.get_bind().dialect.name == "postgresql"
    # on SQLite in the ORM's own text form (microseconds always), so the times compare as the ORM's do
    now = (
        sa.text("(now() AT TIME ZONE 'utc')")
        if postgres
        else sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    )
    for table in TABLES:
        with op.batch_alter_table(table, recreate="auto" if postgres else "always") as batch_op:
            batch_op.add_column(sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=now))
            batch_op.create_index(f"ix_{table}_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(f"ix_{table}_updated_at")
            batch_op.drop_column("updated_at")
