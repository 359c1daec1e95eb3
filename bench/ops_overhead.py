"""What the operations features cost (issue #21 item 5): the request timer on every request, a
scrape of /metrics with a large outbox, and a storm of /readyz probes.

    uv run python bench/ops_overhead.py --children 100000 [--database-url sqlite:////tmp/ops.db]

1. The request timer (childindex.metrics.RequestMetrics) around a minimal FastAPI route, called as
   ASGI in this process, with and without it, interleaved in blocks (so machine noise hits both).
2. A scrape (`_exposition`: this process's metrics plus the database collector's queries) with
   `--children` processed outbox rows (a directory that size has at least one each) and 1,000
   waiting ones.
3. 1,000 concurrent /readyz answers (`Readiness.answer`): time, and rounds of checks run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from fastapi import FastAPI
from starlette.types import ASGIApp, Message

from childindex.metrics import RequestMetrics, _exposition
from childindex.migrations import upgrade
from childindex.readiness import Readiness
from directory.db import make_engine
from directory.models import Outbox, utcnow
from search.embedded import EmbeddedBackend


def _app(timed: bool) -> ASGIApp:
    app = FastAPI()

    @app.get("/x/{child_id}")
    async def one(child_id: str) -> dict[str, str]:
        return {"ok": child_id[:1]}

    return RequestMetrics(app) if timed else app


async def _calls(app: ASGIApp, n: int) -> float:
    """Seconds for n GET requests through the ASGI app."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Message) -> None:
        return None

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/x/0b5d4c2e",
        "raw_path": b"/x/0b5d4c2e",
        "query_string": b"",
        "headers": [],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return time.perf_counter() - started


def bench_timer(blocks: int, per_block: int) -> None:
    plain, timed = _app(False), _app(True)
    a: list[float] = []
    b: list[float] = []

    async def run() -> None:
        await _calls(plain, 200)
        await _calls(timed, 200)  # (warm both)
        for block in range(blocks):  # (each first in turn)
            if block % 2:
                b.append(await _calls(timed, per_block) / per_block * 1e6)
            a.append(await _calls(plain, per_block) / per_block * 1e6)
            if not block % 2:
                b.append(await _calls(timed, per_block) / per_block * 1e6)

    asyncio.run(run())
    pa, pb = statistics.median(a), statistics.median(b)
    print(
        f"{'request timer':<28} without {pa:7.1f} us/request  with {pb:7.1f}  "
        f"added {pb - pa:5.1f} us (median of {blocks} blocks)"
    )


def _fill_outbox(engine: sa.Engine, processed: int, waiting: int) -> None:
    outbox = Outbox.__table__  # type: ignore[attr-defined]
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.delete(outbox))
        batch = 50_000
        for start in range(0, processed, batch):
            rows = [
                {
                    "topic": "child",
                    "entity_id": f"{i:032x}",
                    "created_at": now - timedelta(hours=1),
                    "processed_at": now,
                }
                for i in range(start, min(processed, start + batch))
            ]
            conn.execute(sa.insert(outbox), rows)
        conn.execute(
            sa.insert(outbox),
            [
                {"topic": "child", "entity_id": f"w{i:031x}", "created_at": now - timedelta(seconds=5)}
                for i in range(waiting)
            ],
        )


def timed_ms(label: str, n: int, one: Callable[[], object]) -> None:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        one()
        samples.append((time.perf_counter() - t) * 1e3)
    q = statistics.quantiles(samples, n=20, method="inclusive")
    print(f"{label:<28} p50 {statistics.median(samples):7.2f} ms  p95 {q[18]:7.2f} ms  ({n} runs)")


def bench_scrape(url: str, children: int, scrapes: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    _fill_outbox(engine, children, 1000)
    print(
        f"{'outbox filled':<28} {children:,} processed + 1,000 waiting rows "
        f"in {time.perf_counter() - started:.1f} s"
    )
    timed_ms(f"scrape ({children:,} rows)", scrapes, lambda: _exposition(engine))


def bench_readyz(url: str, probes: int) -> None:
    engine = make_engine(url)
    checks = Readiness(engine, EmbeddedBackend(engine), resident=False)
    rounds = 0
    real = checks._database

    def counted() -> str | None:
        nonlocal rounds
        rounds += 1
        return real()

    checks._database = counted  # type: ignore[method-assign]

    async def storm() -> float:
        started = time.perf_counter()
        answers = await asyncio.gather(*(checks.answer() for _ in range(probes)))
        assert all(a.ready for a in answers), answers[0].problems
        return time.perf_counter() - started

    took = asyncio.run(storm())
    print(
        f"{'readyz storm':<28} {probes:,} concurrent probes in {took * 1e3:.1f} ms, "
        f"{rounds} round(s) of checks"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--children", type=int, default=100_000, help="processed outbox rows (one per child at least)"
    )
    parser.add_argument("--database-url", default="sqlite:////tmp/childindex-ops-bench.db")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--per-block", type=int, default=2000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--probes", type=int, default=1000)
    args = parser.parse_args()
    bench_timer(args.blocks, args.per_block)
    bench_scrape(args.database_url, args.children, args.scrapes)
    bench_readyz(args.database_url, args.probes)


if __name__ == "__main__":
    main()
