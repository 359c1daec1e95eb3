"""Searches arriving at a fixed rate (an open loop), for the benchmarks through HTTP.

Searches are due at a fixed rate a second over a few keep-alive connections, whether or not earlier
ones have been answered, and each search's latency counts from when it was due, so time spent
queued behind a slow answer is counted rather than hidden (no "coordinated omission"). At most one
search is in flight on each connection (HTTP/1.1): once a search takes longer than connections /
rate seconds, the due searches queue here. Used by `bench/search_http.py --rate` and
`bench/search_es.py`; `percentiles_ms` by the others that report latencies.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx


async def at_rate(
    url: str,
    queries: Path,
    headers: dict[str, str],
    *,
    rate: float,
    duration: float,
    connections: int,
    keep: list[float] | None = None,
) -> dict[str, float]:
    """Searches at a fixed `rate` a second for `duration` seconds over `connections` keep-alive
    connections; latency from each search's due time to its whole answer (see the module doc).
    With `keep`, each search's latency (seconds) is also added to it, to pool several runs.
    (A coroutine: run it with `asyncio.run`.)"""
    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.raw_path.decode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{head}Content-Length: {len(body.encode())}\r\n\r\n{body}"
        ).encode()
        for body in queries.read_text().splitlines()
        if body
    ]
    due: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    latencies: list[float] = []
    failures = broken = 0  # answers other than 200; requests lost to a connection error
    total = int(rate * duration)

    async def answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                close = True
        await reader.readexactly(length)
        return status, close

    async def client() -> None:
        nonlocal failures, broken
        reader = writer = None
        while True:
            i, when = await due.get()
            if i < 0:
                break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(requests[i % len(requests)])
                status, close = await answer(reader)
                latencies.append(time.perf_counter() - when)
                failures += status != 200
                if close:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError):
                broken += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    clients = [asyncio.create_task(client()) for _ in range(connections)]
    start = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        while sent < total and start + sent / rate <= now:
            due.put_nowait((sent, start + sent / rate))
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    for _ in clients:
        due.put_nowait((-1, 0.0))
    await asyncio.gather(*clients)
    elapsed = time.perf_counter() - start
    if keep is not None:
        keep.extend(latencies)
    return {
        "rps": len(latencies) / elapsed,
        **percentiles_ms(latencies),
        "requests": len(latencies),
        "non_2xx": failures,
        "socket_errors": broken,
    }


def percentiles_ms(latencies: list[float]) -> dict[str, float]:
    """`p50`, `p95` and `p99` in ms of latencies in seconds (NaN when there are none)."""
    ordered = sorted(latencies)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}
