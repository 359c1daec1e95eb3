"""The matcher finds a child where a careful person would, on every backend, among a crowd of others:
exact or swapped names with a date of birth a year or one digit off, a surname change with an exact
date of birth and postcode (or a slip in the given name); and a near miss is never "certain"."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from search.matching import PROBABLE_AT, MatchingEngine, blocking_keys, query_keys
from search.port import PersonFields, SearchBackend, SearchQuery
from search.quality import generate_population
from tests.search.conftest import build_person

DOB = date(2015, 3, 7)
TARGET = build_person(
    child_id="a" * 32,
    given_names=("Alexander",),
    family_names=("Ashworth",),
    birth_date=DOB,
    postcodes=("OX4 1AB",),
)
# Those a careless matcher would take for him: his twin sister at the same address, and a namesake
# born the same day elsewhere, with another family name and another NHS number.
TWIN = replace(
    TARGET, child_id="b" * 32, given_names=("Beatrice",), sex="female", identifiers=(("nhs", "9434765870"),)
)
NAMESAKE = replace(
    TARGET,
    child_id="c" * 32,
    family_names=("Okafor",),
    postcodes=("M1 1AE",),
    identifiers=(("nhs", "9434765862"),),
)


@pytest.fixture
def engine(backend: SearchBackend) -> MatchingEngine:
    crowd = generate_population(400, seed=21)
    backend.rebuild([*crowd, TARGET, TWIN, NAMESAKE])
    return MatchingEngine(backend)


def q(**fields: object) -> SearchQuery:
    base: dict[str, object] = {"given": "Alexander", "family": "Ashworth", "birth_date": DOB}
    base.update(fields)
    return SearchQuery(**base)  # type: ignore[arg-type]


CAREFUL = [
    pytest.param(q(birth_date=date(2016, 3, 7)), id="names-exact-dob-a-year-out"),
    pytest.param(q(birth_date=date(2015, 3, 17)), id="names-exact-dob-one-digit-out"),
    pytest.param(
        q(given="Ashworth", family="Alexander", birth_date=date(2014, 3, 7)), id="names-swapped-year-out"
    ),
    pytest.param(
        q(given="Ashworth", family="Alexander", birth_date=date(2015, 3, 8)), id="names-swapped-digit-out"
    ),
    pytest.param(q(family="Turner", postcode="OX4 1AB"), id="new-surname-exact-dob-and-postcode"),
    pytest.param(q(family="Turner", given="Alexnader", sex="male"), id="new-surname-given-slip-exact-dob"),
    pytest.param(
        q(family="Turner", birth_date=date(2015, 3, 17), sex="male"), id="new-surname-dob-one-digit-out"
    ),
]


@pytest.mark.parametrize("query", CAREFUL)
def test_a_careful_persons_match_is_found_first_and_not_certain(
    engine: MatchingEngine, query: SearchQuery
) -> None:
    result = engine.search(query)
    assert result.matches, "nothing found"
    top = result.matches[0]
    assert top.child_id == TARGET.child_id, [m.explanation for m in result.matches[:3]]
    assert top.grade != "certain"  # each of these leaves something for a person to check
    assert all(m.grade != "certain" for m in result.matches)


def test_a_surname_change_at_the_same_address_is_probable(engine: MatchingEngine) -> None:
    top = engine.search(q(family="Turner", postcode="OX4 1AB", sex="male")).matches[0]
    assert top.child_id == TARGET.child_id
    assert top.score >= PROBABLE_AT and top.grade == "probable"
    assert "family name differs" in top.explanation


def test_near_misses_are_never_certain_and_never_first(engine: MatchingEngine) -> None:
    # Everything but the given name agrees with the twin; everything but the surname and
    # address with the namesake: the target is first, certain, and neither is either.
    matches = engine.search(q(postcode="OX4 1AB", sex="male")).matches
    assert matches[0].child_id == TARGET.child_id and matches[0].grade == "certain"
    others = {m.child_id: m for m in matches[1:]}
    for near in (TWIN, NAMESAKE):
        if near.child_id in others:
            assert others[near.child_id].grade != "certain"
    twin = others.get(TWIN.child_id)
    assert twin is None or twin.score < PROBABLE_AT


def test_a_namesake_is_not_probable_on_a_name_and_a_date_alone(engine: MatchingEngine) -> None:
    # Same given name and date of birth, another family name, another district: a person would want more.
    matches = engine.search(q(family="Okafor", postcode="OX4 1AB", sex="male")).matches
    by_id = {m.child_id: m for m in matches}
    assert NAMESAKE.child_id in by_id
    assert by_id[NAMESAKE.child_id].grade != "certain"


def test_a_given_initial_with_the_date_of_birth_is_a_key_for_record_and_query() -> None:
    rec: PersonFields = TARGET
    key = "gi|a|20150307"
    assert key in blocking_keys(rec)
    assert key in query_keys(q(given="Alexnader", family="Turner"))
    # (with the names swapped the family name's initial is tried as the given one's)
    assert key in query_keys(q(given="Turner", family="Alexnader"))
