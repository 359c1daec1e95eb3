"""CPU per search of the matching engine alone, with the resident copy, as `serve` runs it.

    uv run python bench/search_cpu.py [--people 50000] [--cases 2000] [--repeat 3]

Builds the labelled population of search.quality, indexes it in the embedded backend on SQLite,
loads the resident copy, then runs the single- and double-slip searches of bench/search_quality.py
through MatchingEngine `--repeat` times and prints the best CPU time a search (no HTTP, no audit).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine

from search.embedded import EmbeddedBackend
from search.matching import MatchingEngine
from search.quality import generate_cases, generate_population


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedBackend(create_engine(f"sqlite:///{Path(tmp) / 'cpu.db'}"))
        backend.ensure_ready()
        population = generate_population(args.people, seed=args.seed)
        backend.rebuild(population)
        backend.start_resident().wait_ready()
        engine = MatchingEngine(backend)
        cases = [
            case
            for slips in (1, 2)
            for case in generate_cases(population, args.cases, corruptions=slips, seed=args.seed + 10 + slips)
        ]
        for case in cases[:300]:  # warm the caches
            engine.search(case.query)
        runs: list[float] = []
        shown = 0
        for _ in range(args.repeat):
            started = time.process_time()
            shown = sum(len(engine.search(case.query).matches) for case in cases)
            runs.append((time.process_time() - started) / len(cases))
        print(
            f"{len(population)} children, {len(cases)} searches: best {1e6 * min(runs):.0f} us CPU a search "
            f"(runs {', '.join(f'{1e6 * r:.0f}' for r in runs)}), "
            f"{shown / len(cases):.2f} children shown a search"
        )
        backend.stop_resident()
    return 0


if __name__ == "__main__":
    sys.exit(main())
