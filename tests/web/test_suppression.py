"""Small-number suppression of the locality overview: the rule on its own, without a database."""

from __future__ import annotations

from childindex.web.localities import Figure, LocalityStats, publish, suppress_row


def shown(row: dict[str, Figure]) -> dict[str, object]:
    return {k: f.value if f.value is not None else f.note for k, f in row.items()}


def test_small_counts_are_shown_as_fewer_than_the_threshold_and_zero_is_shown() -> None:
    row = suppress_row({"a": 0, "b": 3, "c": 12, "d": 40}, 5, total_shown=False)
    assert shown(row) == {"a": 0, "b": "fewer than 5", "c": 12, "d": 40}


def test_one_small_cell_under_a_published_total_takes_the_next_smallest_with_it() -> None:
    # total 55: without the second withheld cell, 55 - 12 - 40 would give b = 3
    row = suppress_row({"b": 3, "c": 12, "d": 40}, 5, total_shown=True)
    assert shown(row) == {"b": "fewer than 5", "c": "withheld", "d": 40}


def test_withheld_cells_add_up_to_at_least_the_threshold() -> None:
    # 1 + 1 = 2 would reveal both ones; a zero does not help either, so 30 is withheld too
    row = suppress_row({"a": 1, "b": 1, "z": 0, "c": 30, "d": 60}, 5, total_shown=True)
    assert shown(row) == {"a": "fewer than 5", "b": "fewer than 5", "z": "withheld", "c": "withheld", "d": 60}
    two_big_enough = suppress_row({"a": 4, "b": 3, "c": 30}, 5, total_shown=True)
    assert shown(two_big_enough) == {"a": "fewer than 5", "b": "fewer than 5", "c": 30}


def test_nothing_is_withheld_when_no_cell_is_small_or_the_threshold_is_off() -> None:
    assert shown(suppress_row({"a": 0, "b": 5, "c": 9}, 5, total_shown=True)) == {"a": 0, "b": 5, "c": 9}
    assert shown(suppress_row({"a": 1, "b": 2}, 0, total_shown=True)) == {"a": 1, "b": 2}
    assert shown(suppress_row({"a": 1, "b": 2}, 1, total_shown=True)) == {"a": 1, "b": 2}


def test_a_small_locality_total_withholds_its_whole_row() -> None:
    stats = LocalityStats("X", "X locality", by_level={1: 2, 2: 1, 3: 0, 4: 0})
    published = publish(stats, 5)
    assert published.children.note == "fewer than 5"
    assert {f.note for f in published.by_level.values()} == {"withheld"}


def test_no_published_level_can_be_worked_out_from_the_total() -> None:
    stats = LocalityStats(
        "X",
        "X locality",
        by_level={1: 120, 2: 2, 3: 7, 4: 0},
        measures={"open_cafs": 3},
        by_service={"yw": 4},
    )
    published = publish(stats, 5)
    assert published.children.value == 129
    hidden = [k for k, f in published.by_level.items() if f.value is None]
    assert set(hidden) == {2, 3, 4}
    assert sum(stats.by_level[k] for k in hidden) >= 5
    assert published.measures["open_cafs"].note == "fewer than 5"
    assert published.by_service["yw"].note == "fewer than 5"
