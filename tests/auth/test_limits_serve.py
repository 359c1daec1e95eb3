"""The rate limit holds across real worker processes: `childindex serve --workers 2`, a burst of 70
concurrent card reads by one subject, at most the limit (30) admitted, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from tests.directory.test_serve import _children_of, _free_port
from tests.fixtures.builders import make_child

LIMIT = 30


@pytest.fixture
def served(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """`childindex serve --workers 2` on the test's database; its base URL once both workers answer."""
    url = engine.url.render_as_string(hide_password=False)
    port = _free_port()
    env = {
        **os.environ,
        "CHILDINDEX_DATABASE_URL": url,
        "CHILDINDEX_ENVIRONMENT": "development",
        "CHILDINDEX_PORT": str(port),
        "CHILDINDEX_INDEXER_INTERVAL_SECONDS": "0",
        "CHILDINDEX_SEARCH_RESIDENT": "false",
        "CHILDINDEX_SEARCH_RATE_PER_MINUTE": str(LIMIT),
        "CHILDINDEX_KEEPALIVE_REQUESTS": "0",
        # Enough threads that the admitted card reads, each holding SQLite's write lock while it
        # commits, do not wait on each other for a thread (issue #16's first finding).
        "CHILDINDEX_REQUEST_THREADS": "64",
        "CHILDINDEX_LOG_LEVEL": "warning",
    }
    cli = [sys.executable, "-c", "from childindex.cli import main; main()", "serve", "--workers", "2"]
    proc = subprocess.Popen(cli, env=env, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "serve exited"
            assert time.monotonic() < deadline, "serve did not answer within 90 s"
            time.sleep(0.3)
        workers = [
            p
            for p in _children_of(proc.pid)
            if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(workers) == 2
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


async def _burst(base: str, child: str, n: int) -> list[int]:
    headers = {"X-Dev-Actor": "subject=burst; role=practitioner", "X-Purpose-Of-Use": "direct-care"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.get(f"/api/v1/children/{child}", headers=headers) for _ in range(n))
        )
    return [a.status_code for a in answers]


def test_a_burst_over_two_workers_admits_at_most_the_limit(engine: Engine, served: str) -> None:
    with unit_of_work(engine) as s:
        child = str(make_child(s))
    warm = {"X-Dev-Actor": "subject=warm; role=practitioner", "X-Purpose-Of-Use": "direct-care"}
    for _ in range(4):  # each worker opens its connections before the burst
        assert httpx.get(f"{served}/api/v1/children/{child}", headers=warm, timeout=30).status_code == 200
    statuses = asyncio.run(_burst(served, child, 70))
    admitted = [s for s in statuses if s != 429]
    assert set(statuses) <= {200, 429}, statuses
    assert 0 < len(admitted) <= LIMIT, f"{len(admitted)} of 70 admitted against a limit of {LIMIT}"
