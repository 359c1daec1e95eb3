"""shielded children are indexed by their current official name only: queue every shielded child for
the search indexer, so an index built before this keeps none of their former names or aliases

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 12:30:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from directory.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    child = sa.table("child", sa.column("id", sa.Uuid()), sa.column("shielded", sa.Boolean()))
    outbox = sa.table(
        "outbox",
        sa.column("topic", sa.String()),
        sa.column("entity_id", sa.String()),
        sa.column("created_at", UTCDateTime()),
    )
    conn = op.get_bind()
    ids = conn.execute(sa.select(child.c.id).where(child.c.shielded == sa.true())).scalars().all()
    now = datetime.now(UTC)
    if ids:
        conn.execute(outbox.insert(), [{"topic": "child", "entity_id": i.hex, "created_at": now} for i in ids])


def downgrade() -> None:
    pass  # (the queued changes are applied or harmless)
