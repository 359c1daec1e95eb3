"""The duplicates report's engine (search/duplicates.py), on every backend: planted duplicates found,
twins and namesakes not paired, a shared identifier certain, a shielded pair marked and withheld, and
files that hold ids and codes, never personal data."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from search.duplicates import DuplicatePair, find_duplicates, visible_pairs, write_report
from search.port import PersonFields, SearchBackend
from search.quality import generate_population, plant_duplicates
from tests.search.conftest import build_person

CHILD = build_person(
    child_id="1" * 32,
    given_names=("Harriet",),
    family_names=("Kettleby",),
    birth_date=date(2016, 9, 14),
    sex="female",
    postcodes=("LS6 2QT",),
    identifiers=(("nhs", "9434765919"),),
)
# A second feed's record of her: no NHS number, a slip in the given name.
FEED_COPY = replace(CHILD, child_id="2" * 32, given_names=("Harriett",), identifiers=())
# Her twin brother, and a namesake born the same day in another city with another NHS number.
TWIN = replace(
    CHILD, child_id="3" * 32, given_names=("Oscar",), sex="male", identifiers=(("nhs", "9434765870"),)
)
NAMESAKE = replace(
    CHILD,
    child_id="4" * 32,
    postcodes=("EX1 1AA",),
    family_names=("Okafor",),
    identifiers=(("nhs", "9434765862"),),
)
# Two records holding one NHS number, found by it although the dates of birth differ (day and month
# swapped) and the names are spelled differently: certain, since nothing disagrees.
SAME_NHS = replace(
    CHILD,
    child_id="5" * 32,
    given_names=("Zara",),
    family_names=("Mensah",),
    birth_date=date(2012, 1, 2),
    identifiers=(("nhs", "9434765846"),),
)
SAME_NHS_COPY = replace(SAME_NHS, child_id="6" * 32, given_names=("Zahra",), birth_date=date(2012, 2, 1))
# A shielded child and an unshielded copy a feed made of her (the 2009 case).
SHIELDED = build_person(
    child_id="7" * 32,
    given_names=("Imogen",),
    family_names=("Thornbury",),
    birth_date=date(2018, 4, 2),
    sex="female",
    postcodes=(),
    identifiers=(("nhs", "9434765838"),),
    shielded=True,
)
SHIELDED_COPY = replace(SHIELDED, child_id="8" * 32, postcodes=("NG7 1AB",), identifiers=(), shielded=False)

PEOPLE = [CHILD, FEED_COPY, TWIN, NAMESAKE, SAME_NHS, SAME_NHS_COPY, SHIELDED, SHIELDED_COPY]


@pytest.fixture
def indexed(backend: SearchBackend) -> SearchBackend:
    backend.rebuild([*generate_population(300, seed=31), *PEOPLE])
    return backend


def _pairs(backend: SearchBackend, records: list[PersonFields]) -> dict[tuple[str, str], DuplicatePair]:
    report = find_duplicates(backend, records)
    return {(p.first, p.second): p for p in report.pairs}


def test_the_feeds_copy_is_paired_and_the_twin_and_namesake_are_not(indexed: SearchBackend) -> None:
    report = find_duplicates(indexed, [*generate_population(300, seed=31), *PEOPLE])
    pairs = {(p.first, p.second): p for p in report.pairs}
    copy = pairs[(CHILD.child_id, FEED_COPY.child_id)]
    assert copy.grade in ("probable", "certain")
    assert {"family", "birth_date", "postcode"} <= set(copy.agreed)
    for other in (TWIN, NAMESAKE):
        assert (CHILD.child_id, other.child_id) not in pairs
        assert (FEED_COPY.child_id, other.child_id) not in pairs
        assert (min(FEED_COPY.child_id, other.child_id), max(FEED_COPY.child_id, other.child_id)) not in pairs
    assert report.children == 300 + len(PEOPLE)


def test_records_sharing_an_nhs_number_are_a_certain_pair(
    indexed: SearchBackend,
) -> None:
    pair = _pairs(indexed, [SAME_NHS])[(SAME_NHS.child_id, SAME_NHS_COPY.child_id)]
    assert pair.grade == "certain"
    assert "identifier" in pair.agreed


def test_a_pair_with_a_shielded_child_is_marked_from_either_side_and_withheld(indexed: SearchBackend) -> None:
    for side in (SHIELDED, SHIELDED_COPY):
        report = find_duplicates(indexed, [side])
        [pair] = [p for p in report.pairs if SHIELDED.child_id in (p.first, p.second)]
        assert pair.second == SHIELDED_COPY.child_id and pair.shielded
        assert visible_pairs(report.pairs, sees_shielded=False) == [p for p in report.pairs if not p.shielded]
        assert pair in visible_pairs(report.pairs, sees_shielded=True)


def test_each_pair_is_listed_once_with_its_better_score(indexed: SearchBackend) -> None:
    report = find_duplicates(indexed, [CHILD, FEED_COPY, CHILD])
    ids = [(p.first, p.second) for p in report.pairs]
    assert len(ids) == len(set(ids))
    assert all(p.first < p.second for p in report.pairs)


def test_the_report_files_hold_ids_grades_and_field_names_only(
    indexed: SearchBackend, tmp_path: Path
) -> None:
    report = find_duplicates(indexed, PEOPLE)
    assert report.pairs
    for name in ("pairs.csv", "pairs.json"):
        path = tmp_path / name
        write_report(report.pairs, path)
        text = path.read_text()
        for personal in ("Harriet", "Kettleby", "2016", "LS6", "9434765919", "Thornbury", "NG7"):
            assert personal not in text, (name, personal)
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
    assert set(rows[0]) == {"first", "second", "grade", "score", "agreed"}
    assert json.loads((tmp_path / "pairs.json").read_text())["pairs"][0]["grade"] in ("certain", "probable")


def test_planted_duplicates_are_found_with_few_false_pairs(sqlite_backend: SearchBackend) -> None:
    population = generate_population(3000, seed=41)
    copies, planted = plant_duplicates(population, 150, seed=42)
    directory = population + copies
    sqlite_backend.rebuild(directory)
    report = find_duplicates(sqlite_backend, directory)
    found = {(p.first, p.second) for p in report.pairs}
    assert len(planted & found) >= 0.95 * len(planted)
    assert len(found - planted) <= 0.002 * len(directory)
