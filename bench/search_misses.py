"""Why the matcher misses: each labelled search whose child is not ranked first, classified.

    uv run python bench/search_misses.py [--people 50000] [--cases 2000] [--corruptions 2]
        [--show 40]

Builds the same population and cases as bench/search_quality.py (same seeds), runs them through
the engine on the embedded backend and, for every miss, scores the whole population by brute force
(no blocking) to say which step lost the child:

- blocking: the child was not among the backend's candidates, yet would have been shown;
- hidden: the child scores below "possible", so it is not shown at all;
- outscored: shown, but another child scores higher;
- tied: shown with exactly the first child's score;
- shielded: a shielded child, which only its current family name or an identifier finds (by design).

and whether the case is *undecidable*: another real child agrees with the corrupted query at least
as well on every field (each field's verdict weighs at least as much, so no weighting of the
fields could put the true child strictly first).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine

from search.blocking import query_keys
from search.embedded import EmbeddedBackend
from search.matching import CANDIDATE_LIMIT, MatchingEngine
from search.port import PersonFields, SearchQuery
from search.quality import Case, generate_cases, generate_population
from search.scoring import POSSIBLE_AT, _assess, _near_dates, birth_filter


def _profile(q: SearchQuery, rec: PersonFields) -> tuple[float, dict[str, float]] | None:
    assessed = _assess(q, rec)
    if assessed is None:
        return None
    value, fields, swapped = assessed
    weights = {f.name: f.weight for f in fields}
    if swapped:
        for name in ("given", "family"):
            if name in weights:
                weights[name] -= 0.5  # the swap penalty, shared between the two names
    return value, weights


def _at_least_as_close(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether profile a agrees with the query at least as well as b on every field b has."""
    return all(a.get(name, 0.0) >= weight for name, weight in b.items())


class Population:
    """The labelled population, with its children by date of birth (to find rivals fast)."""

    def __init__(self, people: list[PersonFields]) -> None:
        self.people = people
        self.by_id = {p.child_id: p for p in people}
        self.by_birth: dict[date, list[PersonFields]] = defaultdict(list)
        self.unborn = [p for p in people if p.birth_date is None]
        for p in people:
            if p.birth_date is not None:
                self.by_birth[p.birth_date].append(p)

    def rivals(self, q: SearchQuery, target: PersonFields) -> tuple[float, dict[str, float], int]:
        """The target's score and field weights, and how many other children are at least as close
        to the query on every field."""
        mine = _profile(q, target)
        if mine is None:
            return 0.0, {}, 0
        pool: Iterable[PersonFields] = self.people
        if mine[1].get("birth_date", 0.0) > 0:  # a rival's date of birth must agree as well
            if q.birth_date is not None:
                pool = [p for d in _near_dates(q.birth_date) for p in self.by_birth.get(d, ())]
                pool += self.unborn
            elif q.birth_date_from and q.birth_date_to:
                days = (q.birth_date_to - q.birth_date_from).days
                pool = [
                    p
                    for n in range(days + 1)
                    for p in self.by_birth.get(q.birth_date_from + timedelta(days=n), ())
                ] + self.unborn
        count = 0
        for p in pool:
            if p.child_id != target.child_id:
                theirs = _profile(q, p)
                count += theirs is not None and _at_least_as_close(theirs[1], mine[1])
        return mine[0], mine[1], count


def classify(engine: MatchingEngine, population: Population, case: Case) -> tuple[str, bool, str]:
    """(step, undecidable, words) for a case; step "first" when the child is ranked first."""
    q = case.query
    result = engine.search(q)
    ids = [m.child_id for m in result.matches]
    target = population.by_id[case.target]
    t_score, fields, rivals = population.rivals(q, target)
    undecidable = rivals > 0
    top = result.matches[0].score if result.matches else 0.0
    words = f"target {t_score:.3f} top {top:.3f} rivals {rivals} fields {fields}"
    if ids and ids[0] == case.target:
        return "first", undecidable, words
    candidates = {
        c.child_id
        for c in engine.backend.candidates(query_keys(q), CANDIDATE_LIMIT, keep_birth=birth_filter(q))
    }
    if target.shielded and not fields:
        step = "shielded"
    elif t_score < POSSIBLE_AT:
        step = "hidden"
    elif case.target not in candidates:
        step = "blocking"
    elif case.target in ids and result.matches[ids.index(case.target)].score == top:
        step = "tied"
    else:
        step = "outscored"
    return step, undecidable, words


def main(argv: list[str] | None = None) -> int:
    """Classify the misses and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corruptions", type=int, default=2)
    parser.add_argument("--show", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedBackend(create_engine(f"sqlite:///{Path(tmp) / 'misses.db'}"))
        backend.ensure_ready()
        people = generate_population(args.people, seed=args.seed)
        backend.rebuild(people)
        population = Population(people)
        engine = MatchingEngine(backend)
        cases = generate_cases(
            people, args.cases, corruptions=args.corruptions, seed=args.seed + 10 + args.corruptions
        )
        table: Counter[tuple[str, bool]] = Counter()
        by_pair: Counter[tuple[str, ...]] = Counter()
        shown = 0
        for case in cases:
            step, undecidable, words = classify(engine, population, case)
            table[(step, undecidable)] += 1
            if step == "first":
                continue
            by_pair[case.corruptions] += 1
            if shown < args.show:
                shown += 1
                verdict = "undecidable" if undecidable else "decidable"
                print(f"{step:<9} {verdict:<11} {case.corruptions} {words}")
                print(f"          {case.query}")
        misses = sum(n for (step, _), n in table.items() if step != "first")
        decidable = sum(n for (_, undecidable), n in table.items() if not undecidable)
        print(f"\n{misses} misses of {len(cases)} ({1 - misses / len(cases):.2%} top-1)")
        print(
            f"{len(cases) - decidable} undecidable cases (another child at least as close on every field); "
            f"top-1 among the {decidable} others {table[('first', False)] / max(decidable, 1):.2%}"
        )
        for (step, undecidable), n in sorted(table.items()):
            print(f"  {step:<9} {'undecidable' if undecidable else 'decidable':<11} {n:4d}")
        print("  by corruptions:")
        for pair, n in by_pair.most_common():
            print(f"    {' + '.join(pair):<32} {n:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
