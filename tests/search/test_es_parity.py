"""Elasticsearch answers exactly as the embedded backend does, and says so when its index is old.

The same synthetic population is indexed in both (embedded on SQLite, SQL path and resident copy),
and a few hundred searches (one and two corruptions, date ranges, postcodes, identifiers) must give
the same matches, scores, grades and too-many verdicts.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from search.blocking import query_keys
from search.elasticsearch import ElasticsearchBackend, IndexOutdated, compact, from_compact, tiebreak
from search.embedded import EmbeddedBackend
from search.matching import CANDIDATE_LIMIT, MatchingEngine
from search.port import AsyncReads, CriteriaError, PersonFields, SearchQuery
from search.quality import generate_cases, generate_population
from tests.search.conftest import ES_URL_ENV, build_person, require_env

pytestmark = pytest.mark.elasticsearch

PEOPLE = 4000


@pytest.fixture(scope="module")
def population() -> list[PersonFields]:
    people = generate_population(PEOPLE, seed=7)
    # a few shielded children with postcodes, and a few with no date of birth but an EDD
    shielded = [replace(p, shielded=True) for p in people[:40]]
    unborn = [
        replace(p, birth_date=None, expected_delivery_date=p.birth_date)
        for p in people[40:60]
        if p.birth_date
    ]
    # a crowd sharing a name and a year of birth, so that the candidate cap binds and ties at it
    # are broken (by child id) the same way
    crowd = [
        replace(
            people[60 + i],
            child_id=f"c{i:031d}",
            given_names=("Oliver",),
            family_names=("Smith",),
            birth_date=date(2015, 1, 1) + timedelta(days=i % 365),
        )
        for i in range(400)
    ]
    return shielded + unborn + crowd + people[460:]


@pytest.fixture(scope="module")
def es(population: list[PersonFields]) -> Iterator[ElasticsearchBackend]:
    url = require_env(ES_URL_ENV, "Elasticsearch")
    backend = ElasticsearchBackend.from_url(url, alias=f"childindex-parity-{uuid.uuid4().hex[:12]}")
    backend.ensure_ready()
    # Indexed in the reverse of child id order, so that the node's own order (index order) is the
    # wrong one wherever the tie-break by child id is not applied.
    backend.rebuild(sorted(population, key=lambda p: p.child_id, reverse=True))
    yield backend
    backend.client.indices.delete(index=f"{backend.alias}-*", ignore_unavailable=True)
    backend.client.close()


@pytest.fixture(scope="module")
def embedded(
    population: list[PersonFields], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedBackend]:
    path: Path = tmp_path_factory.mktemp("parity") / "search.db"
    engine = create_engine(f"sqlite:///{path}")
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    backend.rebuild(population)
    yield backend
    backend.stop_resident()
    engine.dispose()


def _queries(population: list[PersonFields]) -> list[SearchQuery]:
    queries = [c.query for c in generate_cases(population, 150, corruptions=1, seed=3)]
    queries += [c.query for c in generate_cases(population, 100, corruptions=2, seed=4)]
    for rec in population[:400:8]:  # loose ones: a date range, a family name at a postcode, an NHS number
        if rec.birth_date:
            queries.append(
                SearchQuery(
                    given=rec.given_names[0],
                    birth_date_from=rec.birth_date - timedelta(days=180),
                    birth_date_to=rec.birth_date + timedelta(days=180),
                )
            )
        if rec.postcodes:
            queries.append(SearchQuery(family=rec.family_names[0], postcode=rec.postcodes[0]))
        for system, value in rec.identifiers[:1]:
            queries.append(SearchQuery(identifier_system=system, identifier_value=value))
    queries += [SearchQuery(given="Olly", family="Smith", birth_date=date(2015, 3, d)) for d in range(1, 29)]
    queries += [
        SearchQuery(given="Oliver", family="Smyth", birth_date=date(2015, 5, d)) for d in range(1, 29)
    ]
    return queries


def _answer(engine: MatchingEngine, q: SearchQuery) -> tuple[object, list[tuple[object, ...]]]:
    try:
        result = engine.search(q)
    except CriteriaError as exc:
        return (exc.message, [])
    return (
        result.too_many,
        [(m.child_id, round(m.score, 9), m.grade, m.agreed, m.explanation) for m in result.matches],
    )


async def _awaited_answers(engine: MatchingEngine, queries: list[SearchQuery]) -> list[object]:
    """Each query through `asearch`, the node's requests awaited on this loop (its own client)."""
    assert isinstance(engine.backend, AsyncReads)
    answers: list[object] = []
    try:
        for q in queries:
            try:
                result = await engine.asearch(q)
            except CriteriaError as exc:
                answers.append((exc.message, []))
                continue
            answers.append(
                (
                    result.too_many,
                    [
                        (m.child_id, round(m.score, 9), m.grade, m.agreed, m.explanation)
                        for m in result.matches
                    ],
                )
            )
    finally:
        await engine.backend.aclose()
    return answers


def test_elasticsearch_answers_as_embedded_does(
    es: ElasticsearchBackend, embedded: EmbeddedBackend, population: list[PersonFields]
) -> None:
    queries = _queries(population)
    assert len(queries) >= 300
    on_es, on_sql = MatchingEngine(es), MatchingEngine(embedded)
    sql_answers = [_answer(on_sql, q) for q in queries]
    assert embedded.start_resident().wait_ready(60)
    resident_answers = [_answer(on_sql, q) for q in queries]
    es_answers = [_answer(on_es, q) for q in queries]
    assert resident_answers == sql_answers
    assert es_answers == sql_answers
    assert asyncio.run(_awaited_answers(on_es, queries)) == sql_answers  # as the app's routes ask
    # the comparison has teeth: most searches find someone, some find several, the candidate cap binds
    assert sum(1 for _, found in sql_answers if found) > len(queries) // 2
    assert sum(1 for _, found in sql_answers if len(found) > 1) > 10
    assert max(len(embedded.candidates(query_keys(q), CANDIDATE_LIMIT)) for q in queries) == CANDIDATE_LIMIT


def test_candidates_are_the_same_children_in_the_same_order(
    es: ElasticsearchBackend, embedded: EmbeddedBackend, population: list[PersonFields]
) -> None:
    """Before scoring: the same top 200, ties at the cap broken by child id. The crowd's ids share
    their first 8 bytes, so their tie-break number (`tiebreak`) ties too and the node is asked again."""
    queries = _queries(population)
    capped = 0
    for q in queries:
        keys = query_keys(q)
        on_es = [c.child_id for c in es.candidates(keys, CANDIDATE_LIMIT)]
        assert on_es == [c.child_id for c in embedded.candidates(keys, CANDIDATE_LIMIT)], q
        capped += len(on_es) == CANDIDATE_LIMIT
    assert capped > 10

    async def awaited() -> list[list[str]]:
        try:
            return [
                [c.child_id for c in await es.acandidates(query_keys(q), CANDIDATE_LIMIT)] for q in queries
            ]
        finally:
            await es.aclose()

    # awaited, the same (the crowd's ties too, which take the second request)
    assert asyncio.run(awaited()) == [
        [c.child_id for c in es.candidates(query_keys(q), CANDIDATE_LIMIT)] for q in queries
    ]


def test_the_tie_break_number_never_orders_ids_against_their_order() -> None:
    rng = random.Random(5)
    alphabet = "0123456789abcdef-xyzé中\U0001f600"
    hex_ids = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(2000)]
    ids = hex_ids + ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(2000)]
    ids += ["c" + "0" * 30 + "1", "c" + "0" * 31, "c", "c0", ""]
    ordered = sorted(set(ids))
    numbers = [tiebreak(i) for i in ordered]
    assert numbers == sorted(numbers)
    assert all(-(2**63) <= n < 2**63 for n in numbers)
    assert len({tiebreak(i) for i in hex_ids}) > 1990  # random hex ids rarely share one


def test_birth_filter_leaves_out_only_what_could_not_match(
    es: ElasticsearchBackend, embedded: EmbeddedBackend, population: list[PersonFields]
) -> None:
    from search.scoring import birth_filter

    for case in generate_cases(population, 60, corruptions=1, seed=9):
        keys, keep = query_keys(case.query), birth_filter(case.query)
        full = es.candidates(keys, 200)
        kept = es.candidates(keys, 200, keep_birth=keep)
        assert full == embedded.candidates(keys, 200)
        expected = full if keep is None else [r for r in full if keep(r.birth_date, r.expected_delivery_date)]
        assert kept == expected


def test_compact_record_round_trips() -> None:
    for rec in (
        build_person(),
        build_person(birth_date=None, expected_delivery_date=None, sex=None, identifiers=(), postcodes=()),
        build_person(shielded=True, identifiers=(("nhs", "9434765919"), ("local:x", "A|B"))),
    ):
        assert from_compact(compact(rec)) == rec


OLD_MAPPINGS = {
    # release 1: the whole record as `person`, no _meta
    1: ({}, {"person": {"type": "object", "enabled": False}}, lambda child: {"person": child.to_dict()}),
    # release 2: the compact record as `p` in _source
    2: (
        {"_meta": {"childindex_mapping": 2}},
        {"p": {"type": "object", "enabled": False}},
        lambda child: {"p": compact(child)},
    ),
    # release 3: the compact record in doc values (`r`) and the tie-break `t`, no day numbers
    3: (
        {"_meta": {"childindex_mapping": 3}},
        {"r": {"type": "binary", "doc_values": True}, "t": {"type": "long", "index": False}},
        lambda child: {
            "r": b64encode(json.dumps(compact(child)).encode()).decode(),
            "t": tiebreak(child.child_id),
        },
    ),
}


@pytest.mark.parametrize("version", sorted(OLD_MAPPINGS))
def test_an_index_of_an_old_mapping_is_detected_not_a_500(version: int) -> None:
    url = require_env(ES_URL_ENV, "Elasticsearch")
    alias = f"childindex-old-{uuid.uuid4().hex[:12]}"
    backend = ElasticsearchBackend.from_url(url, alias=alias, refresh="wait_for")
    client = backend.client
    meta, record_field, record = OLD_MAPPINGS[version]
    client.indices.create(  # as that release made it
        index=f"{alias}-20250101000000000000",
        mappings={
            **meta,
            "dynamic": "strict",
            "properties": {
                "child_id": {"type": "keyword"},
                "keys": {"type": "keyword", "doc_values": False},
                "identifiers": {"type": "keyword", "doc_values": False},
                **record_field,
            },
        },
        aliases={alias: {"is_write_index": True}},
    )
    try:
        child = build_person()
        client.index(
            index=alias,
            id=child.child_id,
            document={
                "child_id": child.child_id,
                "keys": ["fy|x|2015"],
                "identifiers": [],
                **record(child),
            },
            refresh=True,
        )
        reason = backend.outdated_reason()
        assert reason is not None and "childindex reindex" in reason and f"version {version}" in reason
        backend.ensure_ready()  # leaves it alone
        with pytest.raises(IndexOutdated, match="childindex reindex"):
            backend.candidates(["fy|x|2015"], 10)

        async def awaited() -> None:
            try:
                await backend.acandidates(["fy|x|2015"], 10)
            finally:
                await backend.aclose()

        with pytest.raises(IndexOutdated, match="childindex reindex"):
            asyncio.run(awaited())  # as the app's routes ask: the same refusal
        backend.rebuild([child])  # what `childindex reindex` does
        assert backend.outdated_reason() is None
        assert backend.candidates(["fy|x|2015"], 10) == []
        assert (
            MatchingEngine(backend)
            .search(SearchQuery(identifier_system="nhs", identifier_value="9434765919"))
            .matches
        )
    finally:
        client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
        client.close()
