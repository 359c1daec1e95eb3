"""The audit log's group commit: infrastructure, apart from the audit rules (directory.audit).

One writer thread per engine, started on demand and gone after a second with nothing to do,
appends every event queued meanwhile in a single transaction: a busy service takes the write
lock once per batch instead of once per search, and each caller still waits until its own event
is durable. On a SQLite file the writers of every process on the machine take turns through a
lock file, and each writes on a driver connection of its own.

The writer knows nothing of what it writes: its caller gives it how to prepare an event before
the write lock is taken (`prepare`) and how to write a batch of them in the transaction
(`write`). `directory.audit.submit` and `record` are the way in.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Engine

from directory.db import SqliteWriter, Writable, is_sqlite_file, sqlite_transaction
from directory.observe import observer

log = logging.getLogger("childindex.audit")

D = TypeVar("D")
"""An event as prepared for the write (for the audit log, its row but for its place in the chain)."""

Prepare = Callable[[dict[str, Any]], D]
Write = Callable[[Writable, list[D]], object]


class AuditUnavailable(Exception):
    """An event could not be made durable now (the queue is full: the disk is slower than the
    events come; or the node's shared writer stopped while the event was on its way): the caller
    must not be answered as if it were audited. Every surface answers 503 with Retry-After."""


class Committer(Protocol):
    """What `submit` hands an event to: this process's group commit, or the node's shared writer
    (directory/audit_socket.py)."""

    def append(self, event: dict[str, Any]) -> Future[None]: ...


def install(
    engine: Engine, *, prepare: Prepare[D], write: Write[D], linger: float | None = None
) -> Committer:
    """The engine's group commit, made now if it has none: the app wires its engine's writer in at
    start-up; a command or a test that never did gets one on its first event (`submit`)."""
    with _WRITERS_LOCK:
        writer = _WRITERS.get(engine)
        if writer is None:
            writer = _WRITERS[engine] = GroupCommit(engine, prepare=prepare, write=write, linger=linger)
    return writer


def install_committer(engine: Engine, committer: Committer) -> None:
    """Route the engine's events to `committer` from now on (the node's shared writer)."""
    with _WRITERS_LOCK:
        _WRITERS[engine] = committer


def submit(engine: Engine, event: dict[str, Any], *, prepare: Prepare[D], write: Write[D]) -> Future[None]:
    """Queue an event for the engine's group commit (made on first use with `prepare` and `write`
    when the app did not install one); the future is done once the event is durable, or holds
    the error."""
    # No lock to find the writer: the engine has had it since start-up or its first event.
    writer = _WRITERS.get(engine)
    if writer is None:
        writer = install(engine, prepare=prepare, write=write)
    return writer.append(event)


@dataclass(eq=False)
class _Pending:
    event: dict[str, Any]
    done: Future[None] = field(default_factory=Future)


class GroupCommit(Generic[D]):
    """One writer thread per engine, started on demand and gone after a second with nothing to do."""

    MAX_BATCH = 200
    IDLE_SECONDS = 1.0
    MAX_QUEUE = 5000
    """Events waiting beyond this are refused (AuditUnavailable, a 503) rather than queued: a disk
    slower than the events come must push back on the callers, not grow the wait without bound
    (5,000 is 10 s of searches at 500/s, 25 batches of MAX_BATCH)."""
    LINGER_SECONDS = 0.016
    """Under load, how long a batch waits for more before it is written (see COMPANY for when). A
    commit's cost is mostly per commit, not per event (taking the lock, the chain's head, the
    table's last pages, the sync), and the workers pay per commit too: one acknowledgement message
    each, and on SQLite a reader that finds the database changed starts its page cache afresh.
    At 1,000,000 children, two workers flat out (2026-12-06, docs/audit.md): 2 ms gave 216 commits/s
    of 3.9 events (16 clients) and 806 searches/s at 2.39 ms of CPU each (32 clients); 8 ms, 82
    commits/s of 10.7 events and 894/s at 2.15 ms. 16 ms since 2026-12-07, with COMPANY: beside a
    CPU-bound neighbour, 8 ms could not keep 500 searches/s where a longer wait could (2.5-2.6
    against 3.2-3.4 ms of CPU a search). A lone event (the batch before held one) never waits."""
    COMPANY = 4
    """A batch waits for company only when the events came fast enough, over the batch before, for
    the wait to gather about this many (rate × LINGER_SECONDS). Without it a linger feeds itself at
    low rates: at 100 searches/s a 16 ms wait gathers 1.6 events, so the batch after holds two and
    waits again, and every search waited 16 ms (p50 19.5 against 5.3 ms, measured) for no saving."""
    GAUGE_STEP = 16
    """The queue-depth gauge is set when a batch is taken and, as events are queued, at every
    multiple of this: a stuck writer's queue still shows as it grows (the alert is at 1,000), and
    the gauge, a write to a shared file under `--workers`, is not set for every event (it was a
    fifteenth of the node's writer's Python time)."""

    def __init__(
        self,
        engine: Engine,
        *,
        prepare: Prepare[D],
        write: Write[D],
        max_queue: int | None = None,
        linger: float | None = None,
    ) -> None:
        self._engine = weakref.ref(engine)
        self._prepare = prepare
        self._write_batch = write
        self._queue: deque[_Pending] = deque()
        lock = threading.Lock()
        self._ready = threading.Condition(lock)  # the writer thread waits on it for events
        self._idle = threading.Condition(lock)  # `drain` waits on it for the writes to end
        self._running = False
        self._lingering = False  # the writer holds a batch back for company (see LINGER_SECONDS)
        self._outstanding = 0  # queued or being written
        self.max_queue = max_queue or self.MAX_QUEUE
        self.linger = self.LINGER_SECONDS if linger is None else linger
        self.after_batch: list[Callable[[], object]] = []
        """Called in the writer thread once each batch's futures are all done, before `drain` can
        see it written: the node's writer sends a batch's acknowledgements together from here."""

    @property
    def depth(self) -> int:
        """Events queued or being written."""
        return self._outstanding

    def append(self, event: dict[str, Any]) -> Future[None]:
        """Queue an event; the future is done once it is durable, or holds the error."""
        pending = _Pending(event)
        # Running from the start, so it cannot be cancelled: a caller that stops waiting (a client
        # gone) does not stop its event being written.
        pending.done.set_running_or_notify_cancel()
        with self._ready:
            if len(self._queue) >= self.max_queue:
                pending.done.set_exception(
                    AuditUnavailable(f"the audit log is {len(self._queue)} events behind: try again shortly")
                )
                return pending.done
            self._outstanding += 1
            self._queue.append(pending)
            if len(self._queue) % self.GAUGE_STEP == 0:
                observer().audit_queued(len(self._queue))
            if self._running:
                # (a writer lingering for company is woken only by a full batch: each wake-up to
                # count the queue cost a sixth of the node's writer's CPU)
                if not self._lingering or len(self._queue) >= self.MAX_BATCH:
                    self._ready.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="audit-group-commit", daemon=True).start()
        return pending.done

    def _run(self) -> None:
        own = _OwnConnection()
        last = 0  # events in the batch before: more than one, and the next may wait `linger` for company
        rate = 0.0  # how fast they came: events a second since the batch before it was taken
        taken = time.monotonic()
        try:
            while True:
                with self._ready:
                    if not self._queue and not self._ready.wait_for(
                        lambda: bool(self._queue), self.IDLE_SECONDS
                    ):
                        self._running = False
                        return
                    busy = last > 1 and rate * self.linger >= self.COMPANY
                    if self.linger and busy and len(self._queue) < self.MAX_BATCH:
                        self._lingering = True
                        try:
                            self._ready.wait_for(lambda: len(self._queue) >= self.MAX_BATCH, self.linger)
                        finally:
                            self._lingering = False
                    batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.MAX_BATCH))]
                    last, now = len(batch), time.monotonic()
                    rate, taken = last / max(now - taken, 1e-6), now
                    observer().audit_queued(len(self._queue))
                engine = self._engine()
                if engine is None:  # nobody can be waiting on an engine that is gone
                    return
                try:
                    self._write(engine, batch, own)
                    for hook in self.after_batch:
                        try:
                            hook()
                        except Exception:  # (the batch is written: a hook's failure must not stop the writer)
                            log.exception("after an audit batch")
                finally:
                    with self._ready:
                        self._outstanding -= len(batch)
                        self._idle.notify_all()
        finally:
            own.drop()

    def drain(self, timeout: float) -> bool:
        """Wait until every event queued so far is written (or failed); False if `timeout` ran out."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def _write(self, engine: Engine, batch: list[_Pending], own: _OwnConnection) -> None:
        try:
            prepared = [self._prepare(pending.event) for pending in batch]
            started = time.perf_counter()
            with _writers_turn(engine), own.transaction(engine) as conn:
                self._write_batch(conn, prepared)
            observer().audit_committed(len(batch), time.perf_counter() - started)
        except BaseException as exc:
            own.drop()  # (a connection that failed is not trusted again)
            if len(batch) > 1:  # one bad event must not lose the others: write them one by one
                for pending in batch:
                    self._write(engine, [pending], own)
                return
            batch[0].done.set_exception(exc)
            return
        for pending in batch:
            pending.done.set_result(None)


class _OwnConnection:
    """A writer thread's transactions. On a SQLite file, on a driver connection of the thread's
    own, opened on first use and kept while it runs (measured on 1,000,000 children, one event a
    commit: 0.35 ms of CPU through Core's `engine.begin()`, 0.28 ms so); elsewhere each is an
    `engine.begin()`."""

    def __init__(self) -> None:
        self._writer: SqliteWriter | None = None

    @contextmanager
    def transaction(self, engine: Engine) -> Iterator[Writable]:
        if not is_sqlite_file(engine):
            with engine.begin() as conn:
                yield conn
            return
        if self._writer is None:
            self._writer = SqliteWriter.open(engine)
        with sqlite_transaction(self._writer) as conn:
            yield conn

    def drop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


@contextmanager
def _writers_turn(engine: Engine) -> Iterator[None]:
    """On a SQLite file, the group commits of every process on the machine take turns through a
    lock file (`<database>-audit.lock`) before asking for SQLite's write lock.

    SQLite's own wait for a busy write lock is a sleep-and-retry of 1 to 100 ms. With two or more
    worker processes each committing searches' audits several hundred times a second, that left
    a writer asleep for several milliseconds after the lock came free (measured: 4 ms on average
    per commit, a sixth of them over 5 ms, with every search in that process waiting on it). A
    blocked flock() is woken as soon as it is released.
    """
    path = engine.url.database
    if not is_sqlite_file(engine) or not path or path.startswith("file:"):  # (no lock file beside a URI)
        yield
        return
    try:
        fd = os.open(f"{path}-audit.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a directory we may not write in: SQLite's own wait still serialises
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)


_WRITERS: weakref.WeakKeyDictionary[Engine, Committer] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()
