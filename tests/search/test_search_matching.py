"""Blocking keys, scoring, grades, the criteria rule and the engine's caps."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta

import pytest

from search.fields import _compare_name
from search.matching import (
    CERTAIN_AT,
    MAX_RESULTS,
    POSSIBLE_AT,
    PROBABLE_AT,
    MatchingEngine,
    birth_filter,
    blocking_keys,
    normalised_query,
    query_fingerprint,
    query_keys,
    score,
    validate_criteria,
)
from search.port import CriteriaError, PersonFields, SearchBackend, SearchQuery, TooManyMatches
from search.scoring import _FLOOR, _assess
from tests.search.conftest import build_person

Builder = Callable[..., PersonFields]
DOB = date(2015, 3, 7)


def q(**fields: object) -> SearchQuery:
    base: dict[str, object] = {"given": "Alexander", "family": "Smith-Jones", "birth_date": DOB}
    base.update(fields)
    return SearchQuery(**base)  # type: ignore[arg-type]


# --- blocking ---------------------------------------------------------------------------------


def test_query_and_record_share_keys_despite_common_variations(make_person: Builder) -> None:
    rec = make_person()
    for query in (
        q(),
        q(given="Alex"),  # nickname
        q(given="Sasha", family="Jones"),  # nickname + one half of a double-barrelled name
        q(family="Smyth-Jones"),  # spelling
        q(birth_date=date(2015, 7, 3)),  # day/month swapped
        q(birth_date=date(2016, 3, 7), given="Alexandr"),  # year slip + typo
        q(given="Smith-Jones", family="Alexander"),  # name order
        q(family="Brown", postcode="ox4 1ab"),  # new surname, same address
        q(birth_date=None, birth_date_from=date(2014, 6, 1), birth_date_to=date(2015, 5, 31)),
    ):
        assert set(query_keys(query)) & blocking_keys(rec), query


def test_shielded_record_has_no_postcode_keys(make_person: Builder) -> None:
    visible = make_person(postcodes=("OX4 1AB", "OX3 9DU"))
    shielded = replace(visible, shielded=True)
    postcode_keys = {k for k in blocking_keys(visible) if "OX4" in k or "OX3" in k}
    assert postcode_keys
    assert not postcode_keys & blocking_keys(shielded)
    assert blocking_keys(shielded) == blocking_keys(replace(visible, postcodes=()))


def test_unborn_child_is_keyed_by_expected_delivery_date(make_person: Builder) -> None:
    unborn = make_person(given_names=(), birth_date=None, expected_delivery_date=date(2026, 5, 1))
    keys = blocking_keys(unborn)
    assert any(k.endswith("|2026") for k in keys)
    assert set(query_keys(SearchQuery(family="Smith-Jones", birth_date=date(2026, 5, 1)))) & keys


def test_identifier_keys(make_person: Builder) -> None:
    rec = make_person(identifiers=(("nhs", "943 476 5919"),))
    assert "id|nhs|9434765919" in blocking_keys(rec)
    query = SearchQuery(identifier_system="nhs", identifier_value="9434765919")
    assert "id|nhs|9434765919" in query_keys(query)


# --- scoring ----------------------------------------------------------------------------------


def _match(query: SearchQuery, rec: PersonFields) -> tuple[float, str, str]:
    m = score(query, rec)
    assert m is not None
    return m.score, m.grade, m.explanation


def test_exact_name_and_birth_date_is_certain(make_person: Builder) -> None:
    value, grade, why = _match(q(sex="male", postcode="OX4 1AB"), make_person())
    assert value >= CERTAIN_AT and grade == "certain"
    assert why == "family name exact; given name exact; date of birth exact; sex matches; postcode exact"


def test_names_and_birth_date_without_an_address_are_only_probable(make_person: Builder) -> None:
    value, grade, _ = _match(q(sex="male"), make_person())
    assert value >= CERTAIN_AT and grade == "probable"


def test_explanation_names_each_kind_of_agreement(make_person: Builder) -> None:
    rec = make_person(family_names=("Smith",))
    m = score(q(given="Alex", family="Smith", birth_date=date(2015, 7, 3), postcode="OX4 1ZZ"), rec)
    assert m is not None
    assert m.explanation == (
        "family name exact; given name is a known variant of Alexander; "
        "date of birth day/month swapped; postcode same sector"
    )
    assert m.agreed == ("family", "given", "birth_date", "postcode")
    assert m.grade == "probable"


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        (q(family="Jones"), "part of a double-barrelled"),
        (q(family="Smyth"), "family name sounds the same"),
        (q(given="Alexnader"), "given name"),
        (q(birth_date=date(2015, 3, 8)), "one digit different"),
        (q(birth_date=date(2015, 3, 17)), "one digit different"),
        (q(birth_date=date(2051, 3, 7)), "two digits transposed"),
        (q(postcode="OX4 2ZZ"), "postcode same district"),
        (q(given="Smith-Jones", family="Alexander"), "given and family names swapped"),
    ],
)
def test_partial_agreements_are_probable_or_possible(
    make_person: Builder, query: SearchQuery, phrase: str
) -> None:
    value, grade, why = _match(query, make_person())
    assert phrase in why
    assert value >= POSSIBLE_AT
    if "postcode" not in phrase:
        assert grade != "certain"


def test_previous_family_name_and_previous_address_count(make_person: Builder) -> None:
    rec = make_person(family_names=("Okafor", "Smith-Jones"), postcodes=("M1 1AE", "OX4 1AB"))
    value, _, why = _match(q(postcode="OX4 1AB"), rec)
    assert "previous name" in why and "previous address" in why
    current, _, _ = _match(q(postcode="OX4 1AB"), make_person())
    assert PROBABLE_AT <= value < current


def test_twin_with_a_different_given_name_is_at_most_possible(make_person: Builder) -> None:
    twin = make_person(given_names=("Beatrice",), sex="female")
    value, grade, why = _match(q(sex="male", postcode="OX4 1AB"), twin)
    assert "given name differs" in why and "sex differs" in why
    assert grade == "possible" or value < POSSIBLE_AT


def test_sibling_is_not_a_match(make_person: Builder) -> None:
    sibling = make_person(given_names=("Harriet",), birth_date=date(2017, 9, 1), sex="female")
    value, _, _ = _match(q(sex="male", postcode="OX4 1AB"), sibling)
    assert value < POSSIBLE_AT


def test_shielded_postcode_neither_helps_nor_hurts(make_person: Builder) -> None:
    rec = make_person(shielded=True)
    with_pc = score(q(postcode="OX4 1AB"), rec)
    other_pc = score(q(postcode="M1 1AE"), rec)
    without = score(q(), rec)
    assert with_pc == other_pc == without
    assert with_pc is not None and "postcode" not in with_pc.explanation


def test_unborn_child_matches_around_the_expected_date(make_person: Builder) -> None:
    unborn = make_person(given_names=(), birth_date=None, expected_delivery_date=date(2026, 5, 1))
    close = score(SearchQuery(family="Smith-Jones", birth_date=date(2026, 5, 9)), unborn)
    far = score(SearchQuery(family="Smith-Jones", birth_date=date(2025, 5, 9)), unborn)
    assert close is not None and far is not None
    assert close.score > far.score
    assert "expected delivery date" in close.explanation


def test_identifier_agreement_is_certain_and_disagreement_sinks(make_person: Builder) -> None:
    rec = make_person()
    agree = score(SearchQuery(identifier_system="nhs", identifier_value="943 476 5919"), rec)
    assert agree is not None and agree.score == 1.0 and agree.grade == "certain"
    clash = score(q(identifier_system="nhs", identifier_value="4010232137"), rec)
    assert clash is not None and clash.score < POSSIBLE_AT and "NHS number differs" in (clash.explanation)


def test_sex_other_or_unknown_is_not_evidence(make_person: Builder) -> None:
    rec = make_person(sex="unknown")
    assert score(q(sex="female"), rec) == score(q(), rec)


def test_thresholds_are_ordered() -> None:
    assert 0 < POSSIBLE_AT < PROBABLE_AT < CERTAIN_AT < 1


# --- criteria ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        SearchQuery(identifier_system="nhs", identifier_value="943 476 5919"),
        SearchQuery(identifier_system="upn", identifier_value="A123456789012"),
        SearchQuery(identifier_system="local:mosaic", identifier_value="M-778"),
        SearchQuery(family="Smith", birth_date=DOB),
        SearchQuery(given="Alex", birth_date=DOB),
        SearchQuery(family="Smith", birth_date_from=DOB, birth_date_to=DOB + timedelta(days=366)),
        SearchQuery(family="Smith", birth_date=DOB, sex="female", postcode="ox4", limit=1),
    ],
)
def test_allowed_criteria(query: SearchQuery) -> None:
    validate_criteria(query)


@pytest.mark.parametrize(
    ("query", "advice"),
    [
        (SearchQuery(), "Enter an NHS number"),
        (SearchQuery(postcode="OX4", sex="male"), "Enter an NHS number"),
        (
            SearchQuery(postcode="OX4 1AB", sex="male"),
            "Add a family name or a given name to search by postcode",
        ),
        (SearchQuery(family="Smith"), "Add a date of birth"),
        (SearchQuery(family="Smith", postcode="OX4"), "or a full postcode"),
        (SearchQuery(birth_date=DOB), "Add a family name or a given name"),
        (SearchQuery(family="--", birth_date=DOB), "at least one letter"),
        (SearchQuery(family="Smith", birth_date_from=DOB), "both ends"),
        (
            SearchQuery(family="Smith", birth_date_from=DOB, birth_date_to=DOB - timedelta(days=1)),
            "swap them",
        ),
        (
            SearchQuery(family="Smith", birth_date_from=DOB, birth_date_to=DOB + timedelta(days=367)),
            "at most 366 days (it spans 367 days)",
        ),
        (
            SearchQuery(family="Smith", birth_date=DOB, birth_date_from=DOB, birth_date_to=DOB),
            "not both",
        ),
        (SearchQuery(identifier_system="nhs", identifier_value="9434765918"), "check digit"),
        (SearchQuery(identifier_system="upn", identifier_value="12345"), "Unique Pupil Number"),
        (SearchQuery(identifier_system="passport", identifier_value="1"), "Unknown kind"),
        (SearchQuery(identifier_system="nhs"), "both the kind of identifier and its value"),
        (SearchQuery(family="Smith", birth_date=DOB, postcode="nowhere"), "not a UK postcode"),
        (SearchQuery(family="Smith", birth_date=DOB, sex="f"), "Sex must be one of"),
        (SearchQuery(family="Smith", birth_date=DOB, limit=11), "between 1 and 10"),
    ],
)
def test_refused_criteria_say_what_to_do(query: SearchQuery, advice: str) -> None:
    with pytest.raises(CriteriaError) as caught:
        validate_criteria(query)
    assert advice in str(caught.value)


# --- engine -----------------------------------------------------------------------------------


def test_engine_caps_and_reports_too_many(sqlite_backend: SearchBackend, make_person: Builder) -> None:
    olivers = [
        make_person(
            given_names=("Oliver",),
            family_names=("Smith",),
            birth_date=date(2015, 1, 1) + timedelta(days=20 * i),
            identifiers=(),
        )
        for i in range(MAX_RESULTS + 2)
    ]
    sqlite_backend.upsert(olivers)
    engine = MatchingEngine(sqlite_backend)
    loose = SearchQuery(
        given="Oliver",
        family="Smith",
        birth_date_from=date(2015, 1, 1),
        birth_date_to=date(2015, 12, 31),
    )
    result = engine.search(loose)
    assert result.too_many and result.matches == ()
    with pytest.raises(TooManyMatches):
        result.raise_if_too_many()
    exact = engine.search(
        replace(
            loose,
            birth_date=olivers[3].birth_date,
            birth_date_from=None,
            birth_date_to=None,
            postcode="OX4 1AB",
            limit=3,
        )
    )
    assert not exact.too_many
    assert exact.matches[0].child_id == olivers[3].child_id
    assert exact.matches[0].grade == "certain"
    assert len(exact.matches) <= 3
    assert exact.raise_if_too_many() is exact


def test_engine_falls_back_to_demographics_for_an_unknown_identifier(
    sqlite_backend: SearchBackend, make_person: Builder
) -> None:
    child = make_person()
    sqlite_backend.upsert([child])
    engine = MatchingEngine(sqlite_backend)
    unknown = SearchQuery(identifier_system="nhs", identifier_value="4010232137")
    assert engine.search(unknown).matches == ()
    result = engine.search(replace(q(), identifier_system="upn", identifier_value="A123456789012"))
    assert [m.child_id for m in result.matches] == [child.child_id]


def test_engine_validates_before_searching(sqlite_backend: SearchBackend) -> None:
    with pytest.raises(CriteriaError):
        MatchingEngine(sqlite_backend).search(SearchQuery(family="Smith"))


def test_fingerprint_is_of_the_normalised_query_and_keyable() -> None:
    a = SearchQuery(given="Zoë", family="O'Brien", birth_date=DOB, postcode="ox41ab")
    b = SearchQuery(given="zoe", family="OBRIEN", birth_date=DOB, postcode="OX4 1AB")
    assert query_fingerprint(a) == query_fingerprint(b)
    assert len(query_fingerprint(a)) == 64
    assert "obrien" not in query_fingerprint(a)
    assert query_fingerprint(a, b"k1") != query_fingerprint(a, b"k2") != query_fingerprint(a)
    assert normalised_query(a)["postcode"] == "OX4 1AB"


def test_the_birth_filter_rules_out_only_records_that_could_not_match() -> None:
    """keep_birth False means rank would have dropped the record unscored, whatever else it holds."""
    rng = random.Random(29)
    day = date(2015, 3, 7)
    dates = [day, date(2015, 7, 3), date(2015, 3, 8), date(2015, 3, 17), date(2051, 3, 7), date(2016, 3, 7)]
    dates += [day + timedelta(days=rng.randrange(-800, 800)) for _ in range(60)]
    queries = [
        SearchQuery(given="Alex", family="Smith", birth_date=day),
        SearchQuery(given="Alex", family="Smith", birth_date=day, sex="male"),
        SearchQuery(given="Alex", family="Smith", birth_date=day, postcode="OX4 1AB"),
        SearchQuery(family="Smith", birth_date_from=date(2015, 1, 1), birth_date_to=date(2015, 12, 31)),
        SearchQuery(
            given="Alex",
            family="Smith",
            birth_date=day,
            identifier_system="nhs",
            identifier_value="9434765919",
        ),
    ]
    assert birth_filter(SearchQuery(given="A", family="B")) is None  # no date: nothing to test
    ruled_out = 0
    for q in queries:
        keep = birth_filter(q)
        assert keep is not None
        for _ in range(400):
            born = rng.choice([*dates, None])
            rec = build_person(
                given_names=(rng.choice(["Alexander", "Alex", "Sam", "Al"]),),
                family_names=(rng.choice(["Smith", "Smyth", "Jones"]),),
                birth_date=born,
                expected_delivery_date=None if born else rng.choice([None, *dates]),
                sex=rng.choice(["male", "female", None]),
                postcodes=(rng.choice(["OX4 1AB", "OX4 1ZZ", "OX1 2CD"]),),
                identifiers=(("nhs", rng.choice(["9434765919", "9434765870"])),),
            )
            if not keep(rec.birth_date, rec.expected_delivery_date):
                ruled_out += 1
                assert _assess(q, rec, floor=_FLOOR) is None, (q, rec)
    assert ruled_out > 100  # the test exercised the filter, not just its "keep" side


def test_every_date_near_an_exact_date_of_birth_is_listed() -> None:
    """The birth filter weighs only the dates _near_dates lists: every other date must "differ"."""
    from search.fields import birth_field as _birth_field
    from search.scoring import _near_dates

    rng = random.Random(31)
    for _ in range(40):
        day = date(2000, 1, 1) + timedelta(days=rng.randrange(0, 9000))
        q = SearchQuery(given="Alex", family="Smith", birth_date=day)
        near = _near_dates(day)
        others = [day + timedelta(days=rng.randrange(-4000, 4000)) for _ in range(300)]
        others += [date(int(str(day.year)[::-1][:4].rjust(4, "1")), day.month, 1), day.replace(day=1)]
        for born in [*near, *others]:
            field = _birth_field(q, born, None)
            assert field is not None
            assert (born in near) == (field.level != "differs"), (day, born, field.level)


def test_remembered_name_answers_are_not_walked_by_the_garbage_collector() -> None:
    """The name comparisons' cache holds up to a quarter of a million answers: as plain tuples of
    atoms the collector stops following them, as objects every full collection walked them all
    (32 ms pauses every 60 searches at 1,000,000 children)."""
    answers = [
        _compare_name(q, names, given)
        for q, names, given in [
            ("oliver", ("olivia", "ollie"), True),
            ("smith", ("smyth",), False),
            ("jo", ("joanna",), True),
        ]
    ]
    gc.collect()
    assert all(a is not None and not gc.is_tracked(a) for a in answers)
