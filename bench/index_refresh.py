"""What making the indexer's Elasticsearch writes visible at once costs (docs/nodes.md).

A child recorded through one node must be found through another within a second. The indexer's
holder drains the outbox as soon as a write's NOTIFY arrives; the question is when its Elasticsearch
writes become searchable. Three ways, compared side by side in one run, interleaved round by round:

- `false`: the writes wait for the index's periodic refresh (every 1 s): nothing extra, but up to a
  second before a search sees them;
- `true`: each bulk request (up to 500 documents) refreshes the shards it wrote to before it returns;
- `wait_for`: each bulk request returns only once a periodic refresh has made it visible.

Two shapes of work: single writes (one outbox row, one drain: what a practitioner recording a child
makes) and a burst (`--burst` rows drained at once: a feed, an import, a merge). For each: the drain's
time, and from the drain's start until a search finds the last document written.

    python bench/index_refresh.py --elasticsearch-url http://127.0.0.1:9200 --children 100000

It seeds `--children` children into a fresh SQLite file (or `--database-url`, an empty PostgreSQL),
indexes them all under a fresh alias per mode, then measures. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def _publish(engine: Any, child_hexes: list[str]) -> None:
    """Outbox rows for these children, as their writes would make (the seed indexes directly)."""
    from directory.models import Outbox, utcnow

    table = Outbox.__table__  # type: ignore[attr-defined]
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(table), [{"topic": "child", "entity_id": h, "created_at": now} for h in child_hexes]
        )


def _visible(backend: Any, child_hex: str) -> bool:
    child = str(uuid.UUID(hex=child_hex))
    found = backend.client.count(index=backend.alias, query={"ids": {"values": [child, child_hex]}})
    return int(found["count"]) > 0


def _measure(engine: Any, backend: Any, rows: list[str]) -> tuple[float, float]:
    """Write and drain these children's outbox rows; (drain seconds, seconds until the last is
    searchable)."""
    from search.indexer import drain

    # the last child's document absent first, so what becomes visible is this write
    backend.delete([str(uuid.UUID(hex=rows[-1])), rows[-1]])  # (either spelling of the id)
    backend.client.indices.refresh(index=backend.alias)
    _publish(engine, rows)
    start = time.perf_counter()
    drain(engine, backend)
    drained = time.perf_counter() - start
    while not _visible(backend, rows[-1]):
        time.sleep(0.005)
    return drained, time.perf_counter() - start


def _p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[18] if len(xs) >= 20 else max(xs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--elasticsearch-url", required=True)
    parser.add_argument("--children", type=int, default=20_000, help="children seeded and indexed first")
    parser.add_argument("--database-url", help="an empty PostgreSQL (default: a fresh SQLite file)")
    parser.add_argument("--db", type=Path, default=Path("/tmp/childindex-index-refresh.db"))
    parser.add_argument("--singles", type=int, default=50, help="single writes per mode and round")
    parser.add_argument("--burst", type=int, default=5_000, help="rows in one burst")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="false,true,wait_for")
    args = parser.parse_args()

    from childindex.demo.seed import seed
    from childindex.keys import install_when_needed
    from childindex.settings import Settings
    from directory.db import make_engine
    from directory.models import Actor, Role
    from search.elasticsearch import ElasticsearchBackend
    from search.indexer import drain

    install_when_needed(Settings)
    if args.database_url:
        url = args.database_url
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{args.db}"
    engine = make_engine(url)
    from childindex.migrations import upgrade

    upgrade(engine)
    seed(engine, children=args.children, actor=Actor(subject="bench:refresh", role=Role.DIRECTORY_ADMIN))
    with engine.connect() as conn:
        outbox = [uuid.UUID(str(r[0])).hex for r in conn.execute(sa.text("SELECT id FROM child ORDER BY id"))]
    modes: dict[str, bool | str] = {"false": False, "true": True, "wait_for": "wait_for"}
    chosen = [m for m in args.modes.split(",") if m]
    backends: dict[str, ElasticsearchBackend] = {}
    tag = uuid.uuid4().hex[:8]
    try:
        for mode in chosen:
            backend = ElasticsearchBackend.from_url(
                args.elasticsearch_url, alias=f"bench-refresh-{mode.replace('_', '')}-{tag}"
            )
            backend.ensure_ready()
            _publish(engine, outbox)
            drain(engine, backend)  # everything indexed once, untimed
            backend.refresh = modes[mode]
            backends[mode] = backend
        results: dict[str, dict[str, list[float]]] = {
            m: {"single": [], "single_vis": [], "burst": [], "burst_vis": []} for m in chosen
        }
        for r in range(args.rounds):
            for mode in chosen:  # interleaved: each round runs every mode once
                backend = backends[mode]
                for i in range(args.singles):
                    row = outbox[(r * args.singles + i) % len(outbox)]
                    d, v = _measure(engine, backend, [row])
                    results[mode]["single"].append(d)
                    results[mode]["single_vis"].append(v)
                start = (r * args.burst) % max(1, len(outbox) - args.burst)
                d, v = _measure(engine, backend, outbox[start : start + args.burst])
                results[mode]["burst"].append(d)
                results[mode]["burst_vis"].append(v)
    finally:
        for backend in backends.values():
            backend.client.indices.delete(index=f"{backend.alias}-*", ignore_unavailable=True)
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"{args.children:,} children indexed, {engine.dialect.name}; "
        f"{args.rounds} rounds x {args.singles} single writes, burst of {args.burst:,}"
    )
    print(
        "| refresh | single write: drain p50 / p95 ms | single: visible after p50 / p95 ms "
        f"| burst of {args.burst:,}: drain s (median) | burst: visible after s |"
    )
    print("|---|---|---|---|---|")
    for mode in chosen:
        res = results[mode]
        print(
            f"| `{mode}` | {statistics.median(res['single']) * 1000:.1f} / {_p95(res['single']) * 1000:.1f} "
            f"| {statistics.median(res['single_vis']) * 1000:.1f} / {_p95(res['single_vis']) * 1000:.1f} "
            f"| {statistics.median(res['burst']):.2f} | {statistics.median(res['burst_vis']):.2f} |"
        )


if __name__ == "__main__":
    main()
