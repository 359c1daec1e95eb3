"""The rules the database enforces itself, beyond keys, checks and partial unique indexes (the
audit log is append-only; a convened TAC keeps more than two practitioners), and a schema made
directly from the models."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from directory import models  # noqa: F401  (registers the tables)

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
