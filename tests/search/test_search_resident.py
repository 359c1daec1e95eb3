"""The memory-resident copy of the embedded index answers exactly as the SQL path does, and
follows every change made through any backend instance, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine

from search import embedded
from search.embedded import EmbeddedBackend, metadata, search_log
from search.matching import CANDIDATE_LIMIT, MatchingEngine, blocking_keys, query_keys
from search.port import PersonFields, SearchQuery
from search.quality import generate_population
from search.resident import ResidentIndex
from tests.search.conftest import PG_URL_ENV, PersonBuilder, require_env


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with empty search tables; two engines on it are two processes' views."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'search.db'}"
        return
    found = require_env(PG_URL_ENV, "PostgreSQL")
    engine = create_engine(found)
    metadata.drop_all(engine)
    yield found
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def writer(url: str) -> Iterator[EmbeddedBackend]:
    """The indexer's backend, on its own engine (as in the process that runs the indexer)."""
    engine = create_engine(url)
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    yield backend
    engine.dispose()


@pytest.fixture
def searcher(url: str, writer: EmbeddedBackend) -> Iterator[EmbeddedBackend]:
    """A request process's backend, on another engine; its resident copy is started by the test."""
    engine = create_engine(url)
    backend = EmbeddedBackend(engine)
    yield backend
    backend.stop_resident()
    engine.dispose()


def _loaded(backend: EmbeddedBackend) -> ResidentIndex:
    resident = backend.start_resident()
    assert resident.wait_ready(30)
    return resident


def _queries(people: list[PersonFields], n: int, seed: int) -> list[list[str]]:
    """Keys of searches like a practitioner's: a child's details, some of them someone else's."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(people), rng.choice(people)
        given = (a if rng.random() < 0.8 else b).given_names[0]
        family = (a if rng.random() < 0.8 else b).family_names[0]
        born = (a if rng.random() < 0.7 else b).birth_date
        postcode = a.postcodes[0] if a.postcodes and rng.random() < 0.3 else None
        out.append(query_keys(SearchQuery(given=given, family=family, birth_date=born, postcode=postcode)))
    return out


def _sql(backend: EmbeddedBackend) -> EmbeddedBackend:
    """A backend on the same engine without the resident copy."""
    return EmbeddedBackend(backend.engine)


def test_same_candidates_as_sql_before_and_after_changes(
    writer: EmbeddedBackend, searcher: EmbeddedBackend
) -> None:
    people = generate_population(3000, seed=7)
    writer.rebuild(people)
    resident = _loaded(searcher)
    sql = _sql(searcher)
    queries = _queries(people, 300, seed=11)
    for keys in queries:
        assert searcher.candidates(keys, CANDIDATE_LIMIT) == sql.candidates(keys, CANDIDATE_LIMIT)
        assert searcher.candidates(keys, 5) == sql.candidates(keys, 5)  # ties cut in the same place
    # Changes land in the delta: replaced, deleted and new children rank among the base's.
    rng = random.Random(3)
    changed = [
        replace(p, given_names=rng.choice(people).given_names, birth_date=rng.choice(people).birth_date)
        for p in rng.sample(people, 150)
    ]
    born = [replace(p, child_id=f"new{i:05d}") for i, p in enumerate(rng.sample(people, 150))]
    writer.upsert(changed + born)
    writer.delete([p.child_id for p in rng.sample(people, 100)])
    for keys in queries:
        assert searcher.candidates(keys, CANDIDATE_LIMIT) == sql.candidates(keys, CANDIDATE_LIMIT)
        assert searcher.candidates(keys, 5) == sql.candidates(keys, 5)
    stats = resident.stats()
    assert stats["ready"] and stats["loads"] == 1 and stats["delta_children"] >= 250


def test_an_empty_copy_and_unknown_keys_find_nobody(
    writer: EmbeddedBackend, searcher: EmbeddedBackend
) -> None:
    """Loaded from no children at all, the copy answers nothing, then finds a child added later;
    keys no child has (below, between and above the loaded ones) add no candidate."""
    resident = _loaded(searcher)
    assert resident.stats()["postings"] == 0
    person = generate_population(1, seed=5)[0]
    keys = sorted(blocking_keys(person))
    assert searcher.candidates(keys, CANDIDATE_LIMIT) == []
    writer.upsert([person])
    assert [p.child_id for p in searcher.candidates(keys, CANDIDATE_LIMIT)] == [person.child_id]
    # Loaded afresh with children: unknown keys mixed in change nothing.
    people = generate_population(500, seed=9)
    writer.rebuild(people)
    searcher.candidates(keys, CANDIDATE_LIMIT)  # sees the rebuild: drops the copy, loads afresh
    assert resident.wait_ready(30)
    assert resident.loads == 2 and resident.stats()["postings"] > 0
    sql = _sql(searcher)
    unknown = [f"zz-nobody-{i}" for i in range(50)]
    for keys in _queries(people, 50, seed=4):
        mixed = unknown[:25] + keys + unknown[25:]
        assert searcher.candidates(mixed, CANDIDATE_LIMIT) == sql.candidates(keys, CANDIDATE_LIMIT)
    assert searcher.candidates(unknown, CANDIDATE_LIMIT) == []


def test_changes_in_many_batches_fold_into_the_settled_delta(
    writer: EmbeddedBackend, searcher: EmbeddedBackend
) -> None:
    people = generate_population(600, seed=13)
    writer.upsert(people[:400])
    resident = _loaded(searcher)
    resident.recent_max = 40  # fold every other batch: children move between the two levels
    sql = _sql(searcher)
    queries = _queries(people, 40, seed=17)
    rng = random.Random(19)
    movers = people[:30]  # changed again and again: in the settled level and the recent one
    for batch in range(12):
        writer.upsert(people[400 + batch * 15 : 400 + (batch + 1) * 15])  # new children
        movers = [
            replace(p, given_names=rng.choice(people).given_names, birth_date=rng.choice(movers).birth_date)
            for p in movers
        ]
        writer.upsert(rng.sample(movers, 12))
        writer.delete([p.child_id for p in rng.sample(people[30:], 4)])
        for keys in queries + [query_keys(_as_query(p)) for p in movers]:
            assert searcher.candidates(keys, CANDIDATE_LIMIT) == sql.candidates(keys, CANDIDATE_LIMIT)
    snap = resident._snap
    assert snap is not None and snap.settled.children
    assert resident.loads == 1


def _as_query(p: PersonFields) -> SearchQuery:
    return SearchQuery(given=p.given_names[0], family=p.family_names[0], birth_date=p.birth_date)


def test_a_change_through_another_engine_is_seen_on_the_next_search(
    writer: EmbeddedBackend, searcher: EmbeddedBackend, make_person: PersonBuilder
) -> None:
    child = make_person()
    writer.upsert([child])
    resident = _loaded(searcher)
    keys = sorted(blocking_keys(child))
    assert searcher.candidates(keys, 10) == [child]
    moved = replace(child, family_names=("Okonkwo",))
    writer.upsert([moved])
    assert searcher.candidates(sorted(blocking_keys(moved)), 10) == [moved]
    assert searcher.candidates(sorted(blocking_keys(child) - blocking_keys(moved)), 10) == []
    writer.delete([child.child_id])
    assert searcher.candidates(keys, 10) == []
    assert searcher.by_identifier("nhs", "9434765919") == []
    writer.upsert([moved])  # back again, after its delete
    assert searcher.by_identifier("nhs", "9434765919") == [moved]
    assert resident.ready and resident.loads == 1


def test_a_rebuild_makes_every_copy_load_afresh(
    writer: EmbeddedBackend, searcher: EmbeddedBackend, make_person: PersonBuilder
) -> None:
    old = make_person(given_names=("Old",))
    writer.upsert([old])
    resident = _loaded(searcher)
    new = make_person(given_names=("New",), identifiers=())
    writer.rebuild([new])
    # The first search after the rebuild sees the NULL row, drops the copy and answers from SQL.
    assert searcher.candidates(sorted(blocking_keys(old)), 10) == [new]
    assert resident.wait_ready(30)
    assert resident.loads == 2
    assert searcher.candidates(sorted(blocking_keys(old) - blocking_keys(new)), 10) == []
    assert searcher.candidates(sorted(blocking_keys(new)), 10) == [new]


def test_a_large_backlog_loads_afresh(writer: EmbeddedBackend, searcher: EmbeddedBackend) -> None:
    people = generate_population(50, seed=2)
    writer.upsert(people)
    resident = _loaded(searcher)
    resident.max_delta = 10
    changed = [replace(p, given_names=("Renamed",)) for p in people[:20]]
    writer.upsert(changed)
    keys = sorted(blocking_keys(changed[0]))
    assert changed[0] in searcher.candidates(keys, 200)  # from SQL, while loading
    assert resident.wait_ready(30) and resident.loads == 2
    assert changed[0] in searcher.candidates(keys, 200)
    assert resident.stats()["delta_children"] == 0


def test_the_log_is_pruned_and_a_copy_behind_the_cut_loads_afresh(
    writer: EmbeddedBackend, searcher: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "LOG_KEEP", 20)
    monkeypatch.setattr(embedded, "LOG_PRUNE_EVERY", 5)
    people = generate_population(40, seed=5)
    writer.upsert(people[:1])
    resident = _loaded(searcher)
    for p in people:  # 40 changes, none seen by the copy meanwhile
        writer.upsert([replace(p, given_names=("Later",))])
    with writer.engine.connect() as conn:
        rows = conn.execute(sa.select(search_log.c.seq, search_log.c.child_id).order_by("seq")).all()
    assert len(rows) <= 20 + 5 + 1
    assert rows[0].child_id is None  # the cut: whoever has not read past it reloads
    latest = replace(people[30], given_names=("Later",))
    assert latest in searcher.candidates(sorted(blocking_keys(latest)), 200)
    assert resident.wait_ready(30) and resident.loads == 2
    assert latest in searcher.candidates(sorted(blocking_keys(latest)), 200)


def test_searches_use_sql_until_the_copy_is_loaded(
    writer: EmbeddedBackend, searcher: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = generate_population(200, seed=4)
    writer.upsert(people)
    release = threading.Event()
    load = ResidentIndex._load

    def slow_load(self: ResidentIndex) -> object:
        assert release.wait(30)
        return load(self)

    monkeypatch.setattr(ResidentIndex, "_load", slow_load)
    resident = searcher.start_resident()
    keys = sorted(blocking_keys(people[0]))
    assert not resident.ready
    assert resident.candidates(keys, 10) is None
    expected = _sql(searcher).candidates(keys, 10)
    assert searcher.candidates(keys, 10) == expected and expected[0] == people[0]
    release.set()
    assert resident.wait_ready(30)
    assert resident.candidates(keys, 10) == expected


def test_threads_search_while_another_process_writes(
    writer: EmbeddedBackend, searcher: EmbeddedBackend
) -> None:
    people = generate_population(400, seed=9)
    writer.upsert(people)
    _loaded(searcher)
    gone: set[str] = set()  # children whose delete has committed (so the log shows it)
    errors: list[BaseException] = []
    stop = threading.Event()
    queries = [sorted(blocking_keys(p)) for p in people]

    def search() -> None:
        rng = random.Random(threading.get_ident())
        try:
            while not stop.is_set():
                deleted = set(gone)  # taken before the search starts
                found = searcher.candidates(rng.choice(queries), CANDIDATE_LIMIT)
                assert not deleted & {p.child_id for p in found}
        except BaseException as exc:  # reported below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i, p in enumerate(people[:120]):
            if stop.is_set():
                break
            if i % 2:
                writer.delete([p.child_id])
                gone.add(p.child_id)
            else:
                writer.upsert([replace(p, given_names=("Changed",))])
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[0]
    for keys in queries[:120]:
        assert searcher.candidates(keys, CANDIDATE_LIMIT) == _sql(searcher).candidates(keys, CANDIDATE_LIMIT)


@pytest.mark.postgres
def test_writers_of_the_log_take_turns_on_postgres(make_person: PersonBuilder) -> None:
    url = require_env(PG_URL_ENV, "PostgreSQL")
    engine = create_engine(url)
    metadata.drop_all(engine)
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    try:
        done = threading.Event()
        with engine.connect() as holder:
            holder.execute(sa.text("LOCK TABLE search_log IN EXCLUSIVE MODE"))  # a slow writer

            def write() -> None:
                backend.upsert([make_person()])
                done.set()

            thread = threading.Thread(target=write)
            thread.start()
            assert not done.wait(0.5)  # the next writer waits for it...
            with engine.connect() as reader:  # ...and readers do not
                assert reader.execute(sa.select(sa.func.count()).select_from(search_log)).scalar() == 0
            holder.rollback()
        assert done.wait(10)
        thread.join()
        assert backend.count() == 1
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_the_app_starts_the_copy_when_the_setting_is_on(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from childindex.app import create_app
    from childindex.settings import Settings
    from directory.db import create_schema, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    create_schema(engine)
    from alembic import command

    from childindex.migrations import alembic_config

    command.stamp(alembic_config(engine), "head")  # /readyz checks the schema is the code's
    for on in (True, False):
        settings = Settings(
            environment="development",
            database_url="sqlite://",
            indexer_interval_seconds=0,
            search_resident=on,
        )
        app = create_app(settings, engine=engine)
        with TestClient(app) as client:
            backend = app.state.search_backend
            assert isinstance(backend, EmbeddedBackend)
            assert (backend._resident is not None) is on
            if on:
                assert backend._resident is not None and backend._resident.wait_ready(30)
            assert client.get("/readyz").json() == {"status": "ready"}
            if on:  # as while a reload after a rebuild runs: not ready, searches read SQL
                assert backend._resident is not None
                backend._resident._snap = None
                r = client.get("/readyz")
                assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert backend._resident is None  # stopped with the app
    engine.dispose()


def test_a_key_holding_the_load_separator_still_finds_its_child(
    writer: EmbeddedBackend, searcher: EmbeddedBackend, make_person: PersonBuilder
) -> None:
    odd = make_person(identifiers=(("local:mosaic", "M\x1f778"),))
    writer.upsert([odd, make_person()])
    _loaded(searcher)
    assert searcher.by_identifier("local:mosaic", "M\x1f778") == [odd]
    keys = sorted(blocking_keys(odd))
    assert searcher.candidates(keys, 10) == _sql(searcher).candidates(keys, 10)


def _searches(people: list[PersonFields], n: int, seed: int) -> list[SearchQuery]:
    """Whole searches, as practitioners type them: every kind of date, with and without sex,
    postcode or identifier, some details someone else's (so the birth filter has work)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(people), rng.choice(people)
        born = (a if rng.random() < 0.7 else b).birth_date or a.expected_delivery_date
        if born is None:
            continue
        ranged = rng.random() < 0.15
        out.append(
            SearchQuery(
                given=(a if rng.random() < 0.8 else b).given_names[0],
                family=(a if rng.random() < 0.8 else b).family_names[0],
                birth_date=None if ranged else born,
                birth_date_from=born.replace(day=1) if ranged else None,
                birth_date_to=born.replace(day=28) if ranged else None,
                sex=a.sex if rng.random() < 0.3 else None,
                postcode=a.postcodes[0] if a.postcodes and rng.random() < 0.3 else None,
            )
        )
    return out


def test_the_birth_filter_changes_no_answer(writer: EmbeddedBackend, searcher: EmbeddedBackend) -> None:
    people = generate_population(3000, seed=19)
    writer.rebuild(people)
    _loaded(searcher)
    filtered, whole = MatchingEngine(searcher), MatchingEngine(_sql(searcher))
    rng = random.Random(5)
    searches = _searches(people, 400, seed=23)
    for _ in range(2):
        dropped = 0
        for q in searches:
            a, b = filtered.search(q), whole.search(q)
            assert (a.matches, a.too_many) == (b.matches, b.too_many), q
            dropped += b.candidates_scored - a.candidates_scored
        assert dropped > 0  # it did leave candidates out, yet every answer is the same
        # and again with children changed since the load (their dates come from the delta)
        writer.upsert([replace(p, birth_date=rng.choice(people).birth_date) for p in rng.sample(people, 300)])


def test_the_most_shared_are_chosen_as_a_full_stable_sort_would_choose_them() -> None:
    """`_most_shared` sorts only the counts at or above the limit-th highest: the same positions, in
    the same order (highest count first, ties by position, that is by child id), as sorting them all."""
    import numpy as np

    from search.resident.snapshot import _most_shared

    rng = np.random.default_rng(21)
    for size, top in ((0, 5), (3, 5), (200, 200), (201, 200), (5_000, 200), (30_000, 200), (1_000, 1)):
        for levels in (1, 2, 4, 27):
            counts = rng.integers(1, levels + 1, size=size).astype(np.int64)
            expected = np.argsort(-counts, kind="stable")[:top].tolist()
            assert _most_shared(counts, top).tolist() == expected, (size, top, levels)
