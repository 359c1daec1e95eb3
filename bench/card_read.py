"""Time the involvement card read against a seeded database (e.g. 1,000,000 children).

    uv run python bench/card_read.py --db /tmp/childindex-seed-bench.db [--reads 2000] [--http]

Each read is `service.read_card` in its own unit of work, as the API does it: it loads the
card and appends an audit event (a durable commit), which is part of the cost.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from directory import service
from directory.db import make_engine, unit_of_work
from directory.models import Actor, Contact, Purpose, Role, utcnow

TEAM = Contact(name="Early Help Hub", role="local delivery team")


def percentiles(label: str, samples_ms: list[float], elapsed: float) -> None:
    """Print p50/p95/p99 and the rate."""
    q = statistics.quantiles(samples_ms, n=100, method="inclusive")
    print(
        f"{label}: {len(samples_ms)} reads, p50 {q[49]:.2f} ms, p95 {q[94]:.2f} ms, "
        f"p99 {q[98]:.2f} ms, max {max(samples_ms):.2f} ms, {len(samples_ms) / elapsed:.0f}/s"
    )


def timed(reads: list[uuid.UUID], one: Callable[[uuid.UUID], None]) -> tuple[list[float], float]:
    """Run one read per id; the latencies in ms and the total seconds."""
    samples: list[float] = []
    started = time.perf_counter()
    for child_id in reads:
        t0 = time.perf_counter()
        one(child_id)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, time.perf_counter() - started


def main() -> None:
    """Read random children's cards in-process (and over HTTP with --http)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("/tmp/childindex-seed-bench.db"))
    parser.add_argument("--url", help="a database URL instead of --db (e.g. PostgreSQL)")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--http", action="store_true", help="also through the HTTP API")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    # Key files from CHILDINDEX_AUDIT_KEY_FILE / _SECRETS_KEY_FILE (bench/run.sh sets them).
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    url = args.url or f"sqlite:///{args.db}"
    engine = make_engine(url)
    rng = random.Random(args.seed)
    with engine.connect() as conn:
        ids = [uuid.UUID(str(r[0])) for r in conn.execute(sa.text("SELECT id FROM child"))]
        practitioner = uuid.UUID(
            str(conn.execute(sa.text("SELECT id FROM practitioner ORDER BY id LIMIT 1")).scalar_one())
        )
    print(f"{len(ids):,} children in {engine.url.render_as_string()}; {os.cpu_count()} cores")
    actor = Actor(
        subject="bench:card",
        role=Role.PRACTITIONER,
        purpose=Purpose.CONSIDERING_CAF,
        practitioner_id=practitioner,
        client_id="bench",
    )

    def read(child_id: uuid.UUID) -> None:
        with unit_of_work(engine) as session:
            service.read_card(session, actor=actor, child_id=child_id, now=utcnow(), fallback_team=TEAM)

    for child_id in rng.sample(ids, 50):  # warm the page cache and the statement cache
        read(child_id)
    samples, elapsed = timed(rng.sample(ids, args.reads), read)
    percentiles("read_card (in process, audited)", samples, elapsed)

    if args.http:
        from fastapi.testclient import TestClient

        from childindex.app import create_app
        from childindex.settings import Settings

        # One bench subject reads everything: lift the per-subject limit and the trawling alert.
        settings = Settings(
            environment="development",
            database_url=url,
            search_rate_per_minute=10**9,
            trawl_distinct_children=10**9,
            trawl_burst_children=10**9,
            indexer_interval_seconds=0,
        )
        app = create_app(settings, engine=engine)
        headers = {
            "X-Dev-Actor": f"subject=bench:card; role=practitioner; practitioner={practitioner}",
            "X-Purpose-Of-Use": "considering-caf",
        }
        with TestClient(app) as client:

            def get(child_id: uuid.UUID) -> None:
                response = client.get(f"/api/v1/children/{child_id}", headers=headers)
                assert response.status_code == 200, response.text

            # Measure the app as it serves, not as it starts: /readyz says when its resident copy of
            # the search index has loaded (30-50 s at 1,000,000 children, a core busy meanwhile).
            started = time.perf_counter()
            while client.get("/readyz").status_code != 200:
                if time.perf_counter() - started > 600:
                    raise SystemExit("the app did not become ready in 600 s: see GET /readyz")
                time.sleep(1)
            print(f"ready after {time.perf_counter() - started:.1f} s")
            for child_id in rng.sample(ids, 50):
                get(child_id)
            samples, elapsed = timed(rng.sample(ids, args.reads), get)
        percentiles("GET /api/v1/children/{id} (TestClient, audited)", samples, elapsed)


if __name__ == "__main__":
    main()
