"""FHIR Bulk Data exports (issue #19): one row per kick-off, seen by every node and worker

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 19:55:00
"""

import sqlalchemy as sa
from alembic import op

from directory.models import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_export",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("running_client", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("scopes", sa.String(length=4000), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("types", sa.String(length=400), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("request_url", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("transaction_time", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("children_done", sa.Integer(), nullable=False),
        sa.Column("children_total", sa.Integer(), nullable=False),
        sa.Column("output", sa.String(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('in-progress', 'complete', 'failed', 'cancelled')", name="bulk_export_status"
        ),
        sa.CheckConstraint("level IN ('system', 'patient', 'group')", name="bulk_export_level"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("running_client", name="bulk_export_one_running"),
    )
    op.create_index("ix_bulk_export_client_id", "bulk_export", ["client_id"], unique=False)
    op.create_index("ix_bulk_export_status", "bulk_export", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bulk_export_status", table_name="bulk_export")
    op.drop_index("ix_bulk_export_client_id", table_name="bulk_export")
    op.drop_table("bulk_export")
