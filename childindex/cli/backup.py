"""`childindex backup` and `childindex restore` (docs/operations.md, "Backup and restore").

SQLite: SQLite's online backup API (`sqlite3.Connection.backup`) copies the database in one step
inside one read transaction, so the copy is the database as it was at one moment, while the
service goes on writing (in WAL mode a reader never blocks the writer); then `PRAGMA
integrity_check` on the copy. PostgreSQL: `pg_dump -Fc` (one consistent snapshot, while the
service writes), restored with `pg_restore`. A base backup with WAL archiving (point-in-time
recovery) is the database administrator's, documented in docs/operations.md.

Restore goes to a NEW place: a SQLite file that does not exist yet, or an empty PostgreSQL
database; it refuses a place holding data unless --force. Then it checks what a restore is for:
the copy's schema is one the code knows, and the audit key on hand verifies the copy's audit
chain (the keys are not in the database: they are backed up beside it). A copy that fails the
checks is not left where the service could be pointed at it: on SQLite it is checked before it
takes the target's place; on PostgreSQL what the restore made in the empty database is dropped
again (with --force on PostgreSQL the target's earlier contents were replaced before the check:
restore into a new database to keep them until the copy is known good).

Every file written holds every child's record: the backup, a restored SQLite database and their
partial files are created readable and writable by the user running the command alone (0600),
whatever the umask.

A password in a PostgreSQL URL goes to pg_dump and pg_restore in their environment (PGPASSWORD),
never on their command line (where any user of the machine could read it) nor in any output.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from sqlalchemy.engine import URL, Engine, make_url

from childindex.settings import Settings

console = Console()


class BackupError(Exception):
    """What went wrong, in words fit for the operator (no password, no URL)."""


# --- SQLite ------------------------------------------------------------------------------------


def sqlite_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("back up a SQLite database file (not one in memory or a URI)")
    return Path(database)


PRIVATE = 0o600
"""The mode of every file these commands write: a copy of every child's record is its owner's alone."""


def _private_partial(final: Path) -> Path:
    """A new, empty file beside `final` to write into, created 0600 (not by the umask: a backup made
    under the usual 022 would otherwise be readable by every account on the machine). Created only
    if absent, so that two commands writing the same file at once cannot write into each other's:
    the second is refused."""
    partial = final.with_name(final.name + ".partial")
    try:
        os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE))
    except FileExistsError:
        raise BackupError(
            f"{partial} exists: another backup or restore is writing it, or one was stopped part way "
            "(remove it once none is running)"
        ) from None
    _remove_sqlite_files(partial, journals_only=True)  # (a stopped one's: never replayed onto this)
    return partial


def _keep_as(partial: Path, out: Path) -> None:
    """Give the finished backup its name, never over a file that took the name meanwhile."""
    appeared = f"{out} appeared while this backup ran (another backup to the same name?): give a new name"
    try:
        try:
            os.link(partial, out)
        except FileExistsError:
            raise BackupError(appeared) from None
        except OSError:  # (a file system without hard links: the check just before is the guard)
            if out.exists():
                raise BackupError(appeared) from None
            os.replace(partial, out)
    finally:
        _remove_sqlite_files(partial)


def _remove_sqlite_files(path: Path, *, journals_only: bool = False) -> None:
    for suffix in ("-wal", "-shm", "-journal") if journals_only else ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def backup_sqlite(source: Path, out: Path) -> None:
    """The online backup of `source` into the new file `out` (0600), integrity-checked."""
    if not source.exists():
        raise BackupError(f"no database file at {source}")
    partial = _private_partial(out)
    try:
        _copy_sqlite(source, partial, timeout=30)
        check_sqlite(partial)
    except BaseException:
        _remove_sqlite_files(partial)
        raise
    _keep_as(partial, out)


def _copy_sqlite(source: Path, into: Path, *, timeout: float = 5.0) -> None:
    """SQLite's online backup of `source` (opened read-only) into the file `into`: every page in one
    step, inside one read transaction (one moment's database), left as one self-contained file."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=timeout)
    try:
        dest = sqlite3.connect(into)
        try:
            src.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
    finally:
        src.close()


def check_sqlite(path: Path, *, backup: bool = False) -> None:
    """SQLite's integrity check of a copy; with `backup`, also that it holds a childindex database
    (a schema version), so that a wrong file is refused before anything is written."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        versioned = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
    except sqlite3.DatabaseError:
        raise BackupError(
            f"{path.name} is not a SQLite database: give a file written by `childindex backup` from SQLite"
        ) from None
    finally:
        conn.close()
    if found != ["ok"]:
        raise BackupError(f"the copy failed SQLite's integrity check: {'; '.join(found[:5])}")
    if backup and versioned is None:
        raise BackupError(
            f"{path.name} holds no childindex database (no schema version): check that it is the right file"
        )


def restore_sqlite(backup: Path, target: Path, *, force: bool) -> tuple[str, int]:
    """Copy `backup` beside `target`, check the copy (`check_restored`), and only then let it take
    the target's place: a copy that fails leaves the target as it was. The schema revision and the
    audit events verified."""
    check_sqlite(backup, backup=True)
    if target.exists() and target.stat().st_size > 0 and not force:
        raise BackupError(f"{target} already exists: restore into a new file, or give --force to replace it")
    partial = _private_partial(target)
    try:
        _copy_sqlite(backup, partial)
        checked = _checked(f"sqlite:///{partial}")
    except BaseException:
        _remove_sqlite_files(partial)
        raise
    for suffix in ("-wal", "-shm"):  # (a replaced database's journal must not be replayed onto it)
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(partial, target)
    _remove_sqlite_files(partial)  # (the check's journal, emptied when its last connection closed)
    return checked


def _checked(url: str) -> tuple[str, int]:
    """`check_restored` on the database at `url`, its connections closed after."""
    from directory.db import make_engine

    engine = make_engine(url)
    try:
        return check_restored(engine)
    finally:
        engine.dispose()


# --- PostgreSQL --------------------------------------------------------------------------------


def pg_binary(name: str) -> str:
    """pg_dump or pg_restore: the newest under /usr/lib/postgresql (as tests/services/postgres.sh
    finds PostgreSQL; Debian's /usr/bin wrappers pick a version by cluster), else on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    for folder in reversed(versions):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(f"{name} was not found (install the PostgreSQL client, version 15 or newer)")


@dataclass(frozen=True)
class PgTarget:
    """libpq's view of a SQLAlchemy URL: the URL without its password, and the password apart."""

    dsn: str
    env: dict[str, str]
    name: str

    @classmethod
    def of(cls, url: URL) -> PgTarget:
        env = dict(os.environ)
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)
        plain = url.set(drivername="postgresql", password=None)
        return cls(plain.render_as_string(hide_password=False), env, url.database or "")


def _run(command: list[str], target: PgTarget, what: str) -> None:
    done = subprocess.run(command, env=target.env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or "").strip().splitlines()
        raise BackupError(f"{what} failed (exit {done.returncode}): {detail[-1] if detail else 'no message'}")


def backup_postgres(url: URL, out: Path) -> None:
    target = PgTarget.of(url)
    partial = _private_partial(out)  # (pg_dump writes into it: the file keeps its mode)
    try:
        _run(
            [pg_binary("pg_dump"), "-Fc", "--no-owner", "-f", str(partial), "--dbname", target.dsn],
            target,
            "pg_dump",
        )
        _run([pg_binary("pg_restore"), "--list", str(partial)], target, "reading the dump back")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _keep_as(partial, out)


def postgres_tables(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            ).scalar_one()
        )


def restore_postgres(backup: Path, url: URL, engine: Engine, *, force: bool) -> tuple[str, int]:
    """pg_restore into the target (empty, unless `force`), then `check_restored`. A copy that fails
    the check in a database that was empty is dropped again, leaving it empty; with `force` the
    earlier contents were replaced already (docs/operations.md). The schema revision and the audit
    events verified."""
    target = PgTarget.of(url)
    if postgres_tables(engine) and not force:
        raise BackupError(
            f"the database {target.name} is not empty: restore into a new empty database "
            "(createdb), or give --force to replace what it holds"
        )
    before = database_objects(engine)
    command = [pg_binary("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction"]
    if force:
        command += ["--clean", "--if-exists"]
    _run([*command, "--dbname", target.dsn, str(backup)], target, "pg_restore")
    engine.dispose()
    try:
        return check_restored(engine)
    except Exception:
        if not force:
            _empty_again(engine, keep=before)
        raise


_OUTSIDE = "NOT IN ('pg_catalog', 'information_schema') AND {} NOT LIKE 'pg\\_%'"
_OBJECTS = {
    "FUNCTION": "SELECT p.oid::regprocedure::text FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace "
    f"WHERE n.nspname {_OUTSIDE.format('n.nspname')}",
    "SEQUENCE": "SELECT format('%I.%I', sequence_schema, sequence_name) FROM information_schema.sequences "
    f"WHERE sequence_schema {_OUTSIDE.format('sequence_schema')}",
    "VIEW": "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables "
    f"WHERE table_type = 'VIEW' AND table_schema {_OUTSIDE.format('table_schema')}",
    "TABLE": "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables "
    f"WHERE table_type <> 'VIEW' AND table_schema {_OUTSIDE.format('table_schema')}",
}


def database_objects(engine: Engine) -> set[tuple[str, str]]:
    """A PostgreSQL database's own tables, views, sequences and functions, as (kind, name)."""
    with engine.connect() as conn:
        return {
            (kind, name) for kind, sql in _OBJECTS.items() for name in conn.execute(sa.text(sql)).scalars()
        }


def _empty_again(engine: Engine, *, keep: set[tuple[str, str]]) -> None:
    """Drop what a refused restore made in a database that was empty (every table, view, sequence
    and function not in `keep`; a table's triggers and indexes go with it), in one transaction."""
    order = {"VIEW": 0, "TABLE": 1, "SEQUENCE": 2, "FUNCTION": 3}  # (views first: they use the tables)
    made = sorted(database_objects(engine) - keep, key=lambda made: (order[made[0]], made[1]))
    with engine.begin() as conn:
        for kind, name in made:
            conn.exec_driver_sql(f"DROP {kind} IF EXISTS {name} CASCADE")


# --- the checks after a restore ----------------------------------------------------------------


def check_restored(engine: Engine) -> tuple[str, int]:
    """The copy's schema revision (one the code knows) and how many audit events the key on hand
    verified; BackupError when either is wrong."""
    from alembic.script import ScriptDirectory

    from childindex.migrations import alembic_config
    from directory import audit
    from directory.db import unit_of_work

    with engine.connect() as conn:
        versioned = sa.inspect(conn).has_table("alembic_version")
        query = sa.text("SELECT version_num FROM alembic_version")
        revision = conn.execute(query).scalar_one_or_none() if versioned else None
    if revision is None:
        raise BackupError(
            "the copy holds no childindex database (no schema version): check that it is the right file"
        )
    script = ScriptDirectory.from_config(alembic_config(engine))
    if script.get_revision(revision) is None:
        raise BackupError(f"the copy's schema ({revision}) is newer than this version of childindex knows")
    with unit_of_work(engine) as session:
        result = audit.verify(session, keys=audit.chain_keys())
    if not result.ok:
        problems = "; ".join(result.problems[:3])
        raise BackupError(
            f"the audit key on hand does not verify the copy's audit chain ({problems}): restore the "
            "audit key file(s) of the backup's time beside it (CHILDINDEX_AUDIT_KEY_FILE)"
        )
    return str(revision), result.checked


# --- the commands ------------------------------------------------------------------------------


def _audit(url: str, action: str, detail: dict[str, object]) -> None:
    """Who took a copy of the directory, or restored one, is in the audit log (ids and sizes only)."""
    import getpass

    from directory import audit
    from directory.db import make_engine
    from directory.models import Actor, Purpose, Role

    actor = Actor(
        subject=f"cli:{getpass.getuser()}",
        role=Role.DIRECTORY_ADMIN,
        client_id="childindex-cli",
        purpose=Purpose.ADMINISTRATION,
    )
    engine = make_engine(url)
    try:
        audit.append_alone(engine, actor=actor, action=action, detail=detail)
    finally:
        engine.dispose()


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]Stopped:[/red] {message}.", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _refuse_unless_childindex(url: URL) -> None:
    """Refuse, before any copy, a database that holds no childindex schema (the wrong URL). A SQLite
    file is opened read-only: nothing is written to a file that may be someone else's."""
    from sqlalchemy.pool import NullPool

    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if not path.exists():
            raise BackupError(f"no database file at {path}")
        where, unreadable = path.name, f"{path.name} is not a SQLite database"
        engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", poolclass=NullPool)
    else:
        where, unreadable = f"the database {url.database}", "the database cannot be reached ({})"
        engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            versioned = sa.inspect(conn).has_table("alembic_version")
    except sa.exc.DBAPIError as exc:
        raise BackupError(unreadable.format(type(exc).__name__)) from None
    finally:
        engine.dispose()
    if not versioned:
        raise BackupError(f"{where} holds no childindex database (no schema version): check the database URL")


def backup(
    out: Annotated[Path, typer.Argument(help="The backup file to write (must not exist)")],
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Defaults to CHILDINDEX_DATABASE_URL")
    ] = None,
) -> None:
    """Back up the database while the service runs: SQLite's online backup (integrity-checked) or
    pg_dump -Fc. The key files are not in it: back them up beside it (docs/operations.md)."""
    url = make_url(database_url or Settings().database_url)
    if out.exists():
        raise _fail(f"{out} already exists: give a new file name")
    try:
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise BackupError(f"no backup for {url.get_backend_name()} databases")
        _refuse_unless_childindex(url)
        if url.get_backend_name() == "sqlite":
            backup_sqlite(sqlite_path(url), out)
        else:
            backup_postgres(url, out)
    except (BackupError, sqlite3.Error, OSError) as exc:
        raise _fail(str(exc)) from None
    kind = url.get_backend_name()
    try:
        _audit(
            url.render_as_string(hide_password=False),
            "database.backup",
            {"kind": kind, "bytes": out.stat().st_size},
        )
    except Exception as exc:  # (no copy of every child's record that the audit log does not show)
        out.unlink(missing_ok=True)
        raise _fail(
            "the backup was not kept: who took it could not be written to the audit log "
            f"({type(exc).__name__})"
        ) from None
    console.print(f"[green]Backed up[/green] to {out} ({out.stat().st_size:,} bytes).", highlight=False)
    console.print(
        "Keep beside it, apart and as safely: the audit key file (CHILDINDEX_AUDIT_KEY_FILE) and the "
        "secrets key file (CHILDINDEX_SECRETS_KEY_FILE); without them the copy's audit chain cannot "
        "be verified nor its sealed secrets read.",
        highlight=False,
    )


def _refuse_if_served(to: str) -> None:
    """Refuse to replace a database a childindex service is running on (one of its nodes holds a
    background job's lease): its open connections would go on with the old database, or fail half
    way through the replacement. Stop every node first."""
    from directory.db import make_engine
    from directory.jobs import holders

    engine = make_engine(to)
    try:
        held = [name for name, taken in holders(engine).items() if taken]
    except sa.exc.DBAPIError:
        return  # (nothing answers there: nothing runs on it; the restore says what is wrong)
    finally:
        engine.dispose()
    if held:
        raise BackupError(
            f"a childindex service is running on that database (it holds the {held[0]} job's lease): "
            "stop every node before restoring over it"
        )


def restore(
    backup_file: Annotated[
        Path,
        typer.Argument(
            help="A file written by `childindex backup`", exists=True, dir_okay=False, readable=True
        ),
    ],
    to: Annotated[
        str, typer.Option("--to", help="Where: a new SQLite file's URL or an empty PostgreSQL database's")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace what the target holds")] = False,
) -> None:
    """Restore a backup into a NEW place, then check its schema and that the audit key on hand
    verifies its audit chain. Point CHILDINDEX_DATABASE_URL at it and run `childindex reindex`."""
    from directory.db import make_engine

    url = make_url(to)
    try:
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise BackupError(f"no restore into {url.get_backend_name()} databases")
        if force:
            _refuse_if_served(to)
        if url.get_backend_name() == "sqlite":
            revision, checked = restore_sqlite(backup_file, sqlite_path(url), force=force)
        else:
            engine = make_engine(to)
            try:
                revision, checked = restore_postgres(backup_file, url, engine, force=force)
            finally:
                engine.dispose()
    except (BackupError, sqlite3.Error, OSError, sa.exc.DBAPIError) as exc:
        raise _fail(str(exc) if isinstance(exc, BackupError) else type(exc).__name__) from None
    try:
        _audit(to, "database.restore", {"kind": url.get_backend_name(), "verified_events": checked})
    except Exception as exc:
        raise _fail(
            "the copy is in place and its checks passed, but who restored it could not be written to "
            f"its audit log ({type(exc).__name__}): find out why before the service uses it"
        ) from None
    console.print(
        f"[green]Restored[/green] (schema {revision}; audit chain intact: {checked} event"
        f"{'' if checked == 1 else 's'} verified "
        "with the key on hand). Next: point CHILDINDEX_DATABASE_URL at it, `childindex migrate` if "
        "the code is newer, and `childindex reindex` (the search index is not in the backup).",
        highlight=False,
        soft_wrap=True,
    )
