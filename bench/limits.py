"""Time the shared rate limit and trawling counters in process: what a search or a card read adds.

    uv run python bench/limits.py --database-url sqlite:////tmp/limits-bench.db [--requests 5000]
    uv run python bench/limits.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/childindex

A search costs one count (`SubjectLimiter.hit`) and one look at the children it shows (`look`, 10
here); a card read one count and one look at its child. Subjects are spread over `--subjects` (a
busy authority's practitioners) so the counters' rows are as many as they would be, and the
limits are lifted so that nothing is refused. The database is migrated first.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from auth.limits import limit_store
from auth.ratelimit import SubjectLimiter
from childindex.migrations import upgrade
from directory.db import make_engine


def timed(label: str, n: int, one: Callable[[int], object]) -> None:
    """Run `one` n times; print the mean and percentiles in microseconds."""
    samples: list[float] = []
    cpu = time.process_time()
    for i in range(n):
        t = time.perf_counter()
        one(i)
        samples.append((time.perf_counter() - t) * 1e6)
    cpu = time.process_time() - cpu
    q = statistics.quantiles(samples, n=100, method="inclusive")
    print(
        f"{label:<30} p50 {q[49]:6.1f} us  p95 {q[94]:7.1f}  p99 {q[98]:7.1f}  "
        f"mean {statistics.fmean(samples):6.1f}  (this process's CPU: {cpu / n * 1e6:5.1f} us each)"
    )


def main() -> None:
    """Measure each operation, then a search's and a card read's whole cost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--subjects", type=int, default=200)
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    upgrade(engine)
    limiter = SubjectLimiter(
        limit_store(engine), per_minute=10**9, trawl_window_seconds=3600, trawl_distinct=10**9
    )
    subjects = [f"bench-{i}" for i in range(args.subjects)]
    children = [uuid.uuid4() for _ in range(50_000)]

    def shown(i: int) -> list[uuid.UUID]:
        return [children[(i * 7919 + k * 104729) % len(children)] for k in range(10)]

    n = args.requests
    print(f"{engine.dialect.name}: {n} requests over {len(subjects)} subjects")
    timed("count (hit)", n, lambda i: limiter.hit(subjects[i % len(subjects)]))
    timed("look at 10 children", n, lambda i: limiter.look(subjects[i % len(subjects)], shown(i)))
    timed("card read (hit + look at 1)", n, lambda i: limiter.hit(subjects[i % len(subjects)], children[i]))

    def search(i: int) -> None:
        subject = subjects[i % len(subjects)]
        limiter.hit(subject)
        limiter.look(subject, shown(i + n))

    timed("search (hit + look at 10)", n, search)
    engine.dispose()


if __name__ == "__main__":
    main()
