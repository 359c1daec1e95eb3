"""Duplicates report benchmark: run time, recall on planted duplicates and false pairs.

    uv run python bench/duplicates_report.py [--people 1000000] [--planted 2000] [--db PATH]
        [--no-resident]

Builds a synthetic directory (search.quality's households), plants duplicates of some children
the way a second feed makes them (a new record without the NHS number, with one slip: a typo, a
nickname, a date of birth a digit out or day/month swapped, a move, a new surname, missing sex and
postcode), indexes everything in the embedded backend on SQLite (with the resident copy, as
`serve` runs it), then runs the report over every child and prints the figures.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine

from search.duplicates import REPORT_CANDIDATES, find_duplicates
from search.embedded import EmbeddedBackend
from search.quality import generate_population, plant_duplicates


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--planted", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one; kept if given)")
    parser.add_argument("--no-resident", action="store_true", help="candidates from SQL, not memory")
    parser.add_argument("--limit", type=int, default=REPORT_CANDIDATES, help="candidates per child")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="compare only the planted copies and others up to this many children (a quick estimate on a "
        "busy machine: the time for all is extrapolated from the CPU per child)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "duplicates.db"
        backend = EmbeddedBackend(create_engine(f"sqlite:///{db}"))
        backend.ensure_ready()
        started = time.perf_counter()
        population = generate_population(args.people - args.planted, seed=args.seed)
        copies, planted = plant_duplicates(population, args.planted, seed=args.seed + 1)
        directory = population + copies
        print(
            f"{len(directory)} children ({len(copies)} planted duplicates) "
            f"in {time.perf_counter() - started:.0f}s"
        )
        if backend.count() != len(directory):
            started = time.perf_counter()
            backend.rebuild(directory)
            print(f"indexed in {time.perf_counter() - started:.0f}s")
        if not args.no_resident:
            started = time.perf_counter()
            backend.start_resident().wait_ready()
            print(f"resident copy loaded in {time.perf_counter() - started:.0f}s")

        compared = directory
        if args.sample:
            others = random.Random(args.seed + 2).sample(population, max(args.sample - len(copies), 0))
            compared = copies + others
        started_cpu = time.process_time()
        report = find_duplicates(backend, compared, limit=args.limit)
        cpu = time.process_time() - started_cpu
        found = {(p.first, p.second) for p in report.pairs}
        hits = planted & found
        false_pairs = found - planted
        counts = report.counts()
        print(
            f"report: {report.children} children in {report.seconds:.0f}s wall, {cpu:.0f}s CPU "
            f"({1e6 * report.seconds / max(report.children, 1):.0f} us a child, "
            f"{report.candidates / max(report.children, 1):.1f} candidates scored a child)"
        )
        print(
            f"  pairs {counts['pairs']} (certain {counts['certain']}, probable {counts['probable']}, "
            f"shielded {counts['shielded']})"
        )
        print(
            f"  recall on planted duplicates {len(hits) / max(len(planted), 1):.2%} "
            f"({len(hits)}/{len(planted)})"
        )
        print(
            f"  false pairs {len(false_pairs)} ({len(false_pairs) / max(report.children, 1):.4%} of children)"
        )
        if args.sample:
            per_child = cpu / max(report.children, 1)
            share = report.children / len(directory)
            print(
                f"  sample of {report.children} children: all {len(directory)} would take about "
                f"{per_child * len(directory) / 60:.1f} min of CPU; false pairs among the sample's "
                f"{len(false_pairs)} scale to about {len(false_pairs) / (1 - (1 - share) ** 2):.0f} "
                "(a pair is found when either of its children is compared)"
            )
        backend.stop_resident()
    return 0


if __name__ == "__main__":
    sys.exit(main())
