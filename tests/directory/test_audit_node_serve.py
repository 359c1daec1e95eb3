"""`childindex serve --workers 2` with the node's shared audit writer, end to end: 50 searches at
once across the two workers, then the whole node killed (-9) the moment the last answer is in.
Every search that was answered has its event in the chain, and `childindex audit verify` passes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.directory.test_serve import _children_of, _free_port

ROOT = Path(__file__).resolve().parents[2]


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    cli = [sys.executable, "-c", "from childindex.cli import main; main()", "serve", "--workers", "2"]
    proc = subprocess.Popen(cli, env=env, cwd=ROOT, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "serve exited"
        assert time.monotonic() < deadline, "serve did not answer within 90 s"
        time.sleep(0.3)


async def _searches(base: str, n: int) -> list[str]:
    """`n` searches at once, each on a connection of its own; the request ids of those answered 200."""

    async def one(i: int) -> str | None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            query = {"given": "Peregrine", "family": f"Quill{i}", "birth_date": "2019-05-01"}
            # (a subject each: one person's 50 searches at once would meet the rate limit)
            reader = {
                "X-Dev-Actor": f"subject=hv{i}; role=practitioner",
                "X-Purpose-Of-Use": "considering-caf",
            }
            answer = await client.post("/api/v1/children/search", json=query, headers=reader)
            return answer.headers["x-request-id"] if answer.status_code == 200 else None

    answered = await asyncio.gather(*(one(i) for i in range(n)))
    return [r for r in answered if r is not None]


def test_every_answered_search_survives_kill_9_and_the_chain_verifies(engine: Engine, tmp_path: Path) -> None:
    url = engine.url.render_as_string(hide_password=False)
    port = _free_port()
    env = {
        **os.environ,
        "CHILDINDEX_DATABASE_URL": url,
        "CHILDINDEX_ENVIRONMENT": "development",
        "CHILDINDEX_PORT": str(port),
        "CHILDINDEX_LOG_LEVEL": "warning",
        "CHILDINDEX_SEARCH_RESIDENT": "false",
    }
    proc = _start(env, port)
    try:
        workers = [
            p
            for p in _children_of(proc.pid)
            if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(workers) == 2
        for pid in workers:  # each worker was told where the node's writer listens, and it does
            environ = dict(
                line.split(b"=", 1)
                for line in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if b"=" in line
            )
            assert Path(environ[b"CHILDINDEX_AUDIT_WRITER_SOCKET"].decode()).is_socket()
        answered = asyncio.run(_searches(f"http://127.0.0.1:{port}", 50))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the moment the last answer is in: nothing drains
        proc.wait(timeout=30)
    assert len(answered) == 50
    with engine.connect() as conn:
        logged = set(
            conn.execute(sa.text("SELECT request_id FROM audit_event WHERE action = 'search'"))
            .scalars()
            .all()
        )
    assert set(answered) <= logged
    verify = subprocess.run(
        [sys.executable, "-c", "from childindex.cli import main; main()", "audit", "verify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
