"""The rules the database enforces itself, beyond keys, checks and partial unique indexes (the
audit log is append-only; a convened TAC keeps more than two practitioners), and a schema made
directly from the models."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from directory import models  # noqa: F401  (registers the tables)
from directory.jobs import install_outbox_notify

SQLITE_RULES = [
    """CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS tac_convened_needs_three BEFORE UPDATE OF status ON tac
       WHEN NEW.status = 'convened' AND (SELECT count(*) FROM tac_member
            WHERE tac_id = NEW.id AND left_at IS NULL) < 3
       BEGIN SELECT RAISE(ABORT, 'a TAC needs more than two practitioners to be convened'); END""",
    """CREATE TRIGGER IF NOT EXISTS tac_member_leave_keeps_three BEFORE UPDATE OF left_at
       ON tac_member
       WHEN NEW.left_at IS NOT NULL AND OLD.left_at IS NULL
            AND (SELECT status FROM tac WHERE id = NEW.tac_id) = 'convened'
            AND (SELECT count(*) FROM tac_member WHERE tac_id = NEW.tac_id
                 AND left_at IS NULL) <= 3
       BEGIN SELECT RAISE(ABORT, 'a convened TAC needs more than two practitioners'); END""",
]

POSTGRES_RULES = [
    """CREATE OR REPLACE FUNCTION childindex_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
    """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
       FOR EACH ROW EXECUTE FUNCTION childindex_append_only()""",
    """CREATE OR REPLACE FUNCTION childindex_tac_convene_check() RETURNS trigger AS $$
       BEGIN
         IF NEW.status = 'convened' AND (SELECT count(*) FROM tac_member
             WHERE tac_id = NEW.id AND left_at IS NULL) < 3 THEN
           RAISE EXCEPTION 'a TAC needs more than two practitioners to be convened';
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS tac_convened_needs_three ON tac",
    """CREATE TRIGGER tac_convened_needs_three BEFORE UPDATE OF status ON tac
       FOR EACH ROW EXECUTE FUNCTION childindex_tac_convene_check()""",
    """CREATE OR REPLACE FUNCTION childindex_tac_member_leave_check() RETURNS trigger AS $$
       BEGIN
         IF NEW.left_at IS NOT NULL AND OLD.left_at IS NULL
            AND (SELECT status FROM tac WHERE id = NEW.tac_id) = 'convened'
            AND (SELECT count(*) FROM tac_member WHERE tac_id = NEW.tac_id
                 AND left_at IS NULL) <= 3 THEN
           RAISE EXCEPTION 'a convened TAC needs more than two practitioners';
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS tac_member_leave_keeps_three ON tac_member",
    """CREATE TRIGGER tac_member_leave_keeps_three BEFORE UPDATE OF left_at ON tac_member
       FOR EACH ROW EXECUTE FUNCTION childindex_tac_member_leave_check()""",
]


def install_rules(conn: sa.Connection) -> None:
    """Create the triggers that make the database refuse what the domain refuses."""
    rules = POSTGRES_RULES if conn.dialect.name == "postgresql" else SQLITE_RULES
    for ddl in rules:
        conn.exec_driver_sql(ddl)


def create_schema(engine: Engine) -> None:
    """Create every table and rule directly (tests and throwaway databases; prefer migrate)."""
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        install_rules(conn)
        install_merged_record_rules(conn)
        install_outbox_notify(conn)  # a write tells the indexer's holder at once (directory/jobs.py)


# --- a merged record takes no new rows ---------------------------------------------------------
# The domain refuses a change to a merged record, but checks before it writes: on PostgreSQL a write
# that checked while a merge of the same record was committing would leave its row behind on the
# pointer. The database refuses it: after each statement (after its foreign key checks, which wait
# for the merge's row lock, so the status read then is the merge's), one join over the rows the
# statement wrote. (SQLite has one writer at a time and a write begins before its checks, so the
# domain's own check sees any merge; it gets no trigger, which would cost each bulk-loaded row.)
MERGE_GUARDED_TABLES = (
    "child_identifier",
    "child_name",
    "child_address",
    "related_person",
    "consent",
    "involvement",
    "involvement_version",
    "assessment",
    "lead_professional_assignment",
    "tac",
    "notice",
)
"""Tables whose rows belong to a child and must not be added to a merged record (see
directory.merge_moves.CHILD_ROWS; a table that joins that list may join this one in its migration)."""


def merged_record_rules(dialect: str, tables: tuple[str, ...] = MERGE_GUARDED_TABLES) -> list[str]:
    """The DDL (PostgreSQL) that refuses a row added to, or moved to, a merged record."""
    if dialect != "postgresql":
        return []
    ddl = [
        """CREATE OR REPLACE FUNCTION childindex_not_merged() RETURNS trigger AS $$
           BEGIN
             IF EXISTS (SELECT 1 FROM written w JOIN child c ON c.id = w.child_id
                        WHERE c.status = 'merged') THEN
               RAISE EXCEPTION 'this record was merged into another; make the change on that record'
                 USING ERRCODE = 'check_violation';
             END IF;
             RETURN NULL;
           END $$ LANGUAGE plpgsql"""
    ]
    for table in tables:
        for event in ("insert", "update"):
            name = f"{table}_not_merged_{event}"
            ddl += [
                f"DROP TRIGGER IF EXISTS {name} ON {table}",
                f"""CREATE TRIGGER {name} AFTER {event.upper()} ON {table}
                    REFERENCING NEW TABLE AS written FOR EACH STATEMENT
                    EXECUTE FUNCTION childindex_not_merged()""",
            ]
    return ddl


def install_merged_record_rules(conn: sa.Connection) -> None:
    """Create the triggers that refuse rows added to a merged record (PostgreSQL)."""
    for ddl in merged_record_rules(conn.dialect.name):
        conn.exec_driver_sql(ddl)


def drop_merged_record_rules(conn: sa.Connection) -> None:
    """Remove them (the downgrade of migration 0015)."""
    if conn.dialect.name != "postgresql":
        return
    for table in MERGE_GUARDED_TABLES:
        for event in ("insert", "update"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_not_merged_{event} ON {table}")
    conn.exec_driver_sql("DROP FUNCTION IF EXISTS childindex_not_merged()")
