"""the child's resources' last change time (meta.lastUpdated, _history with _since, _lastUpdated)

Involvements, CAFs, TACs, consents and subscriptions record when they last changed (updated_at), as the catalogue's rows do
since 0019; the child's own updated_at (kept since 0001) gains an index for `_since` and
`_lastUpdated`.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 19:50:00
"""

import sqlalchemy as sa
from alembic import op

from directory.db import install_rules
from directory.models import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TABLES = ("involvement", "assessment", "tac", "consent", "subscription")
INDEXED = ("involvement", "assessment", "tac")  # what _since and _lastUpdated read

# Rows written before this migration take their latest known time, not the migration's.
_BACKFILL = {
    "involvement": "(SELECT max(v.recorded_at) FROM involvement_version v WHERE v.involvement_id = involvement.id)",
    "assessment": "{greatest}(signalled_at, {c}(started_at, signalled_at), {c}(completed_at, signalled_at), "
    "{c}(closed_at, signalled_at))",
    "consent": "{c}(withdrawn_at, given_at)",
    "subscription": "created_at",
    "tac": "{c}(closed_at, convened_at, (SELECT a.signalled_at FROM assessment a WHERE a.id = tac.assessment_id))",
}


def upgrade() -> None:
    # SQLite cannot ALTER TABLE ADD a column whose default is not a constant, so there the table is
    # rebuilt (batch "move and copy", which keeps its named CHECK constraints; foreign keys are off
    # while migrating, see env.py). On SQLite the time is in the ORM's own text form.
    postgres = op.get_bind().dialect.name == "postgresql"
    now = (
        sa.text("(now() AT TIME ZONE 'utc')")
        if postgres
        else sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    )
    if not postgres:  # SQLite's triggers naming tac would stop its rebuild: made again below
        for trigger in ("tac_convened_needs_three", "tac_member_leave_keeps_three"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table in TABLES:
        with op.batch_alter_table(table, recreate="auto" if postgres else "always") as batch_op:
            batch_op.add_column(sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=now))
            if table in INDEXED:
                batch_op.create_index(f"ix_{table}_updated_at", ["updated_at"], unique=False)
        known = _BACKFILL[table].format(greatest="greatest" if postgres else "max", c="coalesce")
        op.execute(f"UPDATE {table} SET updated_at = {known} WHERE {known} IS NOT NULL")  # noqa: S608
    op.create_index("ix_child_updated_at", "child", ["updated_at"], unique=False)
    install_rules(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("tac_convened_needs_three", "tac_member_leave_keeps_three"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index("ix_child_updated_at", table_name="child")
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch_op:
            if table in INDEXED:
                batch_op.drop_index(f"ix_{table}_updated_at")
            batch_op.drop_column("updated_at")
    install_rules(op.get_bind())
