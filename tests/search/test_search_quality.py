"""Match quality on a labelled synthetic population, through the embedded SQLite backend."""

from __future__ import annotations

import pytest

from search.matching import MatchingEngine
from search.port import SearchBackend
from search.quality import evaluate, format_report, generate_cases, generate_population

POPULATION = 2000
CASES = 1000


@pytest.fixture
def engine(sqlite_backend: SearchBackend) -> MatchingEngine:
    sqlite_backend.rebuild(generate_population(POPULATION, seed=1))
    return MatchingEngine(sqlite_backend)


@pytest.mark.parametrize(
    ("corruptions", "min_recall"),
    [pytest.param(1, 0.995, id="single"), pytest.param(2, 0.98, id="double")],
)
def test_top1_recall_and_false_certain(engine: MatchingEngine, corruptions: int, min_recall: float) -> None:
    population = generate_population(POPULATION, seed=1)
    cases = generate_cases(population, CASES, corruptions=corruptions, seed=10 + corruptions)
    report = evaluate(engine, cases)
    summary = format_report(f"{corruptions} corruption(s)", report)
    assert report.recall_top1 >= min_recall, summary
    assert report.false_certain_rate <= 0.001, summary


def test_every_corruption_kind_is_exercised() -> None:
    population = generate_population(200, seed=3)
    cases = generate_cases(population, 400, corruptions=1, seed=4)
    kinds = {c.corruptions[0] for c in cases}
    assert kinds >= {
        "typo_given",
        "typo_family",
        "nickname",
        "dob_swap",
        "dob_digit",
        "moved",
        "surname_change",
        "missing",
        "date_range",
        "name_order",
    }


def test_population_is_deterministic_and_unique() -> None:
    a, b = generate_population(300, seed=5), generate_population(300, seed=5)
    assert a == b
    assert len({p.child_id for p in a}) == 300
    assert len({(p.given_names[0], p.family_names[0], p.birth_date) for p in a}) == 300
