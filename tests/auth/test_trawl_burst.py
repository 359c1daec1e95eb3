"""The short-window trawling rule (issue #20): many children's records opened in a few minutes alert,
whatever the long window's repeat test says; a caseload opened again and again does not."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from auth.limits import limit_store
from auth.ratelimit import SubjectLimiter
from tests.auth.test_ratelimit import Clock


def limiter(engine: Engine, clock: Clock) -> SubjectLimiter:
    """The production defaults: 50 children an hour for the long rule, 15 in 5 minutes for the short."""
    return SubjectLimiter(
        limit_store(engine),
        per_minute=1000,
        trawl_window_seconds=3600,
        trawl_distinct=50,
        burst_window_seconds=300,
        burst_distinct=15,
        clock=clock,
    )


def test_nineteen_cards_in_a_minute_alert_once_even_with_search_hits_and_questions(engine: Engine) -> None:
    clock = Clock()
    limits = limiter(engine, clock)
    found = []
    for _ in range(19):  # as the pages count one visit: the search hit, the question, the card
        child = uuid.uuid4()
        clock.t += 1
        found.append(limits.look("pat", [child]))
        found.append(limits.hit("pat", child))
        found.append(limits.hit("pat", child))
    raised = [a for a in found if a is not None]
    assert len(raised) == 1  # one alert for the window, not one per card after the 15th
    assert raised[0].rule == "burst" and raised[0].distinct_children == 15
    assert raised[0].window_seconds == 300


def test_a_caseload_opened_again_and_again_is_not_a_burst(engine: Engine) -> None:
    clock = Clock()
    limits = limiter(engine, clock)
    caseload = [uuid.uuid4() for _ in range(8)]
    found = []
    for _ in range(10):
        for child in caseload:
            clock.t += 1
            found.append(limits.hit("pat", child))
    assert all(a is None for a in found)


def test_cards_spread_over_more_than_the_short_window_do_not_alert(engine: Engine) -> None:
    clock = Clock()
    limits = limiter(engine, clock)
    found = []
    for _ in range(30):  # one new child every 40 seconds: 7 or 8 in any 5 minutes
        clock.t += 40
        found.append(limits.hit("pat", uuid.uuid4()))
    assert all(a is None for a in found)


def test_the_sweep_keeps_each_windows_counters_for_its_own_window(engine: Engine) -> None:
    clock = Clock()
    limits = limiter(engine, clock)
    for _ in range(10):
        clock.t += 1
        limits.hit("pat", uuid.uuid4())
    limits._sweep(clock.t)  # the sweep thread's work, now
    store = limits.store
    with_prefix = sa.text("SELECT count(*) FROM trawl_tally WHERE substr(subject, 1, 6) = 'burst '")
    own = sa.text("SELECT count(*) FROM trawl_tally WHERE subject = 'pat'")
    count = _counter(store)
    assert count(with_prefix) >= 1 and count(own) >= 1  # both still counting
    clock.t += 700  # past both halves of the short window, well within the long one
    limits._sweep(clock.t)
    assert count(with_prefix) == 0 and count(own) >= 1


def _counter(store: object):  # type: ignore[no-untyped-def]
    """Run a count on the store's own database (SQLite side file or PostgreSQL)."""
    if hasattr(store, "engine"):
        engine: Engine = store.engine

        def count_pg(sql: sa.TextClause) -> int:
            with engine.connect() as conn:
                return int(conn.execute(sql).scalar_one())

        return count_pg

    def count_sqlite(sql: sa.TextClause) -> int:
        with store._transaction() as conn:  # type: ignore[attr-defined]
            return int(conn.execute(str(sql)).fetchone()[0])

    return count_sqlite
