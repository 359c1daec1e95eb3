"""Load test: a real `childindex serve` in its default configuration, on SQLite and PostgreSQL,
under a burst of writes to one row and under mixed concurrent reads and writes.

No request may wait for a resource that the requests it blocks are holding: a burst ends in
seconds with exactly one winner, the process keeps answering, and nothing answers 5xx.
Bounded (about a minute per database) and on loopback, it runs in CI with the rest of the suite.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from auth.config import AuthConfig
from auth.grants import ROLE_SCOPES
from auth.keys import KeyStore
from auth.models import SubjectKind
from auth.tokens import issue_access_token
from childindex.settings import Settings
from directory import service
from directory.db import unit_of_work
from directory.models import ChildCreate, Role
from tests.fixtures.auth_builders import make_grant
from tests.fixtures.builders import actor, child_create, make_org, make_practitioner, make_service

pytestmark = pytest.mark.load

BURST = 50
PRACTITIONERS = 300
CHILDREN = 40
BURST_SECONDS = 10.0  # the whole burst, every answer in
PROBE_SECONDS = 1.0  # each /healthz probe meanwhile
MIXED_SECONDS = 30.0
MIXED_CLIENTS = 16
SLOWEST_SECONDS = 5.0  # any one request under mixed load
SCOPES = (*ROLE_SCOPES[Role.PRACTITIONER], "user/*.cruds")  # the app API's, and FHIR's


def _signal_body(practitioner_id: uuid.UUID) -> dict[str, Any]:
    """The body of a CAF signal made by the practitioner signed in as `practitioner_id` (naming
    themselves is accepted; the practitioner is taken from the sign-in)."""
    return {"practitioner_id": str(practitioner_id), "no_risk_of_significant_harm": True}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    """What the server is started on: practitioners signed in with tokens of their own, children."""

    base: str
    tokens: dict[uuid.UUID, str]  # practitioner id -> access token for their own sign-in subject
    children: dict[uuid.UUID, ChildCreate]  # for the mixed load
    services: list[uuid.UUID]
    burst_child: uuid.UUID


def _populate(engine: Engine, base: str) -> World:
    """Practitioners whose sign-in subjects are their Practitioner.subject, each with a grant and a
    token of their own; the services they work in; children."""
    admin = actor(subject="burst-admin")
    with unit_of_work(engine) as s:
        org = make_org(s, name="Cowley Primary School")
        services = [
            make_service(s, org, name=f"Cowley {kind.title()}", service_type=kind).id
            for kind in ("inclusion", "pastoral", "attendance")
        ]
        people = []
        for i in range(PRACTITIONERS):
            subject = f"burst-practitioner-{i}"
            people.append((make_practitioner(s, org, name=f"Practitioner {i}", subject=subject).id, subject))
            make_grant(s, subject, scopes=SCOPES)
        children: dict[uuid.UUID, ChildCreate] = {}
        for i in range(CHILDREN + 1):
            body = child_create(
                names=[{"given": f"Child{i}", "family": ("Smith", "Jones", "Patel", "Brown")[i % 4]}],
                date_of_birth=(date.today() - timedelta(days=365 * 3 + 37 * i)).isoformat(),
            )
            children[service.create_child(s, actor=admin, data=body, today=date.today()).id] = body
    cfg = AuthConfig.from_settings(Settings(issuer=base))
    keys = KeyStore(engine, alg=cfg.signing_alg, max_age_days=cfg.signing_key_max_age_days)
    tokens = {
        pid: issue_access_token(
            keys,
            cfg,
            subject=subject,
            subject_kind=SubjectKind.USER,
            client_id="burst-app",
            scope=" ".join(SCOPES),
        )[0]
        for pid, subject in people
    }
    burst_child = next(iter(children))
    del children[burst_child]
    return World(base, tokens, children, services, burst_child)


@pytest.fixture
def served(engine: Engine, tmp_path: Path) -> Iterator[World]:
    """`childindex serve` (uvicorn, default threads and pools, production mode) on the test database."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    world = _populate(engine, base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHILDINDEX_")}
    for key_file in ("CHILDINDEX_AUDIT_KEY_FILE", "CHILDINDEX_SECRETS_KEY_FILE"):  # production needs them
        env[key_file] = os.environ[key_file]
    env.update(
        {
            "CHILDINDEX_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "CHILDINDEX_ENVIRONMENT": "production",
            "CHILDINDEX_ISSUER": base,
            "CHILDINDEX_PORT": str(port),
            "CHILDINDEX_SECRET_KEY": "burst-test-secret",
            "CHILDINDEX_LOG_LEVEL": "warning",
        }
    )
    log = (tmp_path / "serve.log").open("wb")
    cli = [sys.executable, "-c", "from childindex.cli import main; main()", "serve"]
    proc = subprocess.Popen(cli, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve was not ready within 60 s"
            time.sleep(0.2)
        yield world
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        engine.dispose()
        errors = [line for line in (tmp_path / "serve.log").read_text().splitlines() if "Traceback" in line]
        assert not errors, (tmp_path / "serve.log").read_text()[-5000:]


def _headers(token: str, purpose: str = "considering-caf") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": purpose}


class Probe:
    """/healthz, asked every 100 ms on a connection of its own, and how long each answer took."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.times: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=PROBE_SECONDS * 3) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                    if status != 200:
                        self.failures.append(f"status {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.times.append(time.monotonic() - started)
                self._stop.wait(0.1)


def test_a_burst_of_caf_signals_for_one_child_has_one_winner_in_seconds(served: World) -> None:
    people = list(served.tokens)[:BURST]
    barrier = threading.Barrier(BURST)

    def signal_caf(pid: uuid.UUID) -> tuple[int, float]:
        with httpx.Client(base_url=served.base, timeout=BURST_SECONDS * 3) as client:
            barrier.wait()
            started = time.monotonic()
            try:
                r = client.post(
                    f"/api/v1/children/{served.burst_child}/caf",
                    json=_signal_body(pid),
                    headers=_headers(served.tokens[pid]),
                )
                return r.status_code, time.monotonic() - started
            except httpx.TimeoutException:
                return 0, time.monotonic() - started

    with Probe(served.base) as probe:
        started = time.monotonic()
        with ThreadPoolExecutor(BURST) as pool:
            answers = list(pool.map(signal_caf, people))
        took = time.monotonic() - started
        time.sleep(0.3)  # a probe or two after the burst
    statuses = Counter(status for status, _ in answers)
    assert statuses == {201: 1, 409: BURST - 1}, statuses
    assert took < BURST_SECONDS, f"the burst took {took:.1f} s"
    assert not probe.failures, probe.failures
    assert max(probe.times) < PROBE_SECONDS, f"/healthz took {max(probe.times):.2f} s during the burst"


@dataclass
class Answer:
    """One request of the mixed load: what it was, what came back, how long it took."""

    op: str
    status: int
    seconds: float


class Mixed:
    """Clients, each a loop of random requests from random practitioners about random children."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._consents: list[tuple[uuid.UUID, uuid.UUID]] = []  # (consent, who recorded it)
        self._involvements: list[tuple[uuid.UUID, uuid.UUID]] = []  # (involvement, whose it is)
        self._people = list(world.tokens)
        self._children = list(world.children)

    def run(self, seconds: float, clients: int) -> None:
        deadline = time.monotonic() + seconds
        with ThreadPoolExecutor(clients) as pool:
            for done in [pool.submit(self._client, deadline, i) for i in range(clients)]:
                done.result()

    def _client(self, deadline: float, seed: int) -> None:
        rnd = random.Random(seed)
        ops = [
            (self._card, 30),
            (self._search, 25),
            (self._signal, 10),
            (self._involve, 10),
            (self._end_involvement, 5),
            (self._consent, 8),
            (self._withdraw, 4),
            (self._fhir_patient, 8),
        ]
        choices, weights = zip(*ops, strict=True)
        with httpx.Client(base_url=self.world.base, timeout=SLOWEST_SECONDS * 4) as client:
            while time.monotonic() < deadline:
                op = rnd.choices(choices, weights)[0]
                who = rnd.choice(self._people)
                op(client, rnd, who)

    def _send(
        self, client: httpx.Client, op: str, method: str, url: str, who: uuid.UUID, **kw: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            r = client.request(method, url, headers=_headers(self.world.tokens[who]), **kw)
            status = r.status_code
        except httpx.TimeoutException:
            r, status = None, 0
        with self._lock:
            self.answers.append(Answer(op, status, time.monotonic() - started))
        return r

    def _card(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        self._send(client, "card", "GET", f"/api/v1/children/{rnd.choice(self._children)}", who)

    def _search(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        body = self.world.children[rnd.choice(self._children)]
        query = {
            "given": body.names[0].given,
            "family": body.names[0].family,
            "birth_date": str(body.date_of_birth),
        }
        self._send(client, "search", "POST", "/api/v1/children/search", who, json=query)

    def _signal(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        child = rnd.choice(self._children)
        self._send(client, "signal", "POST", f"/api/v1/children/{child}/caf", who, json=_signal_body(who))

    def _involve(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        body = {
            "service_id": str(rnd.choice(self.world.services)),
            "practitioner_id": str(who),
            "role": "pastoral lead",
            "level_of_need": rnd.randint(1, 2),
            "start_date": date.today().isoformat(),
        }
        child = rnd.choice(self._children)
        r = self._send(
            client, "involvement", "POST", f"/api/v1/children/{child}/involvements", who, json=body
        )
        if r is not None and r.status_code == 201:
            with self._lock:
                self._involvements.append((uuid.UUID(r.json()["id"]), who))

    def _end_involvement(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        with self._lock:
            if not self._involvements:
                return
            involvement, whose = self._involvements.pop(rnd.randrange(len(self._involvements)))
        body = {"end_date": date.today().isoformat(), "reason": "support ended"}
        self._send(
            client, "end-involvement", "POST", f"/api/v1/involvements/{involvement}/end", whose, json=body
        )

    def _consent(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        body = {
            "scope": "information_sharing",
            "given_by_kind": "parent_carer",
            "given_by_name": "Jane Smith",
        }
        child = rnd.choice(self._children)
        r = self._send(client, "consent", "POST", f"/api/v1/children/{child}/consents", who, json=body)
        if r is not None and r.status_code == 201:
            with self._lock:
                self._consents.append((uuid.UUID(r.json()["id"]), who))

    def _withdraw(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        with self._lock:
            if not self._consents:
                return
            consent, whose = self._consents.pop(rnd.randrange(len(self._consents)))
        body = {"reason": "the family withdrew it"}
        self._send(client, "withdraw", "POST", f"/api/v1/consents/{consent}/withdraw", whose, json=body)

    def _fhir_patient(self, client: httpx.Client, rnd: random.Random, who: uuid.UUID) -> None:
        self._send(client, "fhir-patient", "GET", f"/fhir/Patient/{rnd.choice(self._children)}", who)


def test_mixed_reads_and_writes_over_many_children_answer_in_seconds_and_never_5xx(served: World) -> None:
    load = Mixed(served)
    with Probe(served.base) as probe:
        load.run(MIXED_SECONDS, MIXED_CLIENTS)
    by_op: dict[str, Counter[int]] = {}
    for a in load.answers:
        by_op.setdefault(a.op, Counter())[a.status] += 1
    slowest = max(load.answers, key=lambda a: a.seconds)
    summary = {op: dict(c) for op, c in sorted(by_op.items())}
    print(f"\n{len(load.answers)} requests in {MIXED_SECONDS:.0f} s; slowest {slowest}; by status {summary}")
    print(f"/healthz: {len(probe.times)} probes, slowest {max(probe.times):.3f} s")
    for op in sorted(by_op):
        times = sorted(a.seconds for a in load.answers if a.op == op)
        p50, p99 = times[len(times) // 2], times[len(times) * 99 // 100]
        print(f"  {op}: p50 {p50:.3f} p99 {p99:.3f} max {times[-1]:.3f}")
    failed = [a for a in load.answers if a.status >= 500 or a.status == 0]
    assert not failed, f"{len(failed)} answers 5xx or none: {failed[:10]}; {summary}"
    assert slowest.seconds < SLOWEST_SECONDS, f"the slowest request took {slowest}"
    assert not probe.failures, probe.failures
    assert max(probe.times) < PROBE_SECONDS, f"/healthz took {max(probe.times):.2f} s under load"
    # Every kind of request was made and did its work (not a load of refusals).
    for op, ok in {
        "card": 200,
        "search": 200,
        "signal": 201,
        "involvement": 201,
        "end-involvement": 200,
        "consent": 201,
        "withdraw": 200,
        "fhir-patient": 200,
    }.items():
        assert by_op.get(op, Counter())[ok] > 0, f"no {op} answered {ok}: {summary}"
