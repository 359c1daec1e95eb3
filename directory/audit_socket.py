"""One audit writer for every worker process of a node, fed through a Unix socket.

With `serve --workers N` each worker used to commit its own searches' audit events (one group
commit per process, directory/audit_writer.py), the processes taking turns at the database: N
commits, N fsyncs and a lock handed back and forth where one would do, and the preparing and
writing done on the workers' own GIL, beside the searches. Here the supervising process runs one
group commit for the node (`WriterServer`) and each worker hands it its events (`RemoteCommit`):
events from every worker share a batch, one transaction and one fsync.

Guarantees, as before: a caller's future is done only once the writer has committed its event
(durably: WAL with synchronous=FULL on SQLite, a commit on PostgreSQL), so an answer that waits
for it is never given for an event a crash could lose. The chain is ordered where it always was,
in the transaction (`write`, the audit rules' own): several nodes, each with its own writer, still
append to one chain.
Failures: a worker that cannot reach the writer (not started yet, or gone) commits its events
itself, as before (durable too), and tries the socket again a second later; events that were on
their way when the writer went fail (AuditUnavailable: a 503, never an unaudited answer; they
may or may not have been written, so they are not sent twice). The writer refuses events beyond
its queue's bound (a slow disk) with AuditUnavailable at once, and drains its queue on shutdown.

Like the group commit it feeds, this knows nothing of what it writes: the caller gives it how to
prepare an event in the worker (`prepare`, to something JSON can carry) and the writer's group
commit how to read and write it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from directory.audit_writer import AuditUnavailable, Committer, GroupCommit

log = logging.getLogger("childindex.audit")

_HEADER = struct.Struct("!I")
MAX_FRAME = 1 << 20
"""The largest message either side accepts (an event is well under a kilobyte)."""


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(_HEADER.pack(len(body)) + body)


def _receive(sock: socket.socket, buffer: bytearray) -> list[dict[str, Any]]:
    """The next whole messages on the socket (at least one); EOFError when it is closed."""
    while True:
        messages = []
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            if size > MAX_FRAME:
                raise EOFError("a message over the size limit")
            if len(buffer) < _HEADER.size + size:
                break
            messages.append(json.loads(bytes(buffer[_HEADER.size : _HEADER.size + size])))
            del buffer[: _HEADER.size + size]
        if messages:
            return messages
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed")
        buffer += chunk


class _Replies:
    """The acknowledgements owed on one worker's connection, sent together: one message for each
    batch committed (`{"ok": [ids], "failed": [{"id", "error", "message"}]}`) rather than one per
    event, a send and a wake-up of the worker's reader each (measured at 1,000,000 children, two
    workers flat out: see docs/audit.md)."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._ok: list[int] = []
        self._failed: list[dict[str, Any]] = []
        self._broken = False

    def note(self, ident: int, done: Future[None]) -> None:
        """An event's future is done: owe its acknowledgement."""
        error = done.exception()
        with self._lock:
            if error is None:
                self._ok.append(ident)
            else:
                self._failed.append(
                    {
                        "id": ident,
                        "error": "busy" if isinstance(error, AuditUnavailable) else "failed",
                        "message": str(error)[:500],
                    }
                )

    def send(self) -> None:
        """Send what is owed, if anything (in the order owed: sends on a connection take turns)."""
        with self._lock:
            if self._broken or (not self._ok and not self._failed):
                return
            reply = {"ok": self._ok, "failed": self._failed}
            self._ok, self._failed = [], []
            try:
                _send(self._conn, reply)
            except OSError:
                # The worker is gone, or has not read its acknowledgements for SEND_TIMEOUT (stopped,
                # hung): part of a message may have gone, so the connection is closed. The worker
                # then fails what it is waiting for (503s, never unaudited answers) and connects
                # again; the writer goes on for every other worker.
                self._broken = True
                with contextlib.suppress(OSError):
                    self._conn.shutdown(socket.SHUT_RDWR)


class WriterServer:
    """The node's audit writer: listens on a Unix socket (mode 0600, in a directory only this user
    reads) and appends every worker's events through one group commit."""

    SEND_TIMEOUT = 1.0
    """How long an acknowledgement may wait for a worker to make room for it before that worker's
    connection is taken for lost (see `_Replies.send`)."""

    def __init__(self, path: str, group: GroupCommit[Any]) -> None:
        self.path = path
        self.group = group
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)  # (a socket left by a writer killed before it could remove it)
        old = os.umask(0o177)
        try:
            self._listener.bind(path)
        finally:
            os.umask(old)
        self._listener.listen(64)
        self._connections: dict[socket.socket, _Replies] = {}  # (each worker's, and what it is owed)
        self._lock = threading.Lock()
        self._closing = False
        group.after_batch.append(self._send_replies)
        threading.Thread(target=self._accept, name="audit-writer-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._closing:
                    conn.close()
                    return
                replies = self._connections[conn] = _Replies(conn)
            # Acknowledgements are sent from the writer's own thread: a worker that stops reading
            # them must not hold it (the send gives up after SEND_TIMEOUT; receiving never does).
            seconds = int(self.SEND_TIMEOUT)
            micros = int((self.SEND_TIMEOUT - seconds) * 1_000_000)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, micros))
            threading.Thread(
                target=self._serve, args=(conn, replies), name="audit-writer-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, replies: _Replies) -> None:
        buffer = bytearray()
        try:
            while True:
                for message in _receive(conn, buffer):
                    self.group.append(message["event"]).add_done_callback(
                        partial(replies.note, int(message["id"]))
                    )
                replies.send()  # (events refused at once: the queue is full)
        except (OSError, EOFError, ValueError, KeyError):
            pass
        finally:
            # Written events' acknowledgements still go out on the socket until it closes: close
            # it only once nothing this worker sent is left to write.
            self.group.drain(30.0)
            with self._lock:
                self._connections.pop(conn, None)
            replies.send()
            conn.close()

    def _send_replies(self) -> None:
        """After each batch: every connection's acknowledgements of it, one message each."""
        with self._lock:
            owed = list(self._connections.values())
        for replies in owed:
            replies.send()

    def close(self, timeout: float = 30.0) -> bool:
        """Stop taking events, write every event queued (False if `timeout` ran out first), and go."""
        with self._lock:
            self._closing = True
            connections = list(self._connections)
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        drained = self.group.drain(timeout)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return drained


class RemoteCommit:
    """A worker's way to the node's writer, with its own group commit to fall back on while the
    writer cannot be reached (see the module doc)."""

    RETRY_SECONDS = 1.0
    MAX_IN_FLIGHT = 1000
    """Events sent and not yet acknowledged beyond which an event is refused (AuditUnavailable)."""
    STALL_SECONDS = 15.0
    """A writer that has confirmed nothing for this long while events wait (stopped, or starved) is
    taken for gone: what it holds fails, as if it had died, rather than hold its searches forever."""
    IO_TIMEOUT = 1.0
    """A send that cannot go out in this long (the writer stopped reading) is taken for a lost writer."""

    def __init__(self, path: str, *, prepare: Callable[[dict[str, Any]], Any], fallback: Committer) -> None:
        self.path = path
        self._prepare = prepare
        self._fallback = fallback
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._tried = float("-inf")
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[Future[None], float]] = {}  # (in the order sent)

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def append(self, event: dict[str, Any]) -> Future[None]:
        """Send an event to the node's writer; the future is done once it is durable, or holds
        the error. Committed here when the writer cannot be reached."""
        message = {"event": self._prepare(event)}
        with self._lock:
            sock = self._sock or self._connect()
            if sock is None:
                return self._fallback.append(event)
            if len(self._waiting) >= self.MAX_IN_FLIGHT:
                refused: Future[None] = Future()
                refused.set_exception(AuditUnavailable("the audit writer is behind: try again shortly"))
                return refused
            ident = message["id"] = next(self._ids)
            done: Future[None] = Future()
            done.set_running_or_notify_cancel()
            try:
                _send(sock, message)
            except OSError:  # not (wholly) sent, so not written: write it here
                self._lost(sock)
                return self._fallback.append(event)
            self._waiting[ident] = (done, time.monotonic())
        return done

    def _connect(self) -> socket.socket | None:
        """A connection to the writer (with the lock held), at most one try a RETRY_SECONDS."""
        now = time.monotonic()
        if now - self._tried < self.RETRY_SECONDS:
            return None
        self._tried = now
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return None
        sock.settimeout(self.IO_TIMEOUT)
        self._sock = sock
        threading.Thread(target=self._read, args=(sock,), name="audit-writer-client", daemon=True).start()
        return sock

    def _read(self, sock: socket.socket) -> None:
        buffer = bytearray()
        try:
            while True:
                try:
                    replies = _receive(sock, buffer)  # (a time-out keeps what was read in `buffer`)
                except TimeoutError:
                    if self._stalled():
                        log.error("the node's audit writer confirmed nothing for %.0f s", self.STALL_SECONDS)
                        break
                    continue
                for reply in replies:
                    with self._lock:
                        written = [self._waiting.pop(int(i), (None, 0.0))[0] for i in reply["ok"]]
                        failed = [
                            (self._waiting.pop(int(f["id"]), (None, 0.0))[0], str(f.get("message", "")))
                            for f in reply["failed"]
                        ]
                    for done in written:
                        if done is not None:
                            done.set_result(None)
                    for done, message in failed:
                        if done is not None:
                            # (busy, or the write failed: either way not audited, so not answered)
                            done.set_exception(AuditUnavailable(message))
        except (OSError, EOFError, ValueError, KeyError):
            pass
        with self._lock:
            self._lost(sock)

    def _stalled(self) -> bool:
        with self._lock:
            oldest = next(iter(self._waiting.values()), None)
        return oldest is not None and time.monotonic() - oldest[1] > self.STALL_SECONDS

    def _lost(self, sock: socket.socket) -> None:
        """The writer is gone (with the lock held): fail what was on its way, try again later."""
        if self._sock is sock:
            self._sock = None
            self._tried = time.monotonic()
        with contextlib.suppress(OSError):
            sock.close()
        waiting, self._waiting = self._waiting, {}
        if waiting:
            log.warning("the node's audit writer stopped with %d event(s) unacknowledged", len(waiting))
        for done, _ in waiting.values():
            done.set_exception(
                AuditUnavailable("the audit writer stopped before this event was confirmed written")
            )
