"""The contract every SearchBackend keeps, run against each real backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

from search.matching import MatchingEngine, blocking_keys, identifier_key, query_keys
from search.port import PersonFields, SearchBackend, SearchQuery

Builder = Callable[..., PersonFields]


def test_satisfies_the_protocol(backend: SearchBackend) -> None:
    assert isinstance(backend, SearchBackend)
    assert backend.name in {"embedded", "elasticsearch"}


def test_ensure_ready_is_idempotent_and_starts_empty(backend: SearchBackend) -> None:
    backend.ensure_ready()
    backend.ensure_ready()
    assert backend.count() == 0


def test_upsert_is_idempotent(backend: SearchBackend, make_person: Builder) -> None:
    child = make_person()
    backend.upsert([child])
    backend.upsert([child])
    backend.upsert([child, child])
    assert backend.count() == 1
    assert backend.candidates(sorted(blocking_keys(child)), 10) == [child]


def test_upsert_replaces_the_record_and_its_keys(backend: SearchBackend, make_person: Builder) -> None:
    before = make_person(family_names=("Wójcik",))
    backend.upsert([before])
    after = replace(before, family_names=("Okafor",), birth_date=date(2016, 1, 2))
    backend.upsert([after])
    assert backend.count() == 1
    only_old = sorted(blocking_keys(before) - blocking_keys(after))
    assert only_old
    assert backend.candidates(only_old, 10) == []
    assert backend.candidates(sorted(blocking_keys(after)), 10) == [after]


def test_delete_removes_and_is_idempotent(backend: SearchBackend, make_person: Builder) -> None:
    keep, drop = make_person(), make_person(given_names=("Beatrice",), sex="female")
    backend.upsert([keep, drop])
    backend.delete([drop.child_id, "0" * 32])
    backend.delete([drop.child_id])
    backend.delete([])
    assert backend.count() == 1
    assert [p.child_id for p in backend.candidates(sorted(blocking_keys(drop)), 10)] == [keep.child_id]


def test_candidates_rank_by_shared_keys_and_respect_the_limit(
    backend: SearchBackend, make_person: Builder
) -> None:
    target = make_person(
        given_names=("Kate",),
        family_names=("Achterberg",),
        sex="female",
        birth_date=date(2012, 11, 5),
        identifiers=(),
    )
    sibling = make_person(
        given_names=("Tom",),
        family_names=("Achterberg",),
        birth_date=date(2014, 1, 9),
        identifiers=(),
    )
    stranger = make_person(
        given_names=("Zainab",),
        family_names=("Okafor",),
        sex="female",
        birth_date=date(2012, 11, 5),
        postcodes=("M1 1AE",),
        identifiers=(),
    )
    backend.upsert([stranger, sibling, target])
    keys = query_keys(SearchQuery(given="Katherine", family="Achterberg", birth_date=date(2012, 11, 5)))
    found = backend.candidates(keys, 10)
    assert found[0] == target
    assert {p.child_id for p in found} <= {target.child_id, sibling.child_id, stranger.child_id}
    assert backend.candidates(keys, 1) == [target]
    assert backend.candidates([], 10) == []
    assert backend.candidates(["no|such|key"], 10) == []


def test_by_identifier_finds_exactly_that_identifier(backend: SearchBackend, make_person: Builder) -> None:
    child = make_person(
        identifiers=(("nhs", "9434765919"), ("upn", "A123456789012"), ("local:mosaic", "M-778"))
    )
    other = make_person(given_names=("Ivy",), identifiers=(("nhs", "9434765870"),))
    backend.upsert([child, other])
    assert backend.by_identifier("nhs", "943 476 5919") == [child]
    assert backend.by_identifier("upn", "a123456789012") == [child]
    assert backend.by_identifier("local:mosaic", "M-778") == [child]
    assert backend.by_identifier("local:other", "M-778") == []
    assert backend.by_identifier("nhs", "9434765828") == []


def test_rebuild_replaces_everything_and_reports_progress(
    backend: SearchBackend, make_person: Builder
) -> None:
    stale = make_person(given_names=("Stale",))
    backend.upsert([stale])
    fresh = [make_person(given_names=(f"Child{i}",), identifiers=()) for i in range(2500)]
    seen: list[int] = []
    assert backend.rebuild(iter(fresh), seen.append) == 2500
    assert seen and seen[-1] == 2500 and seen == sorted(seen)
    assert backend.count() == 2500
    assert backend.candidates(sorted(blocking_keys(stale) - blocking_keys(fresh[0])), 10) == []
    assert backend.rebuild([]) == 0
    assert backend.count() == 0


def test_rebuild_swaps_the_elasticsearch_alias(backend: SearchBackend, make_person: Builder) -> None:
    if backend.name != "elasticsearch":
        return
    from search.elasticsearch import ElasticsearchBackend

    assert isinstance(backend, ElasticsearchBackend)
    (first,) = backend.client.indices.get_alias(name=backend.alias).body
    backend.rebuild([make_person()])
    (second,) = backend.client.indices.get_alias(name=backend.alias).body
    assert second != first and second.startswith(f"{backend.alias}-")
    assert not backend.client.indices.exists(index=first)
    assert backend.count() == 1
    backend.upsert([make_person(given_names=("Later",))])  # writes follow the alias
    assert backend.count() == 2


def test_shielded_child_is_never_found_by_postcode(backend: SearchBackend, make_person: Builder) -> None:
    hidden = make_person(shielded=True, postcodes=("OX4 1AB", "OX3 9DU"))
    backend.upsert([hidden])
    visible = replace(hidden, shielded=False)
    postcode_keys = sorted(k for k in blocking_keys(visible) if k.startswith(("pg|", "dp|")))
    assert postcode_keys
    assert backend.candidates(postcode_keys, 10) == []
    (stored,) = backend.candidates(sorted(blocking_keys(visible)), 10)
    assert stored.postcodes == ()  # the address never reaches the index
    assert stored.shielded


def test_engine_searches_through_the_backend(backend: SearchBackend, make_person: Builder) -> None:
    child = make_person(given_names=("William",), family_names=("O'Brien",), birth_date=date(2013, 4, 2))
    twin = replace(
        make_person(),
        given_names=("Harriet",),
        family_names=("O'Brien",),
        birth_date=date(2013, 4, 2),
        sex="female",
        identifiers=(),
    )
    backend.upsert([child, twin])
    engine = MatchingEngine(backend)
    result = engine.search(SearchQuery(given="Bill", family="obrien", birth_date=date(2013, 2, 4)))
    assert not result.too_many
    assert result.matches[0].child_id == child.child_id
    assert "day/month swapped" in result.matches[0].explanation
    by_nhs = engine.search(SearchQuery(identifier_system="nhs", identifier_value="9434765919"))
    assert [m.child_id for m in by_nhs.matches] == [child.child_id]
    assert by_nhs.matches[0].grade == "certain"
    assert identifier_key("nhs", "943 476 5919") == "id|nhs|9434765919"
