"""keyed audit chain (audit_event.key_id); room for sealed secrets (totp_secret, subscription.secret)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from directory.db import install_rules

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Events already written keep key_id NULL: they were hashed with plain SHA-256, and stay first
    # in the chain (`childindex migrate` then appends a keyed event; directory/audit.py).
    # (An added column: SQLite does it in place, so the append-only triggers stay.)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    # A sealed value is longer than the secret (directory/sealed.py). SQLite does not enforce a
    # VARCHAR's length, and rebuilding these tables there would fight the foreign keys that point
    # at them (notification -> subscription): only PostgreSQL needs the wider type.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("local_user", "totp_secret", type_=sa.String(), existing_nullable=False)
        op.alter_column("subscription", "secret", type_=sa.String(), existing_nullable=True)
    # The secrets themselves are sealed by `childindex migrate` / `serve` once the key is loaded.


def downgrade() -> None:
    # (The secrets stay sealed: the version before this one cannot read them.)
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("subscription", "secret", type_=sa.String(length=200), existing_nullable=True)
        op.alter_column("local_user", "totp_secret", type_=sa.String(length=64), existing_nullable=False)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("key_id")
    install_rules(op.get_bind())  # (in case SQLite rebuilt the table without its triggers)
