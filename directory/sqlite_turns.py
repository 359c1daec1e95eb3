"""Turns for the writers of one SQLite file in this process (see `WriteTurns`)."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque

import sqlalchemy as sa


class WriteTurns:
    """The writers of one SQLite file in this process, let in one at a time in the order they came.

    SQLite's own wait for its write lock (busy_timeout) sleeps and retries, 1 to 100 ms at a time:
    a writer that has just committed takes the lock again before the sleepers wake. Under a
    steady load of writes one request so waited seconds while others came and went (measured in
    tests/directory/test_burst.py, 16 clients: BEGIN IMMEDIATE waits of up to 2.5 s). Here each
    writer waits its turn and is woken as the one before it ends; SQLite's lock then only orders
    this process against others (and the audit group commits of all of them, see audit_writer.py).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._owner: object | None = None
        self._queue: deque[tuple[object, threading.Event]] = deque()

    def take(self, owner: object) -> None:
        """Wait for this owner's turn; a busy OperationalError after the lock timeout."""
        with self._mutex:
            if self._owner is None or self._owner is owner:
                self._owner = owner
                return
            waiting = (owner, threading.Event())
            self._queue.append(waiting)
        if waiting[1].wait(self.timeout):
            return
        with self._mutex:
            if self._owner is owner:  # handed over as the wait ran out
                return
            self._queue.remove(waiting)
        raise sa.exc.OperationalError(
            "BEGIN IMMEDIATE",
            None,
            sqlite3.OperationalError(f"database is locked (waited {self.timeout:g} s for other writers)"),
        )

    def give_back(self, owner: object) -> None:
        """End this owner's turn (nothing if it holds none) and start the next one's."""
        with self._mutex:
            if owner is None or self._owner is not owner:
                return
            if self._queue:
                self._owner, woken = self._queue.popleft()
                woken.set()
            else:
                self._owner = None
