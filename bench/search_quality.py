"""Match-quality benchmark: top-1 recall and false "certain" at a larger size.

    uv run python bench/search_quality.py [--people 50000] [--cases 2000] [--db PATH]
        [--elasticsearch URL]

Builds a synthetic labelled population (search.quality), indexes it in the embedded backend
on SQLite (or Elasticsearch with --elasticsearch), runs single- and double-corruption
searches and prints a table per run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine

from search.embedded import EmbeddedBackend
from search.matching import CANDIDATE_LIMIT, MatchingEngine
from search.port import SearchBackend
from search.quality import evaluate, format_report, generate_cases, generate_population


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--elasticsearch", metavar="URL", help="use Elasticsearch at URL")
    parser.add_argument(
        "--candidate-limit", type=int, default=CANDIDATE_LIMIT, help="candidates scored per search"
    )
    parser.add_argument("--misses", type=int, default=0, help="print this many misses")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        backend: SearchBackend
        if args.elasticsearch:
            from search.elasticsearch import ElasticsearchBackend

            backend = ElasticsearchBackend.from_url(args.elasticsearch, alias="childindex-bench")
        else:
            db = args.db or Path(tmp) / "bench.db"
            backend = EmbeddedBackend(create_engine(f"sqlite:///{db}"))
        backend.ensure_ready()

        started = time.perf_counter()
        population = generate_population(args.people, seed=args.seed)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        backend.rebuild(population)
        indexed = time.perf_counter() - started
        print(
            f"{backend.name}: {len(population)} children generated in {generated:.1f}s, "
            f"indexed in {indexed:.1f}s"
        )

        engine = MatchingEngine(backend, candidate_limit=args.candidate_limit)
        for corruptions in (1, 2):
            cases = generate_cases(
                population, args.cases, corruptions=corruptions, seed=args.seed + 10 + corruptions
            )
            report = evaluate(engine, cases, keep_misses=args.misses)
            print(format_report(f"{corruptions} corruption(s)", report))
            for case, top in report.misses:
                print(f"    miss {case.corruptions}: {case.query} -> {top}")
        if args.elasticsearch:
            from search.elasticsearch import ElasticsearchBackend

            assert isinstance(backend, ElasticsearchBackend)
            backend.client.indices.delete(index=f"{backend.alias}-*", ignore_unavailable=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
