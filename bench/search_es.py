"""Elasticsearch beside the embedded backend: the same searches through HTTP, side by side in one run.

    python bench/search_es.py --children 100000 --elasticsearch-url http://127.0.0.1:9262 \
        [--rate 200] [--duration 20] [--slices 10] [--warmup 5] [--placements shared pinned] \
        [--es-cpus 1 --app-cpus 0]

For each placement of the Elasticsearch node and the app:
  shared - the node's java process and the app's uvicorn may both run on every core;
  pinned - the node on --es-cpus and the app on --app-cpus (`taskset`), and the load generator (wrk,
           the fixed-rate client) on --load-cpus (default: the app's), so that the node's core is
           its own and the app shares its core with the same load generator whichever backend it
           uses (until 2026-12-07 the load generator floated, wherever the scheduler put it);
the app is served twice at once, with CHILDINDEX_SEARCH_BACKEND=embedded (its resident copy of the
index) and with elasticsearch, on the same database, with the same token, the same queries
(bench/search_http.py's sample: given + family + date of birth, 30% with a typo in the family
name). Each is measured flat out (wrk, closed loop, after --warmup seconds of it), one after the
other in alternating order; then at a fixed --rate (open loop, latency from each search's due time)
in --slices turns that alternate between the two servers (ABBAAB...), --duration seconds each in
all, and each one's percentiles are taken over all its turns. This machine's speed drifts by up to
half within minutes, so two runs a minute apart compare the minutes as much as the backends; turns
of a few seconds give both the same minutes. Prints one table.

The database is var/bench-es-<children>.db (or --database-url); when missing it is seeded
(`childindex seed`) and both indexes are built (`childindex reindex`, embedded and Elasticsearch).
Needs wrk and taskset, and runs as root or as the node's user to move the node between cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.paced import at_rate, percentiles_ms  # noqa: E402
from bench.search_http import free_port, measure, mint_token, sample_queries, serve, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def node_pid(es_url: str) -> int:
    """The process id of the (single) node at `es_url`."""
    nodes = httpx.get(f"{es_url}/_nodes/_local/process", timeout=10).json()["nodes"]
    return int(next(iter(nodes.values()))["process"]["id"])


def pin(pid: int, cpus: str) -> None:
    """Move every thread of `pid` to `cpus`."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)


def prepare(database_url: str, children: int, es_url: str, env: dict[str, str]) -> None:
    """Seed and index a missing database; rebuild the Elasticsearch index when its count differs."""
    from sqlalchemy import text

    from directory.db import make_engine

    path = database_url.removeprefix("sqlite:///")
    cli = [str(Path(sys.executable).parent / "childindex")]
    if database_url.startswith("sqlite:///") and not Path(path).exists():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*cli, "seed", "--children", str(children)], env=env, check=True, cwd=ROOT)
        subprocess.run([*cli, "reindex"], env=env, check=True, cwd=ROOT)
    with make_engine(database_url).connect() as conn:
        indexed = conn.execute(text("SELECT count(*) FROM search_record")).scalar_one()
    try:
        in_es = httpx.get(f"{es_url}/childindex-children/_count", timeout=10).json().get("count")
    except httpx.HTTPError:
        in_es = None
    if in_es != indexed:
        es_env = {**env, "CHILDINDEX_SEARCH_BACKEND": "elasticsearch", "CHILDINDEX_ELASTICSEARCH_URL": es_url}
        subprocess.run([*cli, "reindex"], env=es_env, check=True, cwd=ROOT)


def main() -> None:
    """Measure both backends in each placement and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--children", type=int, default=100_000)
    ap.add_argument("--database-url", help="default: sqlite:///var/bench-es-<children>.db")
    ap.add_argument("--elasticsearch-url", required=True)
    ap.add_argument("--rate", type=float, default=200.0, help="the fixed rate, searches a second")
    ap.add_argument("--duration", type=int, default=20, help="seconds flat out, and in all at the rate")
    ap.add_argument("--slices", type=int, default=10, help="turns each server takes at the fixed rate")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers of the app")
    ap.add_argument("--placements", nargs="+", default=["shared", "pinned"], choices=["shared", "pinned"])
    ap.add_argument("--es-cpus", default="1", help="the node's cores when pinned (taskset list)")
    ap.add_argument("--app-cpus", default="0", help="the app's cores when pinned (taskset list)")
    ap.add_argument("--load-cpus", help="the load generator's cores when pinned (default: --app-cpus)")
    args = ap.parse_args()
    database_url = args.database_url or f"sqlite:///var/bench-es-{args.children}.db"
    all_cpus = f"0-{(os.cpu_count() or 1) - 1}"

    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    env = {
        **os.environ,
        "CHILDINDEX_DATABASE_URL": database_url,
        "CHILDINDEX_SEARCH_RATE_PER_MINUTE": "100000000",  # one bench subject sends everything
        "CHILDINDEX_TRAWL_DISTINCT_CHILDREN": "100000000",
        "CHILDINDEX_SECRET_KEY": "bench",
        "CHILDINDEX_ACCESS_TOKEN_MINUTES": "60",
        "CHILDINDEX_LOG_LEVEL": "warning",
        "CHILDINDEX_ENVIRONMENT": "production",
        "CHILDINDEX_ELASTICSEARCH_URL": args.elasticsearch_url,
    }
    prepare(database_url, args.children, args.elasticsearch_url, env)
    from directory.db import make_engine

    queries = sample_queries(make_engine(database_url), args.queries, seed=7)
    qfile = Path(tempfile.mkdtemp()) / "queries.jsonl"
    qfile.write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    headers = {
        "Authorization": f"Bearer {mint_token(database_url, env)}",
        "X-Purpose-Of-Use": "considering-caf",
    }
    pid = node_pid(args.elasticsearch_url)
    load_cpus = cpu_set(args.load_cpus or args.app_cpus)
    floating = os.sched_getaffinity(0)
    rows: list[tuple[str, str, dict[str, float], dict[str, float]]] = []
    try:
        for turn, placement in enumerate(args.placements):
            pinned = placement == "pinned"
            pin(pid, args.es_cpus if pinned else all_cpus)
            os.sched_setaffinity(0, load_cpus if pinned else floating)  # (wrk inherits it)
            order = ["embedded", "elasticsearch"] if turn % 2 == 0 else ["elasticsearch", "embedded"]
            prefix = ["taskset", "-c", args.app_cpus] if pinned else []
            measured = measure_apps(args, prefix, env, order, qfile, headers)
            rows.extend((placement, backend, *measured[backend]) for backend in order)
    finally:
        pin(pid, all_cpus)
        os.sched_setaffinity(0, floating)
    report(args, rows)


def cpu_set(cpus: str) -> set[int]:
    """A taskset list ("1", "0,1", "0-1") as a set of core numbers."""
    cores: set[int] = set()
    for part in cpus.split(","):
        first, _, last = part.partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


def measure_apps(
    args: argparse.Namespace,
    prefix: list[str],
    env: dict[str, str],
    order: list[str],
    qfile: Path,
    headers: dict[str, str],
) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """Serve the app with each backend at once (under `prefix`, e.g. taskset); measure each flat out,
    in `order`, then both at the fixed rate in alternating turns; stop them. Each backend's (flat
    out, at the rate)."""
    procs, urls = [], {}
    try:
        for backend in order:
            port = free_port()
            uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
            cmd = [*prefix, *uvicorn, "--workers", str(args.workers), "--port", str(port)]
            app_env = {**env, "CHILDINDEX_SEARCH_BACKEND": backend}
            procs.append(serve([*cmd, "--factory", "childindex.app:create_app"], app_env, port))
            urls[backend] = f"http://127.0.0.1:{port}/api/v1/children/search"
        flat = {
            backend: measure(
                urls[backend],
                qfile,
                headers,
                duration=args.duration,
                connections=args.connections,
                warmup=args.warmup,
            )
            for backend in order
        }
        paced = in_turns(args, urls, order, qfile, headers)
    finally:
        for proc in procs:
            stop(proc)
    return {backend: (flat[backend], paced[backend]) for backend in order}


def in_turns(
    args: argparse.Namespace, urls: dict[str, str], order: list[str], qfile: Path, headers: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Each server at the fixed rate for --duration seconds in all, in --slices turns alternating
    between them (ABBA...); each one's percentiles over every search of its turns."""
    kept: dict[str, list[float]] = {backend: [] for backend in order}
    failed = dict.fromkeys(order, 0.0)
    for turn in range(args.slices):
        for backend in order if turn % 2 == 0 else order[::-1]:
            result = asyncio.run(
                at_rate(
                    urls[backend],
                    qfile,
                    headers,
                    rate=args.rate,
                    duration=args.duration / args.slices,
                    connections=args.connections,
                    keep=kept[backend],
                )
            )
            failed[backend] += result["non_2xx"] + result["socket_errors"]
    return {backend: {**percentiles_ms(kept[backend]), "failed": failed[backend]} for backend in order}


def report(args: argparse.Namespace, rows: list[tuple[str, str, dict[str, float], dict[str, float]]]) -> None:
    """Print the table and the p95 ratio per placement."""
    load = os.getloadavg()
    print(
        f"\n{args.children:,} children; {args.workers} uvicorn worker(s); {args.connections} connections; "
        f"{args.duration}s each flat out after {args.warmup}s warm-up, and at the rate in {args.slices} "
        f"turns; pinned = node on cpus {args.es_cpus}, app on {args.app_cpus}, load on "
        f"{args.load_cpus or args.app_cpus}; {os.cpu_count()} cores; load average after: "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"{'placement':10} {'backend':14} {'flat req/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
        f" | {'at ' + format(args.rate, 'g') + '/s p50':>12} {'p95':>7} {'p99':>7} {'failed':>6}"
    )
    for placement, backend, flat, paced in rows:
        failed = int(flat["non_2xx"] + paced["failed"])
        print(
            f"{placement:10} {backend:14} {flat['rps']:10.1f} {flat['p50']:7.2f} {flat['p95']:7.2f} "
            f"{flat['p99']:7.2f} | {paced['p50']:12.2f} {paced['p95']:7.2f} {paced['p99']:7.2f} {failed:6d}"
        )
    for placement in args.placements:
        by = {b: paced for p, b, _, paced in rows if p == placement}
        if len(by) == 2:
            ratio = by["elasticsearch"]["p95"] / by["embedded"]["p95"]
            print(f"{placement}: Elasticsearch p95 / embedded p95 at {args.rate:g}/s = {ratio:.2f}")


if __name__ == "__main__":
    main()
