"""Per-subject rate limits on reads of children's records, and trawling detection.

Shared by every process and node through the database (see auth/limits.py for where the counters
live and why a count is exact across processes): a subject is admitted at most `per_minute` reads
in any 60 seconds, whichever worker or node answers them, and one trawling alert is raised per
window per subject.

Trawling: many distinct children with few repeat looks. The window is kept as two halves; the
distinct children and the looks counted are those of the current half and the one before it (so
of the last half-window to whole window).

Burst: many distinct children's records opened in a short window (`burst_window_seconds`, kept in
halves the same way), whatever else was looked at. The long window's rule alone missed a person
who opened 19 children's cards in a minute (issue #20): 19 is below its 50 distinct children, and
its "few repeats" test counts every request about a child as a look, so the search hit, the
reason-for-looking question and the card itself (three looks at one child on one visit) made
even a real trawl "mostly repeats". A search's hits do not count here (one search for a common
name shows many children); opening their records does.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from auth.errors import AuthRefused
from auth.limits import BURST_PREFIX, WINDOW_SLOTS, LimitStore, LimitsUnavailable, Tally
from directory.observe import observer

log = logging.getLogger("childindex.auth")
SWEEP_SECONDS = 60
_QUIET_TRACKED = 10_000  # subjects whose alert this process knows was raised: bounds memory


@dataclass(frozen=True)
class TrawlAlert:
    """Raised (returned) when a subject's looks resemble trawling: many children, few repeats."""

    subject: str
    distinct_children: int
    looks: int
    window_seconds: int
    rule: str = "window"  # "window": the long window's rule; "burst": records opened in a short one


def _busy(exc: LimitsUnavailable) -> AuthRefused:
    log.warning("rate-limit counters unavailable: %s", exc)
    return AuthRefused(
        503,
        "limits-unavailable",
        "The service is busy and could not check your request against the limits; try again in "
        "a few seconds.",
        headers={"Retry-After": "2"},
    )


def child_key(child_id: object) -> str | None:
    """A child id as the counters keep it (uuid hex), or None for what is not a child id."""
    if isinstance(child_id, uuid.UUID):
        return child_id.hex
    try:
        return uuid.UUID(str(child_id)).hex
    except ValueError:
        return None


class SubjectLimiter:
    """The per-subject request limit plus the distinct-children trawling signal, on a shared store."""

    def __init__(
        self,
        store: LimitStore,
        *,
        per_minute: int,
        trawl_window_seconds: int,
        trawl_distinct: int,
        burst_window_seconds: int = 300,
        burst_distinct: int = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.per_minute = per_minute
        self.window = trawl_window_seconds
        self.half = max(1, trawl_window_seconds // 2)
        self.trawl_distinct = trawl_distinct
        self.burst_window = burst_window_seconds
        self.burst_half = max(1, burst_window_seconds // 2)
        self.burst_distinct = burst_distinct
        self._clock = clock  # wall-clock seconds: every process and node must agree on the second
        self._lock = threading.Lock()
        self._quiet: dict[str, float] = {}  # subject -> no alert to try for before (this process)
        self._next_sweep = 0.0

    def now(self) -> float:
        """The limiter's clock (Unix seconds; replaceable in tests)."""
        return float(self._clock())

    def hit(self, subject: str, child_id: object = None) -> TrawlAlert | None:
        """Count one request; raise a 429 AuthRefused when over the limit; maybe return an alert."""
        now = self.now()
        slot = int(now)
        try:
            oldest = self.store.hit(subject[:200], slot=slot, limit=self.per_minute)
        except LimitsUnavailable as exc:
            raise _busy(exc) from exc
        self._maybe_sweep(now)
        if oldest is not None:
            retry = max(1, oldest + WINDOW_SLOTS - slot)  # when the oldest counted second leaves
            observer().count("rate_limit", "refused")
            raise AuthRefused(
                429,
                "rate-limited",
                f"Too many searches or record reads: the limit is {self.per_minute} a minute. "
                f"Try again in {retry} seconds.",
                headers={"Retry-After": str(retry)},
            )
        if child_id is None:
            return None
        alert = self.look(subject, [child_id])
        burst = self._burst(subject, child_id)
        return alert or burst

    def _burst(self, subject: str, child_id: object) -> TrawlAlert | None:
        """Count one child's record opened towards the short window's rule; maybe alert."""
        key = child_key(child_id)
        if key is None:
            return None
        now = self.now()
        counted = BURST_PREFIX + subject[:194]
        try:
            tally = self.store.look(counted, bucket=int(now // self.burst_half), child_ids=[key], looks=1)
        except LimitsUnavailable as exc:
            raise _busy(exc) from exc
        if tally.children < self.burst_distinct:
            return None
        return self._claim(counted, subject, tally, now=now, window=self.burst_window, rule="burst")

    def look(self, subject: str, child_ids: Iterable[object]) -> TrawlAlert | None:
        """Count looks at children (a card read, a FHIR read, the children a search showed); maybe alert."""
        shown = [key for key in map(child_key, child_ids) if key is not None]
        if not shown:
            return None
        distinct = list(dict.fromkeys(shown))
        now = self.now()
        subject = subject[:200]
        try:
            tally = self.store.look(
                subject, bucket=int(now // self.half), child_ids=distinct, looks=len(shown)
            )
        except LimitsUnavailable as exc:
            raise _busy(exc) from exc
        repeats = tally.looks - tally.children
        if tally.children < self.trawl_distinct or repeats * 5 >= tally.looks:
            return None
        return self._claim(subject, subject, tally, now=now, window=self.window, rule="window")

    def _claim(
        self, counted: str, subject: str, tally: Tally, *, now: float, window: int, rule: str
    ) -> TrawlAlert | None:
        """The alert, for the one caller (of any process) that claims it for this window."""
        with self._lock:
            if self._quiet.get(counted, 0.0) > now:
                return None
        try:
            claimed = self.store.claim_alert(counted, now=int(now), until=int(now) + window)
        except LimitsUnavailable as exc:
            log.warning("could not raise a trawling alert for %s: %s", subject, exc)
            return None
        with self._lock:
            if len(self._quiet) >= _QUIET_TRACKED:
                self._quiet.clear()
            # Claimed: quiet for the window. Another process claimed it: ask again in a minute.
            self._quiet[counted] = now + (window if claimed else SWEEP_SECONDS)
        if not claimed:
            return None
        observer().count("trawl_alert", rule)
        return TrawlAlert(subject, tally.children, tally.looks, window, rule)

    def _maybe_sweep(self, now: float) -> None:
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_SECONDS
        # Off the request's path: a sweep may delete many rows.
        threading.Thread(target=self._sweep, args=(now,), name="limits-sweep", daemon=True).start()

    def _sweep(self, now: float) -> None:
        try:
            self.store.sweep(
                slot=int(now),
                bucket=int(now // self.half),
                now=int(now),
                burst_bucket=int(now // self.burst_half),
            )
        except LimitsUnavailable as exc:
            log.warning("could not sweep the rate-limit counters: %s", exc)
