"""Given-name equivalence groups (Bill ~ William, Kate ~ Catherine) from data/nicknames.csv."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from importlib import resources

from search.normalise import compact


def _load(lines: Iterable[str]) -> tuple[tuple[tuple[str, ...], ...], dict[str, frozenset[int]]]:
    groups: list[tuple[str, ...]] = []
    index: defaultdict[str, set[int]] = defaultdict(set)
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        names = tuple(dict.fromkeys(n for n in (compact(part) for part in line.split(",")) if n))
        if len(names) < 2:
            continue
        for name in names:
            index[name].add(len(groups))
        groups.append(names)
    return tuple(groups), {name: frozenset(ids) for name, ids in index.items()}


GROUPS, _INDEX = _load(
    resources.files("search").joinpath("data/nicknames.csv").read_text("utf-8").splitlines()
)


def groups_of(name: str) -> frozenset[int]:
    """Ids of the equivalence groups a (folded, compact) given name belongs to."""
    return _INDEX.get(name, frozenset())


def are_equivalent(a: str, b: str) -> bool:
    """True when two folded given names share a group (Alex ~ Alexandra, Bill ~ William)."""
    return a == b or not groups_of(a).isdisjoint(groups_of(b))


def formal_names(name: str) -> tuple[str, ...]:
    """The formal (first-listed) names of every group the name is in: "bill" -> ("william", ...)."""
    return tuple(dict.fromkeys(GROUPS[i][0] for i in sorted(groups_of(name))))
