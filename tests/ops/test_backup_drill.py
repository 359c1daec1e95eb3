"""The backup-restore drill, on SQLite and PostgreSQL: back up while a running server takes writes
and searches, restore to a new place, `childindex audit verify` passes on the copy, the search index
rebuilds (`childindex reindex`) and searches answer with the children known at backup time."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from childindex.app import create_app
from childindex.settings import Settings
from directory import keyfile
from directory.db import make_engine
from tests.conftest import POSTGRES_URL, _truncate_all, need_service
from tests.directory.test_serve import _free_port


def _dob(n: int) -> str:
    return (date(2012, 1, 1) + timedelta(days=n)).isoformat()


ADMIN = {"X-Dev-Actor": "subject=admin; role=directory_admin", "X-Purpose-Of-Use": "administration"}
READER = {"X-Dev-Actor": "subject=hv; role=practitioner", "X-Purpose-Of-Use": "considering-caf"}
# (the copy holds the shared rate-limit counters too: the reader of the copy is another person)
LATER = {"X-Dev-Actor": "subject=hv2; role=practitioner", "X-Purpose-Of-Use": "considering-caf"}
CLI = [sys.executable, "-c", "from childindex.cli import main; main()"]


def _family(n: int) -> str:
    return "Drill" + "".join(chr(ord("a") + int(d)) for d in f"{n:04d}")  # (letters only: a name)


def _cli(*args: str, url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, "CHILDINDEX_DATABASE_URL": url, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


class Places:
    """The source database the server runs on, and the new place to restore into."""

    def __init__(self, source: str, target: str, cleanup: list[str]) -> None:
        self.source, self.target, self.cleanup = source, target, cleanup


@pytest.fixture(params=["sqlite", "postgres"])
def places(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Places]:
    if request.param == "sqlite":
        yield Places(f"sqlite:///{tmp_path / 'live.db'}", f"sqlite:///{tmp_path / 'restored.db'}", [])
        return
    if not POSTGRES_URL:
        need_service("PostgreSQL", "CHILDINDEX_TEST_POSTGRES_URL")
    pg = request.getfixturevalue("postgres_engine")
    _truncate_all(pg)
    url = make_url(POSTGRES_URL or "")
    copy = f"{url.database}_drill_copy"
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{copy}"'))
    try:
        yield Places(POSTGRES_URL or "", url.set(database=copy).render_as_string(hide_password=False), [copy])
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
        admin.dispose()


def _serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CHILDINDEX_DATABASE_URL": url,
        "CHILDINDEX_ENVIRONMENT": "development",
        "CHILDINDEX_PORT": str(port),
        "CHILDINDEX_INDEXER_INTERVAL_SECONDS": "0.2",
        "CHILDINDEX_LOG_LEVEL": "warning",
        "CHILDINDEX_SEARCH_RATE_PER_MINUTE": "100000",  # (one reader searching flat out)
    }
    out = log.open("wb")
    return subprocess.Popen([*CLI, "serve"], env=env, stdout=out, stderr=out, start_new_session=True)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "serve was not ready within 90 s"
        time.sleep(0.3)


def _create(base: str, client: httpx.Client, n: int) -> str:
    body = {
        "names": [{"given": "Rowan", "family": _family(n)}],
        "date_of_birth": _dob(n),
        "sex": "female",
        "address": {"line1": "1 Drill Road", "postcode": "OX4 1AB"},
    }
    r = client.post(f"{base}/api/v1/children", json=body, headers=ADMIN, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_backup_under_load_restore_verify_reindex_and_search(places: Places, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = _serve(places.source, port, log)
    created: dict[int, str] = {}
    stop = threading.Event()
    errors: list[BaseException] = []
    searches = 0

    def writer() -> None:
        with httpx.Client() as client:
            n = len(created)
            while not stop.is_set():
                try:
                    created[n] = _create(base, client, n)
                except BaseException as exc:  # (reported below)
                    errors.append(exc)
                    return
                n += 1

    def searcher() -> None:
        nonlocal searches
        with httpx.Client() as client:
            while not stop.is_set():
                query = {"given": "Rowan", "family": _family(0), "birth_date": _dob(0)}
                r = client.post(f"{base}/api/v1/children/search", json=query, headers=READER, timeout=30)
                if r.status_code != 200:
                    errors.append(AssertionError(r.text))
                    return
                searches += 1

    out = tmp_path / "drill.backup"
    try:
        _wait_ready(base, proc, log)
        with httpx.Client() as client:
            for n in range(20):
                created[n] = _create(base, client, n)
        threads = [threading.Thread(target=writer), threading.Thread(target=searcher)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        known = dict(created)  # committed before the backup began
        done = _cli("backup", str(out), url=places.source)
        made_by_end = dict(created)  # every child the copy may hold was created by now
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert done.returncode == 0, done.stdout + done.stderr
        assert "AUDIT_KEY_FILE" in done.stdout  # (says what to keep beside it)
        assert _mode(out) == 0o600  # (every child's record: its owner's alone, whatever the umask)
        assert searches > 0 and len(made_by_end) > len(known)
        after = {n: created[n] for n in created if n not in made_by_end}
    finally:
        stop.set()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert after, "no child was created after the backup ended"
    password_free = done.stdout + done.stderr
    if make_url(places.source).password:
        assert str(make_url(places.source).password) not in password_free

    # Restore to a new place; the checks pass with the key on hand.
    restored = _cli("restore", str(out), "--to", places.target, url=places.target)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "audit chain intact" in restored.stdout.lower()
    if places.target.startswith("sqlite"):
        assert _mode(Path(make_url(places.target).database or "")) == 0o600
    again = _cli("restore", str(out), "--to", places.target, url=places.target)
    assert again.returncode == 1 and "--force" in again.stdout  # (never over what holds data)

    verified = _cli("audit", "verify", url=places.target)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    reindexed = _cli("reindex", url=places.target)
    assert reindexed.returncode == 0, reindexed.stdout + reindexed.stderr

    engine = make_engine(places.target)
    with engine.connect() as conn:
        ids = {str(i).replace("-", "") for i in conn.execute(sa.text("SELECT id FROM child")).scalars()}
        restores = conn.execute(sa.text("SELECT count(*) FROM audit_event WHERE action = 'database.restore'"))
        assert restores.scalar_one() == 1  # (who restored it, in the copy's own chain)
    engine.dispose()
    source = make_engine(places.source)
    with source.connect() as conn:  # (who took the copy: in the source's chain, after the snapshot)
        taken = conn.execute(sa.text("SELECT count(*) FROM audit_event WHERE action = 'database.backup'"))
        assert taken.scalar_one() == 1
    source.dispose()
    assert {i.replace("-", "") for i in known.values()} <= ids  # everything committed before it began
    assert ids <= {i.replace("-", "") for i in made_by_end.values()}  # nothing made after it ended

    settings = Settings(environment="development", database_url="sqlite://", indexer_interval_seconds=0)
    engine = make_engine(places.target)
    with TestClient(create_app(settings, engine=engine)) as client:
        for n in (0, max(known)):
            query = {"given": "Rowan", "family": _family(n), "birth_date": _dob(n)}
            found = client.post("/api/v1/children/search", json=query, headers=LATER).json()
            assert "hits" in found, found
            assert [h["child_id"] for h in found["hits"]][:1] == [known[n]], found
        n = min(after)
        query = {"given": "Rowan", "family": _family(n), "birth_date": _dob(n)}
        hits = client.post("/api/v1/children/search", json=query, headers=LATER).json()["hits"]
        assert created[n] not in [h["child_id"] for h in hits]  # (made after the backup: not in it)
    engine.dispose()


def test_restore_refuses_when_the_key_on_hand_does_not_verify_the_chain(
    places: Places, tmp_path: Path
) -> None:
    """The copy is refused, and not left where the service could be pointed at it: the new place
    is as it was (no file; an empty database), and a SQLite target given with --force keeps what
    it held."""
    from childindex.migrations import upgrade
    from directory import audit
    from directory.db import unit_of_work
    from directory.models import Actor, Purpose, Role

    engine = make_engine(places.source)
    upgrade(engine)
    actor = Actor(subject="drill", role=Role.DIRECTORY_ADMIN, purpose=Purpose.ADMINISTRATION)
    with unit_of_work(engine) as session:
        audit.append(session, actor=actor, action="drill.event")
    engine.dispose()
    out = tmp_path / "keyed.backup"
    assert _cli("backup", str(out), url=places.source).returncode == 0
    other = {"CHILDINDEX_AUDIT_KEY_FILE": str(keyfile.generate(tmp_path / "other-audit.key", "audit").path)}
    refused = _cli("restore", str(out), "--to", places.target, url=places.target, env=other)
    assert refused.returncode == 1
    assert "audit key" in refused.stdout and "CHILDINDEX_AUDIT_KEY_FILE" in refused.stdout
    if places.target.startswith("postgresql"):
        assert _objects(places.target) == set()
    else:
        target = Path(make_url(places.target).database or "")
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(target.name)) == []
        # Over a database that holds data (--force): it is kept, byte for byte, when the copy fails.
        assert _cli("restore", str(out), "--to", places.target, url=places.target).returncode == 0
        held = target.read_bytes()
        forced = _cli("restore", str(out), "--to", places.target, "--force", url=places.target, env=other)
        assert forced.returncode == 1 and "audit key" in forced.stdout, forced.stdout + forced.stderr
        assert target.read_bytes() == held
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(target.name)) == [target.name]


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _objects(url: str) -> set[tuple[str, str]]:
    """A PostgreSQL database's own tables, views, sequences and functions."""
    from childindex.cli.backup import database_objects

    engine = make_engine(url)
    try:
        return database_objects(engine)
    finally:
        engine.dispose()


def _tables(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_restore_refuses_a_missing_a_wrong_or_an_empty_file_and_writes_nothing(
    places: Places, tmp_path: Path
) -> None:
    """Each wrong backup file gets a message naming what is wrong, and the target is left as it was."""
    missing = _cli("restore", str(tmp_path / "nowhere.backup"), "--to", places.target, url=places.target)
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    folder = tmp_path / "a-folder"
    folder.mkdir()
    directory = _cli("restore", str(folder), "--to", places.target, url=places.target)
    assert directory.returncode == 2 and "is a directory" in directory.stderr, directory.stderr
    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"this is not a backup\n" * 200)
    empty = tmp_path / "empty.backup"
    empty.write_bytes(b"")
    for wrong in (garbage, empty):
        refused = _cli("restore", str(wrong), "--to", places.target, url=places.target)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "Stopped:" in refused.stdout and "Traceback" not in refused.stdout + refused.stderr
        said = refused.stdout.replace("\n", " ")
        if places.target.startswith("sqlite"):
            assert wrong.name in said and ("not a SQLite database" in said or "no childindex" in said), said
            assert not (tmp_path / "restored.db").exists() or _tables(places.target) == []
        else:
            assert "pg_restore failed" in said, said
            assert _tables(places.target) == []

    # A good copy of a database that is not childindex's: refused, and nothing of it left behind.
    foreign = _foreign_copy(places, tmp_path)
    refused = _cli("restore", str(foreign), "--to", places.target, url=places.target)
    assert refused.returncode == 1 and "no childindex database" in refused.stdout.replace("\n", " "), (
        refused.stdout
    )
    if places.target.startswith("sqlite"):
        assert not (tmp_path / "restored.db").exists()
    else:
        assert _objects(places.target) == set()


def _foreign_copy(places: Places, tmp_path: Path) -> Path:
    """A backup, in the format of the place's database, of a database that is not childindex's."""
    from childindex.cli.backup import backup_postgres

    if places.target.startswith("sqlite"):
        return _invoices_sqlite(tmp_path / "foreign.db")
    url = make_url(places.target)
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    name = f"{url.database}_foreign"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        other = make_engine(url.set(database=name).render_as_string(hide_password=False))
        with other.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE invoices (n serial PRIMARY KEY)")
            conn.exec_driver_sql("CREATE VIEW big_invoices AS SELECT n FROM invoices WHERE n > 10")
            conn.exec_driver_sql("CREATE FUNCTION twice(i int) RETURNS int AS 'SELECT i * 2' LANGUAGE SQL")
        other.dispose()
        out = tmp_path / "foreign.dump"
        backup_postgres(url.set(database=name), out)
        return out
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_backup_refuses_a_database_that_is_not_childindexs_and_keeps_no_unaudited_copy(
    places: Places, tmp_path: Path
) -> None:
    """`backup` of a database that holds no childindex schema is refused before any copy; a copy
    whose taking cannot be written to the audit log is not kept."""
    from childindex.migrations import upgrade

    foreign = _foreign_source(places, tmp_path)
    out = tmp_path / "wrong.backup"
    refused = _cli("backup", str(out), url=foreign)
    assert refused.returncode == 1 and "no childindex database" in refused.stdout.replace("\n", " "), (
        refused.stdout + refused.stderr
    )
    assert "Traceback" not in refused.stdout + refused.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(out.name)] == []

    engine = make_engine(places.source)
    upgrade(engine)
    with engine.begin() as conn:  # (the audit log refuses every new event)
        if places.source.startswith("sqlite"):
            conn.exec_driver_sql(
                "CREATE TRIGGER no_more_audit BEFORE INSERT ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION no_more_audit() RETURNS trigger "
                "AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER no_more_audit BEFORE INSERT ON audit_event "
                "FOR EACH ROW EXECUTE FUNCTION no_more_audit()"
            )
    try:
        unaudited = _cli("backup", str(out), url=places.source)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "DROP TRIGGER no_more_audit"
                + ("" if places.source.startswith("sqlite") else " ON audit_event")
            )
            if not places.source.startswith("sqlite"):
                conn.exec_driver_sql("DROP FUNCTION no_more_audit()")
        engine.dispose()
    assert unaudited.returncode == 1, unaudited.stdout + unaudited.stderr
    assert "not kept" in unaudited.stdout and "audit log" in unaudited.stdout, unaudited.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(out.name)] == []


def _foreign_source(places: Places, tmp_path: Path) -> str:
    """The URL of a database that is not childindex's, beside the place's source."""
    if places.source.startswith("sqlite"):
        return f"sqlite:///{_invoices_sqlite(tmp_path / 'invoices.db')}"
    return make_url(places.target).render_as_string(hide_password=False)  # (empty: no schema)


def _invoices_sqlite(path: Path) -> Path:
    """A SQLite database of someone else's (one table, no childindex schema)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (n INTEGER)")
    conn.commit()
    conn.close()
    return path


def test_backups_to_one_file_at_once_leave_one_good_copy_and_refuse_the_rest(
    places: Places, tmp_path: Path
) -> None:
    """Six `childindex backup` of the same database to the same file, started together: one writes
    it, each of the others is refused with a message (the file exists, or another is writing it),
    and what is left is one good backup (0600) and no partial file. (Whether they overlap depends
    on how fast each process starts: the test below makes them overlap.) A partial file left by a
    stopped run refuses the next one, naming it, and is not written over."""
    from childindex.migrations import upgrade

    engine = make_engine(places.source)
    upgrade(engine)
    engine.dispose()
    out = tmp_path / "once.backup"
    env = {**os.environ, "CHILDINDEX_DATABASE_URL": places.source, "COLUMNS": "200"}
    runs = [
        subprocess.Popen(
            [*CLI, "backup", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    said = [(*run.communicate(timeout=300), run.returncode) for run in runs]
    assert sorted(code for _, _, code in said) == [0, 1, 1, 1, 1, 1], said
    for stdout, stderr, code in said:
        assert "Traceback" not in stdout + stderr
        if code == 1:
            message = stdout.replace("\n", " ")
            assert any(
                reason in message
                for reason in ("already exists", "another backup or restore is writing it", "appeared while")
            ), message
    assert _mode(out) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(out.name)] == [out.name]
    restored = _cli("restore", str(out), "--to", places.target, url=places.target)
    assert restored.returncode == 0, restored.stdout + restored.stderr

    stale = tmp_path / "next.backup.partial"
    stale.write_bytes(b"left by a stopped run")
    refused = _cli("backup", str(tmp_path / "next.backup"), url=places.source)
    assert refused.returncode == 1 and str(stale) in refused.stdout.replace("\n", ""), refused.stdout
    assert stale.read_bytes() == b"left by a stopped run" and not (tmp_path / "next.backup").exists()


def test_backups_that_overlap_write_one_file_and_refuse_the_others(tmp_path: Path) -> None:
    """Eight backups of one SQLite database into one file, released together from a barrier so that
    they overlap: exactly one writes it, the others are refused (never two writing one partial
    file), and the one written is a good copy."""
    from childindex.cli.backup import BackupError, backup_sqlite, check_sqlite
    from childindex.migrations import upgrade

    source = tmp_path / "live.db"
    engine = make_engine(f"sqlite:///{source}")
    upgrade(engine)
    with engine.begin() as conn:  # (some pages to copy, so that the copies take a while)
        conn.exec_driver_sql("CREATE TABLE ballast (b BLOB)")
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) "
            "INSERT INTO ballast SELECT randomblob(4096) FROM n"
        )
    engine.dispose()
    out = tmp_path / "overlap.backup"
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def one() -> None:
        barrier.wait()
        try:
            backup_sqlite(source, out)
            outcomes.append("written")
        except BackupError as exc:
            outcomes.append(str(exc))
        except Exception as exc:  # (anything else is a failure, named below)
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 8 and outcomes.count("written") == 1, outcomes
    assert all(
        "another backup or restore is writing it" in o or "appeared while" in o
        for o in outcomes
        if o != "written"
    ), outcomes
    check_sqlite(out, backup=True)
    assert _mode(out) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(out.name)] == [out.name]


def test_restore_will_not_replace_a_database_a_service_is_running_on(places: Places, tmp_path: Path) -> None:
    """--force over a database one of whose background job leases is held (a `childindex serve`
    is running on it) is refused, and the database is untouched; once the lease is given up the
    same restore goes ahead."""
    from childindex.migrations import upgrade
    from directory.jobs import Lease

    source = make_engine(places.source)
    upgrade(source)
    source.dispose()
    out = tmp_path / "over.backup"
    assert _cli("backup", str(out), url=places.source).returncode == 0
    assert _cli("restore", str(out), "--to", places.target, url=places.target).returncode == 0
    target = make_engine(places.target)
    lease = Lease(target, "indexer")  # (as a serving node holds it)
    assert lease.acquire()
    try:
        refused = _cli("restore", str(out), "--to", places.target, "--force", url=places.target)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "service is running" in refused.stdout and "indexer" in refused.stdout, refused.stdout
        with target.connect() as conn:  # (untouched: its own restore event is still the newest)
            newest = conn.execute(sa.text("SELECT action FROM audit_event ORDER BY seq DESC LIMIT 1"))
            assert newest.scalar_one() == "database.restore"
    finally:
        lease.release()
    again = _cli("restore", str(out), "--to", places.target, "--force", url=places.target)
    assert again.returncode == 0, again.stdout + again.stderr
    target.dispose()
