"""What a search's request to the Elasticsearch node costs on its own, without the app around it.

    python bench/es_round_trip.py --elasticsearch-url http://127.0.0.1:9290 \
        --database-url sqlite:///$PWD/var/bench-1000000.db [--rates 100 200 400] [--duration 15] \
        [--es-cpus 1 --client-cpus 0]

`bench/search_es.py` compares the app's p95 with each backend; this says how much of the
Elasticsearch backend's share is the node's round trip. For the queries search_es.py sends
(bench/search_http.py's sample), it awaits the backend's `acandidates` exactly as a search through
the app does (the same blocking keys, candidate cap and birth filter, the hits decoded), open loop
on one uvloop event loop (the app's loop under uvicorn) at each fixed rate, latency from each
request's due time. Beside it, at the same rate, a `_count` of the index: what any request to the
node costs, whatever it asks. The client is pinned to --client-cpus and the node to --es-cpus
(search_es.py's `pinned` placement; give empty strings to leave both floating), and the client's
cyclic collector is settled as the app settles it (childindex.app.COLLECT_AFTER: with Python's
default thresholds a full collection in the client, walking every decoded hit, looks like an
80 ms stall of the node). Prints, per rate: p50/p95/p99 of both, the node's own `took` (p50/p95,
integer ms), the cores the node used, and the node's and the client's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cores import process_tree_cpu  # noqa: E402
from bench.paced import percentiles_ms  # noqa: E402
from bench.search_es import cpu_set, node_pid, pin  # noqa: E402
from bench.search_http import sample_queries  # noqa: E402
from childindex.app import COLLECT_AFTER  # noqa: E402
from directory.db import make_engine  # noqa: E402
from search.elasticsearch import ElasticsearchBackend  # noqa: E402
from search.matching import CANDIDATE_LIMIT, query_keys  # noqa: E402
from search.port import BirthFilter, SearchQuery  # noqa: E402
from search.scoring import birth_filter  # noqa: E402


def node_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the node's process (and any it started) so far."""
    return sum(process_tree_cpu(pid).values())


async def paced(ask: Callable[[int], Awaitable[Any]], rate: float, seconds: float) -> list[float]:
    """Latencies (seconds, from each request's due time) of `rate * seconds` requests sent open loop."""
    latencies: list[float] = []

    async def one(i: int, due: float) -> None:
        await ask(i)
        latencies.append(time.perf_counter() - due)

    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return latencies


async def measure(
    backend: ElasticsearchBackend,
    asks: list[tuple[list[str], BirthFilter | None]],
    rates: list[float],
    seconds: float,
    node: int,
) -> list[dict[str, Any]]:
    client = backend._async_client()

    async def search(i: int) -> None:
        keys, keep = asks[i % len(asks)]
        await backend.acandidates(keys, CANDIDATE_LIMIT, keep_birth=keep)

    async def count(_i: int) -> None:
        await client.count(index=backend.alias)

    for i in range(min(len(asks), 500)):  # warm the node's caches and the client's connections
        await search(i)
    rows = []
    for rate in rates:
        for name, ask in (("search", search), ("_count", count)):
            node_before, own_before = node_cpu(node), time.process_time()
            started = time.perf_counter()
            latencies = await paced(ask, rate, seconds)
            elapsed = time.perf_counter() - started
            row: dict[str, Any] = {
                "rate": rate,
                "request": name,
                **percentiles_ms(latencies),
                "node_cores": (node_cpu(node) - node_before) / elapsed,
                "client_cores": (time.process_time() - own_before) / elapsed,
                "answered": len(latencies) / elapsed,
            }
            if name == "search":
                row["took"] = await took(backend, asks)
            rows.append(row)
    await backend.aclose()
    return rows


async def took(backend: ElasticsearchBackend, asks: list[tuple[list[str], BirthFilter | None]]) -> str:
    """The node's own `took` (ms) for 200 of the searches, one at a time: p50 / p95. Each is the
    `_search` the backend sends for them (`_candidate_steps`' first request), asked for `took` only."""
    client = backend._async_client()
    times = []
    for keys, keep in asks[:200]:
        request = backend._request(*next(backend._candidate_steps(keys, CANDIDATE_LIMIT, keep)))
        answer = await client.perform_request(**{**request, "params": {"filter_path": "took"}})
        times.append(answer.body["took"] / 1000)
    spread = percentiles_ms(times)
    return f"{spread['p50']:.0f} / {spread['p95']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--elasticsearch-url", required=True)
    parser.add_argument("--database-url", required=True, help="the indexed database, for realistic queries")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 200.0, 400.0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds at each rate")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--es-cpus", default="1")
    parser.add_argument("--client-cpus", default="0")
    args = parser.parse_args()

    engine = make_engine(args.database_url)
    queries = sample_queries(engine, args.queries, seed=7)
    engine.dispose()
    asks = []
    for q in queries:
        query = SearchQuery(
            given=q["given"], family=q["family"], birth_date=date.fromisoformat(q["birth_date"])
        )
        asks.append((query_keys(query), birth_filter(query)))
    node = node_pid(args.elasticsearch_url)
    if args.es_cpus:
        pin(node, args.es_cpus)
    if args.client_cpus:
        os.sched_setaffinity(0, cpu_set(args.client_cpus))
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECT_AFTER)
    backend = ElasticsearchBackend.from_url(args.elasticsearch_url)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # (the app's loop, under uvicorn)
        rows = runner.run(measure(backend, asks, args.rates, args.duration, node))

    placement = f"node on cpus {args.es_cpus or 'any'}, client on {args.client_cpus or 'any'}"
    print(f"\n{len(asks)} queries; {args.duration:.0f}s a rate; {placement}; {os.cpu_count()} cores")
    print(
        f"{'rate':>6} {'request':8} {'answered':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'took p50/p95':>13} {'node cores':>10} {'node ms/req':>11} {'client ms/req':>13}"
    )
    for r in rows:
        print(
            f"{r['rate']:6.0f} {r['request']:8} {r['answered']:9.1f} {r['p50']:7.2f} {r['p95']:7.2f} "
            f"{r['p99']:7.2f} {r.get('took', ''):>13} {r['node_cores']:10.2f} "
            f"{r['node_cores'] / r['answered'] * 1000:11.2f} {r['client_cores'] / r['answered'] * 1000:13.2f}"
        )


if __name__ == "__main__":
    main()
