"""search change log (search_log): lets each process's resident copy of the index follow changes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # EmbeddedBackend.ensure_ready creates the search tables too: a database it already touched
    # has the table.
    if sa.inspect(op.get_bind()).has_table("search_log"):
        return
    op.create_table(
        "search_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("child_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("search_log")
