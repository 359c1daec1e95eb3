"""The embedded backend's three tables in the directory's own SQL database (SQLAlchemy Core, the
same on SQLite and PostgreSQL): the stored records, the blocking keys and the change log.

`search.embedded` writes them (and re-exports them); `search.resident` reads them into memory and
follows the log. Create them with `EmbeddedBackend.ensure_ready` or an Alembic migration.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()
"""The search tables; create them with `EmbeddedBackend.ensure_ready` or an Alembic migration."""

search_record = Table(
    "search_record",
    metadata,
    Column("child_id", String(64), primary_key=True),
    # PersonFields.to_dict() as JSON text: portable across SQLite and PostgreSQL, and the
    # database never needs to look inside it.
    Column("fields", Text, nullable=False),
)

search_key = Table(
    "search_key",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("child_id", String(64), primary_key=True),
    Index("ix_search_key_child_id", "child_id"),
    # On SQLite the primary key is the table itself (no hidden rowid copy): a third less disk
    # at tens of millions of keys. Other dialects ignore this.
    sqlite_with_rowid=False,
)

search_log = Table(
    "search_log",
    metadata,
    # Never reused, even after the oldest rows are pruned (AUTOINCREMENT on SQLite, a sequence
    # on PostgreSQL): a reader remembers the last seq it applied and asks for what follows.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    # The child whose record and keys changed; NULL: everything changed (a rebuild, or rows a
    # reader may have missed were pruned) and a resident copy must load afresh.
    Column("child_id", String(64), nullable=True),
    sqlite_autoincrement=True,
)
