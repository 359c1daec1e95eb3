"""`childindex serve --workers 2` for operations: /readyz, /metrics in multiprocess mode (a scrape of
either worker sums both), and the service's JSON log lines, which hold no child's data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.directory.test_serve import _children_of, _free_port, _until_found
from tests.fixtures.builders import child_create
from tests.ops.scrape import samples, value

TOKEN = "serve-scrape-token-0123456789"
CARD = "/api/v1/children/{child_id}"


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode(errors="replace").partition("=")[::2] for p in pairs if b"=" in p)


def _scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    return samples(r.text)


def test_two_workers_are_ready_are_scraped_as_one_and_log_json_without_child_data(tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "token").write_text(TOKEN)
    env = {
        **os.environ,
        "CHILDINDEX_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "CHILDINDEX_ENVIRONMENT": "development",
        "CHILDINDEX_PORT": str(port),
        "CHILDINDEX_INDEXER_INTERVAL_SECONDS": "0.2",
        "CHILDINDEX_LOG_LEVEL": "info",
        "CHILDINDEX_LOG_FORMAT": "json",
        "CHILDINDEX_METRICS_TOKEN_FILE": str(tmp_path / "token"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cli = [sys.executable, "-c", "from childindex.cli import main; main()", "serve", "--workers", "2"]
    log = (tmp_path / "serve.log").open("wb")
    folder = Path("/nonexistent")
    proc = subprocess.Popen(cli, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    given, family = "Peregrine", "Quillfeather"
    body = child_create(names=[{"given": given, "family": family}]).model_dump(mode="json")
    try:
        deadline = time.monotonic() + 90
        while True:  # both workers ready: several answers in a row (each connection may go to either)
            try:
                if all(httpx.get(f"{base}/readyz", timeout=2).status_code == 200 for _ in range(6)):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve was not ready within 90 s"
            time.sleep(0.3)
        ready = httpx.get(f"{base}/readyz", timeout=2)
        assert ready.json() == {"status": "ready"}
        before = _scrape(base)

        admin = {"X-Dev-Actor": "subject=admin; role=directory_admin", "X-Purpose-Of-Use": "administration"}
        created = httpx.post(f"{base}/api/v1/children", json=body, headers=admin, timeout=10)
        assert created.status_code == 201, created.text
        child = created.json()["id"]
        reader = {"X-Dev-Actor": "subject=hv; role=practitioner", "X-Purpose-Of-Use": "considering-caf"}
        query = {"given": given, "family": family, "birth_date": body["date_of_birth"]}
        _until_found(base, query, reader)
        card = httpx.get(f"{base}/api/v1/children/{child}", headers=reader, timeout=10)
        assert card.status_code == 200
        bad = httpx.post(f"{base}/api/v1/children/search", json={"given": given}, headers=reader, timeout=10)
        assert bad.status_code == 422

        # Whichever worker answers a scrape, it sums both workers' files.
        for _ in range(4):
            after = _scrape(base)
            assert value(after, "childindex_searches_total", outcome="found") >= (
                value(before, "childindex_searches_total", outcome="found") + 1
            )
            assert value(after, "childindex_searches_total", outcome="refused") >= (
                value(before, "childindex_searches_total", outcome="refused") + 1
            )
            reads = {"route": CARD, "method": "GET", "status": "2xx"}
            assert value(after, "childindex_http_request_duration_seconds_count", **reads) == (
                value(before, "childindex_http_request_duration_seconds_count", **reads) + 1
            )
            assert value(after, "childindex_audit_events_committed_total") >= 1
            assert value(after, "childindex_index_pending_changes") == 0  # (the supervisor's indexer)
        # The workers write to files in one directory the supervisor made (and removes at the end).
        workers = [p for p in _children_of(proc.pid) if b"resource_tracker" not in _cmdline(p)]
        assert len(workers) == 2
        folders = {_environ(p).get("PROMETHEUS_MULTIPROC_DIR") for p in workers}
        assert len(folders) == 1 and None not in folders
        folder = Path(str(folders.pop()))
        written = {f.name for f in folder.iterdir()}
        assert all(any(name.endswith(f"_{p}.db") for name in written) for p in workers), written

        # A worker killed outright leaves its files; the next scrape marks it dead (its live gauge
        # files go), and the counts it made stay in the sums.
        killed = workers[0]
        assert (folder / f"gauge_livesum_{killed}.db").exists()
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (folder / f"gauge_livesum_{killed}.db").exists():
            try:
                counted = _scrape(base)
                assert value(counted, "childindex_searches_total", outcome="found") >= (
                    value(before, "childindex_searches_total", outcome="found") + 1
                )
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the killed worker's live gauge was never marked dead"
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    assert not folder.exists()

    lines = [line for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, lines
    assert all({"time", "level", "logger", "message", "node", "pid"} <= r.keys() for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's own lines too
    text = "\n".join(lines)
    nhs = body["identifiers"][0]["value"]
    for secret in (given, family, body["date_of_birth"], nhs, body["address"]["postcode"], child):
        assert secret not in text, secret
