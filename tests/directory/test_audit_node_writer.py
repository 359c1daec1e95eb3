"""The node's shared audit writer (directory/audit_socket.py): one group commit for every worker,
fed through a Unix socket; what happens when it dies, when the disk is slow, at shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import audit, audit_socket, audit_writer, observe
from directory.audit_socket import RemoteCommit, WriterServer
from directory.audit_writer import AuditUnavailable, GroupCommit
from tests.fixtures.builders import actor

ROOT = Path(__file__).resolve().parents[2]


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _verified(engine: Engine) -> audit.Verification:
    with Session(engine) as s:
        return audit.verify(s)


def _subjects(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return list(s.execute(sa.text("SELECT actor_subject FROM audit_event")).scalars().all())


def _client(engine: Engine, path: str) -> RemoteCommit:
    """A worker's way to the writer at `path`, as `install_writer(..., node_writer=path)` makes it."""
    own = GroupCommit(engine, prepare=audit._draft, write=audit._append_rows)
    return RemoteCommit(path, prepare=audit._to_wire, fallback=own)


def _event(subject: str, **more: Any) -> dict[str, Any]:
    return {"actor": actor(subject=subject), "action": "search", **more}


def _send_raw(sock: socket.socket, ident: int, subject: str) -> None:
    """An event as a worker sends it, on a socket the test reads (or does not read) itself."""
    audit_socket._send(sock, {"id": ident, "event": audit._to_wire(_event(subject))})


_WORKER = """
import sys
from concurrent.futures import ThreadPoolExecutor
from sqlmodel import Session
from childindex import keys
from childindex.settings import Settings
from directory import audit, audit_socket, audit_writer
from directory.db import make_engine
from tests.fixtures.builders import actor

keys.install(Settings())
engine = make_engine(sys.argv[1])
audit.install_writer(engine, node_writer=sys.argv[2])
name = sys.argv[3]

def look(i):
    with Session(engine) as s:
        audit.record(s, actor=actor(subject=f"{name}-{i}"), action="search", detail={"n": i})

with ThreadPoolExecutor(max_workers=25) as pool:
    list(pool.map(look, range(25)))
print("connected" if audit_writer._WRITERS[engine].connected else "fell back")
"""


def test_two_worker_processes_share_the_nodes_writer_in_one_chain(engine: Engine, tmp_path: Path) -> None:
    """50 concurrent searches' events from 2 processes go through the one writer (not the workers'
    own group commits), land once each, in fewer transactions than events, and the chain verifies."""
    path = str(tmp_path / "writer.sock")
    server = audit.serve_writer(engine, path)
    commits: list[int] = []
    original = server.group._write_batch

    def counted(conn: Any, batch: list[Any]) -> object:
        commits.append(len(batch))
        return original(conn, batch)

    server.group._write_batch = counted
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, _url(engine), path, f"w{n}"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for n in range(2)
        ]
        for w in workers:
            out, err = w.communicate(timeout=120)
            assert w.returncode == 0, err.decode()
            assert out.decode().strip() == "connected"
    finally:
        assert server.close()
    assert sum(commits) == 50 and len(commits) < 50  # (events of both shared batches)
    result = _verified(engine)
    assert result.ok, result.problems
    assert result.checked == 50
    assert sorted(_subjects(engine)) == sorted(f"w{n}-{i}" for n in range(2) for i in range(25))
    with Session(engine) as s:
        times = s.execute(sa.text("SELECT at FROM audit_event ORDER BY seq")).scalars().all()
    assert times == sorted(times)
    assert not os.path.exists(path)  # the socket is gone with the writer


def test_the_nodes_writer_and_a_workers_own_commit_append_to_one_chain(
    engine: Engine, tmp_path: Path
) -> None:
    """While one worker falls back to its own group commit, the writer's appends and its own
    interleave in one chain (the chain is ordered in the transaction, not by who writes)."""
    path = str(tmp_path / "writer.sock")
    server = audit.serve_writer(engine, path)
    try:
        through = _client(engine, path)
        alone = _client(engine, str(tmp_path / "nobody-listens.sock"))
        futures = [c.append(_event(f"{n}-{i}")) for i in range(40) for n, c in (("a", through), ("b", alone))]
        for f in futures:
            f.result(timeout=30)
        assert through.connected and not alone.connected
    finally:
        server.close()
    result = _verified(engine)
    assert result.ok and result.checked == 80, result.problems


_DYING_WRITER = """
import sys, time
from childindex import keys
from childindex.settings import Settings
from directory import audit
from directory.db import make_engine

keys.install(Settings())
engine = make_engine(sys.argv[1])
slow = float(sys.argv[3])
written = audit._append_rows
def slow_write(conn, drafts):
    time.sleep(slow)  # a slow disk: the test kills the writer while events are on their way
    return written(conn, drafts)
audit._append_rows = slow_write
server = audit.serve_writer(engine, sys.argv[2])
print("listening", flush=True)
time.sleep(600)
"""


def _writer_process(engine: Engine, path: str, slow: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _DYING_WRITER, _url(engine), path, str(slow)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"listening", proc.stderr.read().decode() if proc.stderr else ""
    return proc


def test_a_writer_that_dies_fails_what_it_held_and_the_worker_carries_on(
    engine: Engine, tmp_path: Path
) -> None:
    """Killed (-9) with events on their way: their callers get AuditUnavailable at once (a 503,
    never a hang, never an answer as if audited), later events are committed by the worker itself
    (durably: they are in the chain), and once a writer is back the worker uses it again."""
    path = str(tmp_path / "writer.sock")
    writer = _writer_process(engine, path, slow=5.0)
    client = _client(engine, path)
    held = [client.append(_event(f"held-{i}")) for i in range(5)]
    assert client.connected
    time.sleep(0.3)
    os.killpg(writer.pid, signal.SIGKILL)
    writer.wait()
    started = time.monotonic()
    for f in held:
        with pytest.raises(AuditUnavailable):
            f.result(timeout=10)
    assert time.monotonic() - started < 5
    later = client.append(_event("after"))
    later.result(timeout=30)  # written by the worker's own group commit
    assert not client.connected
    assert "after" in _subjects(engine)
    result = _verified(engine)
    assert result.ok, result.problems

    back = _writer_process(engine, path, slow=0.0)
    try:
        time.sleep(RemoteCommit.RETRY_SECONDS + 0.1)
        client.append(_event("again")).result(timeout=30)
        assert client.connected
    finally:
        os.killpg(back.pid, signal.SIGKILL)
        back.wait()
    assert _verified(engine).ok


def test_a_writer_that_stops_answering_is_taken_for_gone(engine: Engine, tmp_path: Path) -> None:
    """A writer stopped (SIGSTOP: alive, holding its socket, confirming nothing) must not hold its
    searches forever: after STALL_SECONDS what it holds fails and the worker writes on its own."""
    path = str(tmp_path / "writer.sock")
    writer = _writer_process(engine, path, slow=0.0)
    client = _client(engine, path)
    client.STALL_SECONDS = 1.0
    try:
        client.append(_event("before")).result(timeout=30)
        os.kill(writer.pid, signal.SIGSTOP)
        held = [client.append(_event(f"held-{i}")) for i in range(3)]
        started = time.monotonic()
        for f in held:
            with pytest.raises(AuditUnavailable):
                f.result(timeout=10)
        assert time.monotonic() - started < 5
        client.append(_event("after")).result(timeout=30)
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    assert {"before", "after"} <= set(_subjects(engine))
    assert _verified(engine).ok


def _blocked(
    engine: Engine, gate: threading.Event, max_queue: int, *, wire: bool = False
) -> GroupCommit[Any]:
    def write(conn: Any, drafts: Any) -> object:
        gate.wait(30)
        return audit._append_rows(conn, drafts)

    prepare = audit._from_wire if wire else audit._draft  # (the node's writer receives them as sent)
    return GroupCommit(engine, prepare=prepare, write=write, max_queue=max_queue)


def test_a_slow_disk_pushes_back_instead_of_queueing_without_bound(engine: Engine) -> None:
    """With the writer stuck on a slow commit, events beyond the queue's bound are refused at once
    (AuditUnavailable), and those queued are all written once the disk catches up."""
    gate = threading.Event()
    group = _blocked(engine, gate, max_queue=5)
    first = group.append(_event("first"))  # the writer takes it and waits on the disk
    time.sleep(0.3)
    queued = [group.append(_event(f"q{i}")) for i in range(5)]
    refused = group.append(_event("refused"))
    with pytest.raises(AuditUnavailable):
        refused.result(timeout=0.1)
    assert group.depth == 6
    gate.set()
    for f in [first, *queued]:
        f.result(timeout=30)
    assert group.drain(10) and group.depth == 0
    assert sorted(_subjects(engine)) == sorted(["first", *(f"q{i}" for i in range(5))])


def test_a_worker_refuses_events_beyond_its_bound_while_the_writer_is_behind(
    engine: Engine, tmp_path: Path
) -> None:
    gate = threading.Event()
    path = str(tmp_path / "writer.sock")
    server = WriterServer(path, _blocked(engine, gate, max_queue=3, wire=True))
    client = _client(engine, path)
    client.MAX_IN_FLIGHT = 10
    try:
        first = client.append(_event("first"))  # the writer takes it and waits on the disk
        time.sleep(0.3)
        sent = [client.append(_event(f"s{i}")) for i in range(9)]
        refused = client.append(_event("refused"))
        with pytest.raises(AuditUnavailable):
            refused.result(timeout=0.1)
        # The writer's own bound (3 queued behind what it is writing) answers "busy" to the rest.
        time.sleep(0.5)
        busy = [f for f in sent if f.done()]
        assert len(busy) == 6
        assert all(isinstance(f.exception(), AuditUnavailable) for f in busy)
        gate.set()
        written = [first, *(f for f in sent if f not in busy)]
        for f in written:
            f.result(timeout=30)
    finally:
        gate.set()
        server.close()
    assert sorted(_subjects(engine)) == ["first", "s0", "s1", "s2"]


def test_a_batch_is_acknowledged_in_one_message_and_a_refusal_in_its_own(
    engine: Engine, tmp_path: Path
) -> None:
    """The writer answers each worker once per batch committed (the ids it wrote, and why any
    failed), not once per event: 25 events queued behind one on a slow disk get one reply between
    them, and events refused at once (the queue full) are answered without waiting for a batch."""
    gate = threading.Event()
    path = str(tmp_path / "writer.sock")
    server = WriterServer(path, _blocked(engine, gate, max_queue=25, wire=True))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    buffer = bytearray()
    try:
        sock.connect(path)
        _send_raw(sock, 1, "e1")  # the writer takes it and waits on the disk
        time.sleep(0.3)
        for ident in range(2, 29):  # 25 queue behind it; the last two are refused at once
            _send_raw(sock, ident, f"e{ident}")
        refused: list[dict[str, Any]] = []
        while sum(len(r["failed"]) for r in refused) < 2:
            refused.extend(audit_socket._receive(sock, buffer))
        assert [r["ok"] for r in refused] == [[]] * len(refused)
        assert sorted(f["id"] for r in refused for f in r["failed"]) == [27, 28]
        assert {f["error"] for r in refused for f in r["failed"]} == {"busy"}
        gate.set()
        replies: list[dict[str, Any]] = []
        while sum(len(r["ok"]) for r in replies) < 26:
            replies.extend(audit_socket._receive(sock, buffer))
        assert [r["ok"] for r in replies] == [[1], list(range(2, 27))]
        assert all(r["failed"] == [] for r in replies)
    finally:
        gate.set()
        sock.close()
        server.close()
    assert len(_subjects(engine)) == 26
    assert _verified(engine).ok


def test_a_worker_that_stops_reading_its_acknowledgements_does_not_hold_the_writer(
    engine: Engine, tmp_path: Path
) -> None:
    """Acknowledgements go out from the writer's own thread: a worker that stops reading them
    (stopped, hung) would fill its socket and freeze every worker's audit. The send gives up after
    SEND_TIMEOUT and that worker's connection is closed; the others are written and answered."""
    path = str(tmp_path / "writer.sock")
    server = WriterServer(path, GroupCommit(engine, prepare=audit._from_wire, write=audit._append_rows))
    server.SEND_TIMEOUT = 0.5
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    healthy = _client(engine, path)
    try:
        stuck.connect(path)
        stuck.settimeout(5)
        deadline = time.monotonic() + 10
        while not server._connections and time.monotonic() < deadline:
            time.sleep(0.01)
        for conn in list(server._connections):  # (a few unread acknowledgements fill it)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sent = 0
        with contextlib.suppress(OSError):  # (once the writer has closed it)
            for ident in range(1, 400):
                _send_raw(stuck, ident, f"stuck{ident}")
                sent += 1
                time.sleep(0.005)  # (one batch each: as many acknowledgements as events)
        started = time.monotonic()
        answered = [healthy.append(_event(f"healthy{i}")) for i in range(5)]
        for done in answered:
            done.result(timeout=10)
        assert time.monotonic() - started < 10
        while stuck.recv(65536):  # what was sent before it gave up, then the close
            pass
    finally:
        stuck.close()
        server.close(timeout=5)
    subjects = _subjects(engine)
    assert sorted(s for s in subjects if s.startswith("healthy")) == [f"healthy{i}" for i in range(5)]
    assert 0 < len([s for s in subjects if s.startswith("stuck")]) <= sent
    assert _verified(engine).ok


def test_shutdown_drains_every_event_queued_before_the_writer_goes(engine: Engine, tmp_path: Path) -> None:
    gate = threading.Event()
    path = str(tmp_path / "writer.sock")
    server = WriterServer(path, _blocked(engine, gate, max_queue=1000, wire=True))
    client = _client(engine, path)
    sent = [client.append(_event(f"d{i}")) for i in range(30)]
    time.sleep(0.3)
    threading.Timer(0.5, gate.set).start()
    assert server.close(timeout=30)
    for f in sent:
        f.result(timeout=10)
    assert len(_subjects(engine)) == 30
    assert _verified(engine).ok


def test_an_audit_that_cannot_be_made_durable_answers_503_not_the_results(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.directory.test_api import who

    def unavailable(engine: Engine, **event: Any) -> Future[None]:
        done: Future[None] = Future()
        done.set_exception(AuditUnavailable("the audit writer stopped"))
        return done

    monkeypatch.setattr(audit, "submit", unavailable)
    query = {"given": "Ada", "family": "Lovelace", "birth_date": "2019-01-01"}
    answer = client.post("/api/v1/children/search", json=query, headers=who())
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"]
    assert "hits" not in answer.text


def test_install_writer_without_a_node_writer_keeps_the_process_own_group_commit(engine: Engine) -> None:
    audit.install_writer(engine)
    assert isinstance(audit_writer._WRITERS[engine], GroupCommit)


def _batches(engine: Engine, *, linger: float) -> tuple[GroupCommit[Any], list[int], list[threading.Event]]:
    """A group commit that records each batch's size and holds each write until its gate opens."""
    sizes: list[int] = []
    gates: list[threading.Event] = [threading.Event() for _ in range(10)]

    def write(conn: Any, drafts: Any) -> object:
        sizes.append(len(drafts))
        gates[len(sizes) - 1].wait(30)
        return audit._append_rows(conn, drafts)

    return GroupCommit(engine, prepare=audit._draft, write=write, linger=linger), sizes, gates


def _until(check: Any, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_under_load_a_batch_waits_for_company_and_a_lone_event_never_does(engine: Engine) -> None:
    """After a batch of more than one event, the next waits up to `linger` for more before it is
    written (fewer, larger commits); after a batch of one, it is written at once."""
    group, sizes, gates = _batches(engine, linger=0.5)
    lone = group.append(_event("lone"))
    _until(lambda: sizes == [1])  # (the batch before held none: written at once)
    pair = [group.append(_event(f"pair{i}")) for i in range(2)]
    gates[0].set()
    _until(lambda: sizes == [1, 2])  # after a batch of one: no waiting, both queued are taken
    late = group.append(_event("late"))
    gates[1].set()
    time.sleep(0.1)  # the writer now holds "late", waiting for company: the batch before held two
    assert sizes == [1, 2]
    company = [group.append(_event(f"company{i}")) for i in range(2)]
    gates[2].set()
    for f in [lone, *pair, late, *company]:
        f.result(timeout=10)
    assert sizes == [1, 2, 3]
    assert sorted(_subjects(engine)) == sorted(["lone", "pair0", "pair1", "late", "company0", "company1"])
    assert _verified(engine).ok


def test_a_batch_whose_events_came_slowly_does_not_make_the_next_wait(engine: Engine) -> None:
    """A batch of two is company only if they came fast enough for the wait to gather about
    COMPANY events (rate × linger): two events a few tenths of a second apart make the next event
    wait no longer than the write (else a long linger feeds itself at low rates)."""
    linger = 0.5  # COMPANY events in 0.5 s: 8 a second at least
    group, sizes, gates = _batches(engine, linger=linger)
    first = group.append(_event("first"))
    _until(lambda: sizes == [1])  # taken at once; its write waits on gates[0]
    slow = [group.append(_event(f"slow{i}")) for i in range(2)]
    time.sleep(0.45)  # 2 events over at least 0.45 s: under 4.5 a second, 2.2 in a linger
    gates[0].set()
    _until(lambda: sizes == [1, 2])
    after = group.append(_event("after"))
    started = time.monotonic()
    gates[1].set()
    gates[2].set()
    after.result(timeout=10)
    assert sizes == [1, 2, 1]
    assert time.monotonic() - started < linger / 2  # written at once, not after the linger
    for f in [first, *slow]:
        f.result(timeout=10)
    assert _verified(engine).ok


def test_without_linger_or_after_a_lone_event_nothing_waits(engine: Engine) -> None:
    """With no linger, and with a long one when each event comes alone (each batch before held
    one), every event is written in a batch of its own at once."""
    for linger, most in ((0.0, 0.5), (5.0, 2.5)):
        group, sizes, gates = _batches(engine, linger=linger)
        for gate in gates:
            gate.set()
        started = time.monotonic()
        for i in range(3):
            group.append(_event(f"{linger}-{i}")).result(timeout=10)
        assert sizes == [1, 1, 1] and time.monotonic() - started < most, linger


class _Depths(observe.Observer):
    def __init__(self) -> None:
        self.depths: list[int] = []

    def audit_queued(self, depth: int) -> None:
        self.depths.append(depth)


def test_a_stuck_writers_queue_shows_on_the_gauge_as_it_grows(engine: Engine) -> None:
    """The queue-depth gauge is not set for every event, but a queue growing behind a stuck commit
    shows on it in steps of GAUGE_STEP, and once the writer takes the queue it reads what is left."""
    heard = _Depths()
    before = observe.observer()
    observe.install(heard)
    gate = threading.Event()
    try:
        group = _blocked(engine, gate, max_queue=500)
        first = group.append(_event("first"))  # the writer takes it and waits on the disk
        time.sleep(0.3)
        step = GroupCommit.GAUGE_STEP
        queued = [group.append(_event(f"q{i}")) for i in range(3 * step + 1)]
        assert heard.depths[-3:] == [step, 2 * step, 3 * step]  # (the last event was not a step)
        gate.set()
        for f in [first, *queued]:
            f.result(timeout=10)
    finally:
        observe.install(before)
    assert heard.depths[-1] == 0  # the batch after took all that was left
