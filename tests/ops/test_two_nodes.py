"""Two `childindex serve` nodes against one PostgreSQL and one Elasticsearch, behind a real HAProxy
on loopback (issue #21 item 1; docs/nodes.md).

Proves: a child recorded through node A is found through node B within a second; killing (-9) the
node that holds the indexer's lease lets the other take over with nothing lost; one subject's rate
limit and trawling count hold across both nodes (they are kept in the database).

Real services only: the suite's PostgreSQL (CHILDINDEX_TEST_POSTGRES_URL), its Elasticsearch
(CHILDINDEX_TEST_ELASTICSEARCH_URL, under an alias of this run's own) and Debian's haproxy
(tests/services/haproxy.sh installs it). In CI a missing one fails the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import _truncate_all, need_service
from tests.directory.test_serve import _free_port
from tests.fixtures.builders import next_nhs_number

HAPROXY = os.environ.get("CHILDINDEX_TEST_HAPROXY", "/usr/sbin/haproxy")
ES_URL = os.environ.get("CHILDINDEX_TEST_ELASTICSEARCH_URL")
LIMIT = 10  # searches and card reads one subject may make in any 60 s
TRAWL_BURST = 4  # distinct children's records one subject may open before an alert
ROLE_PURPOSE = {"directory_admin": "administration"}
JOBS = ("indexer", "fhir-notifications", "people-notices")  # the jobs these settings turn on


def who(subject: str, role: str = "practitioner") -> dict[str, str]:
    actor = f"subject={subject}; role={role}; org=Cowley School"
    return {"X-Dev-Actor": actor, "X-Purpose-Of-Use": ROLE_PURPOSE.get(role, "considering-caf")}


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def said(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    engine: Engine
    proxy: str
    nodes: dict[str, Node]
    folder: Path
    recorded: list[tuple[str, str]] = field(default_factory=list)  # (child id, NHS number)


def _until(check: Callable[[], Any], seconds: float, what: str, step: float = 0.02) -> float:
    """Seconds from now until the attempt that succeeded began (an attempt begun in time counts)."""
    start = time.monotonic()
    while True:
        began = time.monotonic() - start
        if began > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        if check():
            return began
        time.sleep(step)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _start_node(name: str, env: dict[str, str], folder: Path) -> Node:
    port = _free_port()
    log = folder / f"node-{name}.log"
    cli = [sys.executable, "-c", "from childindex.cli import main; main()", "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cli, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    node = Node(name, port, proc, log)
    _until(
        lambda: _answers(f"{node.base}/healthz") or not node.alive(), 90, f"node {name} answering", step=0.2
    )
    assert node.alive(), log.read_text()
    return node


def _haproxy_config(folder: Path, port: int, nodes: list[Node]) -> Path:
    servers = "\n".join(f"  server {n.name} 127.0.0.1:{n.port} check" for n in nodes)
    config = folder / "haproxy.cfg"
    config.write_text(
        f"""global
  maxconn 512
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend childindex
  bind 127.0.0.1:{port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter 300ms fall 2 rise 1
  http-response set-header X-Served-By %s
{servers}
"""
    )
    return config


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not shutil.which(HAPROXY):
        need_service("HAProxy", "CHILDINDEX_TEST_HAPROXY (tests/services/haproxy.sh installs it)")
    if not ES_URL:
        need_service("Elasticsearch", "CHILDINDEX_TEST_ELASTICSEARCH_URL")
    postgres_url = os.environ.get("CHILDINDEX_TEST_POSTGRES_URL")
    if not postgres_url:
        need_service("PostgreSQL", "CHILDINDEX_TEST_POSTGRES_URL")
    from directory.db import make_engine
    from tests.conftest import POSTGRES_URL  # noqa: F401  (the session's schema is migrated first)

    folder = tmp_path_factory.mktemp("two-nodes")
    engine = make_engine(postgres_url or "")
    from childindex.migrations import upgrade

    upgrade(engine)
    _truncate_all(engine)
    alias = f"childindex-nodes-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "CHILDINDEX_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "CHILDINDEX_ENVIRONMENT": "development",
        "CHILDINDEX_SECRET_KEY": "two-nodes-share-this-secret-key-0123456789",
        "CHILDINDEX_SEARCH_BACKEND": "elasticsearch",
        "CHILDINDEX_ELASTICSEARCH_URL": ES_URL or "",
        "CHILDINDEX_ELASTICSEARCH_ALIAS": alias,
        # The timer alone would take up to 5 s: found within a second is the NOTIFY from the write.
        "CHILDINDEX_INDEXER_INTERVAL_SECONDS": "5",
        "CHILDINDEX_SEARCH_RATE_PER_MINUTE": str(LIMIT),
        "CHILDINDEX_TRAWL_BURST_CHILDREN": str(TRAWL_BURST),
        "CHILDINDEX_KEEPALIVE_REQUESTS": "0",
        "CHILDINDEX_LOG_LEVEL": "info",
        "CHILDINDEX_NOTIFY_ENABLED": "true",  # the FHIR notification sender's lease moves too
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        a = _start_node("a", env, folder)  # first: it migrates (a no-op here) and takes the leases
        started.append(a.proc)
        for job in JOBS:
            _until(lambda j=job: a.said(f"this node now runs the {j}"), 10, f"node a taking the {job}")  # type: ignore[misc]
        b = _start_node("b", env, folder)
        started.append(b.proc)
        port = _free_port()
        config = _haproxy_config(folder, port, [a, b])
        check = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        with (folder / "haproxy.log").open("wb") as out:
            proxy = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(proxy)
        _until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 20, "haproxy answering")
        yield Cluster(engine, f"http://127.0.0.1:{port}", {"a": a, "b": b}, folder)
    finally:
        for proc in reversed(started):
            _stop(proc)
        from elasticsearch import Elasticsearch

        Elasticsearch(ES_URL or "").indices.delete(index=f"{alias}-*", ignore_unavailable=True)
        engine.dispose()


def _record(base: str, family: str) -> tuple[str, str]:
    nhs = next_nhs_number()
    body = {
        "names": [{"given": "Ada", "family": family}],
        "date_of_birth": (date.today() - timedelta(days=365 * 7)).isoformat(),
        "sex": "female",
        "identifiers": [{"system": "nhs", "value": nhs}],
        "address": {"line1": "2 Temple Road", "town": "Oxford", "postcode": "ox4 2ab"},
    }
    r = httpx.post(f"{base}/api/v1/children", json=body, headers=who("admin", "directory_admin"), timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), nhs


def _found(base: str, nhs: str, subject: str) -> list[str]:
    r = httpx.post(
        f"{base}/api/v1/children/search", json={"nhs_number": nhs}, headers=who(subject), timeout=30
    )
    assert r.status_code == 200, r.text
    return [str(uuid.UUID(h["child_id"])) for h in r.json()["hits"]]


def _pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.text("SELECT count(*) FROM outbox WHERE processed_at IS NULL")).scalar_one()
        )


def test_a_child_recorded_through_one_node_is_found_through_the_other_within_a_second(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    for job in JOBS:  # b started every job; a holds every lease
        assert a.said(f"this node now runs the {job}") and not b.said(f"this node now runs the {job}")
    for node in (a, b):  # each node's first search opens its connections
        _found(node.base, next_nhs_number(), "warm")
    for writer, reader in ((a, b), (b, a)):  # the holder's own write, and the other node's
        child, nhs = _record(writer.base, "Okafor")
        cluster.recorded.append((child, nhs))
        subject = f"finder-{uuid.uuid4().hex[:6]}"
        took = _until(
            lambda r=reader, n=nhs, s=subject, c=child: _found(r.base, n, s) == [c],  # type: ignore[misc]
            1.0,
            "found through the other node",
        )
        print(f"recorded through {writer.name}, found through {reader.name} after {took:.3f} s")
    child, nhs = _record(cluster.proxy, "Nwosu")  # and through the proxy
    cluster.recorded.append((child, nhs))
    _until(lambda: _found(b.base, nhs, "finder-proxy") == [child], 1.0, "found through b")


def test_one_subject_s_rate_limit_holds_across_both_nodes_through_the_proxy(cluster: Cluster) -> None:
    child, _ = cluster.recorded[0]
    served, statuses = [], []
    with httpx.Client(timeout=30) as client:
        for _ in range(LIMIT + 1):
            r = client.get(f"{cluster.proxy}/api/v1/children/{child}", headers=who("limited"))
            statuses.append(r.status_code)
            served.append(r.headers.get("X-Served-By"))
    assert set(served) == {"a", "b"}, served  # spread over both nodes
    assert statuses == [200] * LIMIT + [429], statuses
    assert (
        httpx.get(f"{cluster.nodes['a'].base}/api/v1/children/{child}", headers=who("limited")).status_code
        == 429
    )
    assert (
        httpx.get(f"{cluster.nodes['b'].base}/api/v1/children/{child}", headers=who("limited")).status_code
        == 429
    )


def _alerts(engine: Engine, subject: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM audit_event WHERE action = 'alert.trawling' AND actor_subject = :s"
                ),
                {"s": subject},
            ).scalar_one()
        )


def test_the_trawl_count_is_shared_and_the_alert_raised_once(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    children = [_record(a.base, "Tran")[0] for _ in range(TRAWL_BURST)]
    for i, child in enumerate(children):  # a, b, a, b: no node alone sees more than half of them
        node = (a, b)[i % 2]
        assert (
            httpx.get(f"{node.base}/api/v1/children/{child}", headers=who("trawler"), timeout=30).status_code
            == 200
        )
        if i < TRAWL_BURST - 1:
            time.sleep(0.3)
            assert _alerts(cluster.engine, "trawler") == 0
    _until(lambda: _alerts(cluster.engine, "trawler") >= 1, 5, "the trawling alert")
    time.sleep(0.5)
    assert _alerts(cluster.engine, "trawler") == 1


def test_killing_the_indexer_s_node_lets_the_other_take_over_with_nothing_lost(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    holder, survivor = (a, b) if a.said("this node now runs the indexer") else (b, a)
    last, last_nhs = _record(holder.base, "Haddad")  # then at once, whether indexed yet or not:
    os.killpg(holder.proc.pid, signal.SIGKILL)
    holder.proc.wait(timeout=10)
    after, after_nhs = _record(survivor.base, "Haddad")  # through the survivor
    took = _until(
        lambda: survivor.said("this node now runs the indexer"), 10, "the survivor taking the indexer"
    )
    _until(lambda: _found(survivor.base, after_nhs, "after-kill") == [after], 5, "the new child found")
    for job in JOBS:  # every job moved, not just the indexer
        _until(lambda j=job: survivor.said(f"this node now runs the {j}"), 10, f"the survivor taking {job}")  # type: ignore[misc]
    assert _found(survivor.base, last_nhs, "after-kill") == [last]
    for child, nhs in cluster.recorded:
        assert _found(survivor.base, nhs, "after-kill") == [child]
    assert _pending(cluster.engine) == 0
    # and through the proxy, which has marked the dead node down
    _until(lambda: _answers(f"{cluster.proxy}/healthz"), 5, "the proxy answering")
    for _ in range(4):
        assert _found(cluster.proxy, after_nhs, "after-kill-proxy") == [after]
    print(f"takeover after kill -9: {took:.2f} s")
