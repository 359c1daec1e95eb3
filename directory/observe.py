"""Hooks for operations metrics: the domain and its neighbours say what happened, and whoever
listens (childindex/metrics.py, with prometheus-client) counts it. No layer below the app imports
a metrics library; with nobody listening, each hook is a call to a method that does nothing.

What is passed is a name, a short code and numbers: never a child's details or ids.
"""

from __future__ import annotations

import threading


class Observer:
    """What can be observed. The default does nothing; childindex.metrics installs its own."""

    def audit_queued(self, depth: int) -> None:
        """Events waiting in this process's audit group commit after one was queued or a batch taken."""

    def audit_committed(self, events: int, seconds: float) -> None:
        """A batch of `events` audit events made durable in `seconds` (its transaction)."""

    def count(self, name: str, code: str) -> None:
        """One thing happened: ("search", "found"), ("rate_limit", "refused"), ("trawl_alert", "burst")..."""


_lock = threading.Lock()
_current = Observer()


def observer() -> Observer:
    """The installed observer (a do-nothing one unless the app installed another)."""
    return _current


def install(new: Observer) -> None:
    """Listen with `new` from now on (the app, at start-up)."""
    global _current
    with _lock:
        _current = new
