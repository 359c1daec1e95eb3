"""The audit wait alone: worker processes appending search events as the app does, through each
process's own group commit ("per-worker", as before issue #21) or through the node's shared writer
("node"), side by side in one run, optionally beside a CPU-bound neighbour (--noise).

Each worker runs `--concurrency` tasks on an event loop, each awaiting its event's durability
before sending the next (a closed loop, like searches waiting for their audit); with --rate R the
workers together submit R events a second instead (an open loop; latency from the due time).
Reported per mode: events/s, the wait from submit to durable (p50/p95/p99), and the CPU each
event cost in the workers and in the node's writer (what the workers' GIL no longer carries).

  python bench/audit_writer.py --workers 2 --seconds 10 --rounds 2 --noise 1
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cores import start_noise, stop_noise  # noqa: E402


def _worker(url: str, socket_path: str | None, args: dict[str, Any], start: Any, out: Any, n: int) -> None:
    from childindex import keys
    from childindex.settings import Settings
    from directory import audit
    from directory.db import make_engine
    from tests.fixtures.builders import actor

    keys.install(Settings())
    engine = make_engine(url)
    audit.install_writer(engine, node_writer=socket_path)
    latencies: list[float] = []
    seconds: float = args["seconds"]
    rate: float = args["rate"] / args["workers"]

    async def closed(task: int) -> None:
        i = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            await asyncio.wrap_future(
                audit.submit(engine, actor=actor(subject=f"w{n}-{task}"), action="search", detail={"i": i})
            )
            latencies.append(time.perf_counter() - t)
            i += 1

    async def one(due: float, i: int) -> None:
        await asyncio.wrap_future(
            audit.submit(engine, actor=actor(subject=f"w{n}"), action="search", detail={"i": i})
        )
        latencies.append(time.perf_counter() - due)

    async def paced() -> None:
        began, sent, pending = time.perf_counter(), 0, []
        while sent < rate * seconds:
            due = began + sent / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            pending.append(asyncio.ensure_future(one(due, sent)))
            sent += 1
        await asyncio.gather(*pending)

    async def main() -> None:
        if rate > 0:
            await paced()
        else:
            await asyncio.gather(*(closed(t) for t in range(args["concurrency"])))

    start.wait()
    cpu = time.process_time()
    began = time.perf_counter()
    asyncio.run(main())
    out.put((latencies, time.process_time() - cpu, time.perf_counter() - began))


def run_mode(mode: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    from directory import audit
    from directory.db import make_engine

    engine = make_engine(url)
    server = None
    batches: list[int] = []
    socket_path = None
    if mode == "node":
        folder = tempfile.mkdtemp(prefix="bench-audit-")
        socket_path = os.path.join(folder, "writer.sock")
        server = audit.serve_writer(engine, socket_path)
        write = server.group._write_batch

        def counted(conn: Any, batch: list[Any]) -> object:
            batches.append(len(batch))
            return write(conn, batch)

        server.group._write_batch = counted
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    settings = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "workers": args.workers,
    }
    procs = [
        ctx.Process(target=_worker, args=(url, socket_path, settings, start, out, n))
        for n in range(args.workers)
    ]
    for p in procs:
        p.start()
    time.sleep(3)  # imports
    writer_cpu = time.process_time()
    start.set()
    results = [out.get(timeout=args.seconds + 120) for _ in procs]
    writer_cpu = time.process_time() - writer_cpu
    for p in procs:
        p.join()
    if server is not None:
        server.close()
    latencies = sorted(x for r in results for x in r[0])
    wall = max(r[2] for r in results)
    worker_cpu = sum(r[1] for r in results)
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(p * n))] * 1000 if n else float("nan")

    return {
        "events/s": n / wall,
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "worker_us": worker_cpu / max(n, 1) * 1e6,
        "writer_us": (writer_cpu / max(n, 1) * 1e6) if server else 0.0,
        "batch": (sum(batches) / len(batches)) if batches else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="default: a fresh SQLite file under var/ (migrated here)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8, help="tasks per worker (closed loop)")
    ap.add_argument("--rate", type=float, default=0.0, help="events a second from all workers (open loop)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the modes this many times")
    ap.add_argument("--noise", type=int, default=0, help="a CPU-bound neighbour on this many cores")
    ap.add_argument("--modes", nargs="+", default=["per-worker", "node"], choices=["per-worker", "node"])
    args = ap.parse_args()

    from childindex import keys
    from childindex.migrations import upgrade
    from childindex.settings import Settings
    from directory.db import make_engine

    keys.install(Settings())
    url = args.database_url
    if url is None:
        Path(ROOT / "var").mkdir(exist_ok=True)
        path = ROOT / "var" / "bench-audit-writer.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    upgrade(make_engine(url))
    load = os.getloadavg()
    noise, noise_name = start_noise(args.noise)
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        for r in range(args.rounds):
            modes = args.modes if r % 2 == 0 else list(reversed(args.modes))
            for mode in modes:
                rows.append((f"{mode} #{r + 1}", run_mode(mode, url, args)))
    finally:
        stop_noise(noise)
    loop = (
        f"{args.rate:g} events/s (open loop)" if args.rate else f"{args.concurrency} tasks each (closed loop)"
    )
    print(
        f"\n{url.split('://')[0]}; {args.workers} workers, {loop}, {args.seconds:g} s each; "
        f"{os.cpu_count()} cores; neighbour: {noise_name}; load average before {load[0]:.2f} {load[1]:.2f}"
    )
    print(
        f"{'mode':16} {'events/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'worker µs':>10} {'writer µs':>10} {'batch':>6}"
    )
    for name, x in rows:
        print(
            f"{name:16} {x['events/s']:9.0f} {x['p50']:8.2f} {x['p95']:8.2f} {x['p99']:8.2f} "
            f"{x['worker_us']:10.0f} {x['writer_us']:10.0f} {x['batch']:6.1f}"
        )


if __name__ == "__main__":
    main()
