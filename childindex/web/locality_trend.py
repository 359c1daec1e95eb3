"""The locality overview's month-by-month trend: CAFs signalled, started and closed in each of the
last twelve months, suppressed like every other figure, drawn as a server-rendered SVG column chart
with the same figures in a table beside it.

Only flows are published (how many did something in a month), never a month-end stock: a stock
series beside the flows would let a reader work a withheld flow out by difference (open at the end
of March minus open at the end of February plus closed in March gives started in March).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session

from childindex.web.suppression import Figure, suppress_row
from directory import aggregates

SERIES = {
    "signalled": "Signalled",
    "started": "Started",
    "closed": "Closed",
}
# the chart's geometry (SVG user units; the chart scales down to the column it sits in)
WIDTH, TOP, PLOT, BASE = 640, 40, 170, 210


@dataclass(frozen=True)
class Month:
    """One calendar month of the trend, [start, end) in UTC."""

    start: datetime
    end: datetime
    current: bool  # the month we are in: its figures are so far

    @property
    def label(self) -> str:
        """ "March 2026", or "December 2026 (so far)"."""
        text = self.start.strftime("%B %Y")
        return f"{text} (so far)" if self.current else text

    @property
    def short(self) -> str:
        """The chart's axis label: "Mar"."""
        return self.start.strftime("%b")


def last_months(now: datetime, count: int = 12) -> list[Month]:
    """The last `count` calendar months up to and including the one `now` is in, oldest first."""
    year, month = now.year, now.month
    firsts = []
    for _ in range(count):
        firsts.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    firsts.reverse()
    ends = [*firsts[1:], _next_month(firsts[-1])]
    return [Month(a, b, current=(i == count - 1)) for i, (a, b) in enumerate(zip(firsts, ends, strict=True))]


def _next_month(first: datetime) -> datetime:
    if first.month == 12:
        return first.replace(year=first.year + 1, month=1)
    return first.replace(month=first.month + 1)


@dataclass(frozen=True)
class Trend:
    """The published trend: per series, one figure per month (small counts suppressed)."""

    months: list[Month]
    series: dict[str, list[Figure]]

    def rows(self) -> list[tuple[Month, list[Figure]]]:
        """The table: a row per month, a figure per series."""
        return [(m, [self.series[key][i] for key in SERIES]) for i, m in enumerate(self.months)]


def trend(session: Session, locality_id: uuid.UUID | None, now: datetime, threshold: int) -> Trend:
    """Count, then suppress: no total is published, so each month's count on its own (primary)."""
    months = last_months(now)
    counts = aggregates.caf_events_by_month(session, locality_id, [(m.start, m.end) for m in months])
    series = {}
    for key in SERIES:
        row = suppress_row({str(i): n for i, n in enumerate(counts[key])}, threshold, total_shown=False)
        series[key] = [row[str(i)] for i in range(len(months))]
    return Trend(months, series)


@dataclass(frozen=True)
class Column:
    """One bar of the chart."""

    x: int
    y: int
    width: int
    height: int
    series: str


def columns(t: Trend) -> tuple[list[Column], list[tuple[int, str]]]:
    """The bars (a group of three per month; a withheld figure gets no bar) and the month labels."""
    top = max((f.value or 0 for figures in t.series.values() for f in figures), default=0) or 1
    group = (WIDTH - 40) // len(t.months)
    bar = (group - 8) // len(SERIES)
    bars: list[Column] = []
    labels: list[tuple[int, str]] = []
    for i, month in enumerate(t.months):
        left = 40 + i * group
        labels.append((left + group // 2, month.short))
        for j, key in enumerate(SERIES):
            value = t.series[key][i].value
            if value:
                height = max(2, round(PLOT * value / top))
                bars.append(Column(left + 4 + j * bar, BASE - height, bar - 1, height, key))
    return bars, labels


def describe(t: Trend, place: str) -> str:
    """The chart's text alternative: every figure, in words."""
    parts = [
        f"{m.label}: " + ", ".join(f"{SERIES[key].lower()} {figures[k]}" for k, key in enumerate(SERIES))
        for m, figures in t.rows()
    ]
    return f"CAFs by month in {place}. " + "; ".join(parts) + "."
