"""Time changing a child's details (`service.change_child`): one change per transaction, as a PATCH
makes it, each writing the fields, a version snapshot, an outbox row and an audit event.

    uv run python bench/details_change.py [--database-url sqlite:///var/details-bench.db]
        [--children 2000] [--changes 2000]

Creates the children through the domain (which writes version 1 of each), then changes random
children (a new official name, or a move to a new address, alternately) against the version read,
and prints the latency per change (median, 95th percentile) and the changes per second on one
connection; and the time to read a child's history.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

from childindex import keys
from childindex.migrations import upgrade
from childindex.settings import Settings
from directory import keyfile, service
from directory.db import make_engine, unit_of_work
from directory.models import Child, ChildChange, Purpose, Role
from tests.fixtures.builders import actor, make_child, make_locality


def _keys() -> None:
    """Key files of the bench's own (the audit chain's, the secrets'), unless the environment names some."""
    folder = Path(tempfile.mkdtemp(prefix="details-bench-keys-"))
    for purpose in keyfile.PURPOSES:
        variable = f"CHILDINDEX_{purpose.upper()}_KEY_FILE"
        os.environ.setdefault(variable, str(keyfile.generate(folder / f"{purpose}.key", purpose).path))
    keys.install(Settings())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="sqlite:///var/details-bench.db")
    parser.add_argument("--children", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=2000)
    args = parser.parse_args()
    _keys()
    engine = make_engine(args.database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    elif engine.url.database and Path(engine.url.database).exists():
        engine.dispose()
        Path(engine.url.database).unlink()
        engine = make_engine(args.database_url)
    upgrade(engine)
    admin = actor(Role.DIRECTORY_ADMIN, subject="bench")
    today = date.today()
    started = time.perf_counter()
    ids = []
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
        make_locality(s, code="WEST", areas=("OX2",))
    for start in range(0, args.children, 500):
        with unit_of_work(engine) as s:
            ids += [
                make_child(s, date_of_birth=(today - timedelta(days=400 + i)).isoformat())
                for i in range(start, min(start + 500, args.children))
            ]
    created = time.perf_counter() - started
    rng = random.Random(22)
    latencies = []
    for n in range(args.changes):
        child_id = rng.choice(ids)
        t0 = time.perf_counter()
        with unit_of_work(engine) as s:
            version = s.get(Child, child_id).version  # type: ignore[union-attr]
            body = (
                {"official_name": {"given": "Olivia", "family": f"Family{n}"}}
                if n % 2
                else {"address": {"line1": f"{n} High Street", "postcode": "OX2 6AE" if n % 4 else "OX4 1AB"}}
            )
            changed = service.change_child(
                s,
                actor=admin,
                child_id=child_id,
                change=ChildChange.model_validate(body),
                today=today,
                source="bench",
                expected_version=version,
            )
            assert changed
        latencies.append(time.perf_counter() - t0)
    reads = []
    reader = actor(Role.DIRECTORY_ADMIN, subject="bench", purpose=Purpose.ADMINISTRATION)
    for _ in range(200):
        t0 = time.perf_counter()
        with unit_of_work(engine) as s:
            service.child_history(s, actor=reader, child_id=rng.choice(ids))
        reads.append(time.perf_counter() - t0)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT count(*) FROM child_version")).scalar_one()
    ms = sorted(x * 1000 for x in latencies)
    print(
        json.dumps(
            {
                "database": engine.dialect.name,
                "children": args.children,
                "create_per_child_ms": round(created * 1000 / args.children, 2),
                "changes": args.changes,
                "change_median_ms": round(statistics.median(ms), 2),
                "change_p95_ms": round(ms[int(len(ms) * 0.95)], 2),
                "changes_per_second": round(len(ms) / (sum(ms) / 1000), 1),
                "history_read_median_ms": round(statistics.median(reads) * 1000, 2),
                "versions_kept": versions,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
