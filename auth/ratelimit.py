"""Per-subject rate limits on searches and card reads, and trawling detection.

In-process (one worker): behind several workers each keeps its own count, so the limit is
per worker; a shared store (PostgreSQL or Redis) is the next step when that matters.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from auth.errors import AuthRefused

MAX_TRACKED = 2000  # per subject: bounds memory whatever a client does


@dataclass
class _Trail:
    hits: deque[float] = field(default_factory=deque)
    looks: deque[tuple[float, str]] = field(default_factory=deque)
    alerted_at: float | None = None


@dataclass(frozen=True)
class TrawlAlert:
    """Raised (returned) when a subject's looks resemble trawling: many children, few repeats."""

    subject: str
    distinct_children: int
    looks: int
    window_seconds: int


class SubjectLimiter:
    """A sliding-window request limit per subject plus a distinct-children trawling signal."""

    def __init__(
        self,
        *,
        per_minute: int,
        trawl_window_seconds: int,
        trawl_distinct: int,
        clock: object = None,
    ) -> None:
        self.per_minute = per_minute
        self.window = trawl_window_seconds
        self.trawl_distinct = trawl_distinct
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._trails: dict[str, _Trail] = {}

    def now(self) -> float:
        """The limiter's clock (monotonic seconds; replaceable in tests)."""
        return float(self._clock())  # type: ignore[operator]

    def hit(self, subject: str, child_id: str | None = None) -> TrawlAlert | None:
        """Count one request; raise a 429 AuthRefused when over the limit; maybe return an alert."""
        now = self.now()
        with self._lock:
            trail = self._trails.setdefault(subject, _Trail())
            while trail.hits and trail.hits[0] <= now - 60:
                trail.hits.popleft()
            if len(trail.hits) >= self.per_minute:
                retry = max(1, int(60 - (now - trail.hits[0])) + 1)
                raise AuthRefused(
                    429,
                    "rate-limited",
                    f"Too many searches or record reads: the "
                    f"limit is {self.per_minute} a minute. Try again in {retry} "
                    "seconds.",
                    headers={"Retry-After": str(retry)},
                )
            trail.hits.append(now)
        if child_id is None:
            return None
        return self.look(subject, [child_id])

    def look(self, subject: str, child_ids: list[str]) -> TrawlAlert | None:
        """Count looks at children (a card read, a FHIR read, the Patients a search showed); maybe alert."""
        if not child_ids:
            return None
        now = self.now()
        with self._lock:
            trail = self._trails.setdefault(subject, _Trail())
            for child_id in child_ids:
                while trail.looks and (
                    trail.looks[0][0] <= now - self.window or len(trail.looks) >= MAX_TRACKED
                ):
                    trail.looks.popleft()
                trail.looks.append((now, child_id))
            distinct = len({c for _, c in trail.looks})
            repeats = len(trail.looks) - distinct
            looks_like_trawling = distinct >= self.trawl_distinct and repeats * 5 < len(trail.looks)
            recently = trail.alerted_at is not None and now - trail.alerted_at <= self.window
            if looks_like_trawling and not recently:
                trail.alerted_at = now
                return TrawlAlert(subject, distinct, len(trail.looks), self.window)
            return None
