"""`childindex serve --workers 2`: several processes behind one socket, one indexer for all of them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.fixtures.builders import child_create


def _until_found(
    base: str, query: dict[str, str], headers: dict[str, str], seconds: float = 20
) -> httpx.Response:
    """Search until the answer has a hit (the supervisor's indexer brings a new child into the
    index); that answer. Fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = httpx.post(f"{base}/api/v1/children/search", json=query, headers=headers, timeout=10)
        assert found.status_code == 200, found.text
        if found.json()["hits"]:
            return found
        assert time.monotonic() < deadline, "the new child never reached the search index"
        time.sleep(0.3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_two_workers_answer_and_one_indexer_keeps_search_current(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "CHILDINDEX_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "CHILDINDEX_ENVIRONMENT": "development",
        "CHILDINDEX_PORT": str(port),
        "CHILDINDEX_INDEXER_INTERVAL_SECONDS": "0.2",
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
        # uvicorn's supervisor spawns the workers (plus multiprocessing's resource tracker).
        workers = [
            p
            for p in _children_of(proc.pid)
            if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(workers) == 2

        admin = {"X-Dev-Actor": "subject=admin; role=directory_admin", "X-Purpose-Of-Use": "administration"}
        body = child_create(names=[{"given": "Peregrine", "family": "Quillfeather"}]).model_dump(mode="json")
        created = httpx.post(f"{base}/api/v1/children", json=body, headers=admin, timeout=10)
        assert created.status_code == 201, created.text

        reader = {"X-Dev-Actor": "subject=hv; role=practitioner", "X-Purpose-Of-Use": "considering-caf"}
        query = {"given": "Peregrine", "family": "Quillfeather", "birth_date": body["date_of_birth"]}
        found = _until_found(base, query, reader)
        assert found.json()["hits"][0]["child_id"] == created.json()["id"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_process_works_on_at_most_request_threads_requests_at_once(tmp_path: Path) -> None:
    import anyio.to_thread
    from fastapi.testclient import TestClient

    from childindex.app import create_app
    from childindex.settings import Settings

    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'threads.db'}", request_threads=3)
    with TestClient(create_app(settings)) as client:
        assert client.portal is not None
        assert client.portal.call(tokens) == 3


def test_a_serving_process_keeps_its_startup_heap_out_of_the_collectors_way(tmp_path: Path) -> None:
    """While the app serves, what it made at startup is frozen (full collections skip it); at
    shutdown it is handed back, so another app in the same process (as here) can collect it."""
    import gc

    from fastapi.testclient import TestClient

    from childindex.app import create_app
    from childindex.settings import Settings

    gc.unfreeze()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'heap.db'}", search_resident=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def test_a_serving_process_collects_cycles_rarely_and_gives_the_thresholds_back(engine: Engine) -> None:
    """While the app serves, the cyclic collector runs only once far more objects are alive than a
    request's (COLLECT_AFTER): 300 searches set it off not once, where Python's default collects
    several times a search; at shutdown the process's own thresholds come back."""
    import gc

    from fastapi.testclient import TestClient

    from childindex.app import COLLECT_AFTER, create_app
    from childindex.settings import Settings
    from tests.directory.test_api import who

    before = gc.get_threshold()
    assert before != COLLECT_AFTER
    runs: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    settings = Settings(
        environment="development",
        database_url="sqlite://",
        indexer_interval_seconds=0,
        search_rate_per_minute=1_000,
    )
    query = {"given": "Ottoline", "family": "Vanderquist", "birth_date": "2015-07-19"}
    with TestClient(create_app(settings, engine=engine)) as client:
        assert client.post("/api/v1/children/search", json=query, headers=who()).status_code == 200
        gc.collect()
        gc.callbacks.append(counted)
        try:
            for _ in range(300):
                assert client.post("/api/v1/children/search", json=query, headers=who()).status_code == 200
        finally:
            gc.callbacks.remove(counted)
        assert gc.get_threshold() == COLLECT_AFTER
        assert runs == []
    assert gc.get_threshold() == before


def test_the_supervising_process_holds_its_heap_the_same_way() -> None:
    """`childindex serve --workers N` runs uvicorn's supervisor (the node's audit writer, the
    background jobs) inside `settled_heap`: frozen and collected as rarely as a worker while it
    serves, and the process's own state back on leaving, even when serving fails."""
    import gc

    from childindex.app import COLLECT_AFTER, settled_heap

    gc.unfreeze()
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), settled_heap():
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == COLLECT_AFTER
        raise RuntimeError("the port was taken")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
