"""Many nodes, one truth (issue #21 item 1): on PostgreSQL, a statement-level trigger on the outbox
NOTIFYs the node holding the indexer's lease, so a child written through one node is found through
another within a second (directory/jobs.py). No table changes; nothing on SQLite.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 05:00:00
"""

from alembic import op

from directory.jobs import OUTBOX_NOTIFY_DROP, install_outbox_notify

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_outbox_notify(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for ddl in OUTBOX_NOTIFY_DROP:
            op.execute(ddl)
