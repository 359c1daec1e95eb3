"""Time merges, unmerges and subject access exports against a seeded database.

    uv run python bench/merge.py --database-url sqlite:////tmp/childindex-merge-bench.db [--pairs 200]

The database is seeded first (`childindex seed --children N` into an empty database). Picks random
pairs of active children, merges the second into the first (each in its own transaction, as the
route does), then unmerges every merge, checking that each table's rows are back as they were;
then exports a subject access request for random children. Prints the latency per operation and
how many merges were refused (both records with an open CAF).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from childindex import subject_access
from directory import service
from directory.db import make_engine, unit_of_work
from directory.errors import DomainError
from directory.merge_moves import CHILD_ROWS
from directory.models import Actor, Purpose, Role

ACTOR = Actor(subject="bench", role=Role.DATA_MANAGER, purpose=Purpose.ADMINISTRATION)


def _fingerprint(engine: sa.Engine) -> dict[str, int]:
    """A cheap check that every moved table is back: rows per (table, child) hashed together."""
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for table, column in (*CHILD_ROWS, ("child", "status"), ("child", "version")):
            rows = conn.execute(
                sa.text(
                    f'SELECT id, {column} FROM "{table}"'
                    if table != "involvement_version"
                    else f"SELECT involvement_id, version, {column} FROM involvement_version"
                )
            )
            out[f"{table}.{column}"] = hash(frozenset(tuple(str(v) for v in r) for r in rows))
    return out


def _report(label: str, samples: list[float]) -> None:
    if not samples:
        print(f"{label}: none")
        return
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{label}: n={len(ms)} p50={statistics.median(ms):.1f} ms p99={p99:.1f} ms max={ms[-1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # Key files from CHILDINDEX_AUDIT_KEY_FILE / _SECRETS_KEY_FILE (bench/run.sh sets them).
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    engine = make_engine(args.database_url)
    rng = random.Random(args.seed)
    with engine.connect() as conn:
        ids = [
            uuid.UUID(str(r))
            for r in conn.execute(sa.text("SELECT id FROM child WHERE status = 'active'")).scalars()
        ]
    rng.shuffle(ids)
    pairs = [(ids[2 * i], ids[2 * i + 1]) for i in range(min(args.pairs, len(ids) // 2))]
    before = _fingerprint(engine)
    merged: list[uuid.UUID] = []
    merge_times: list[float] = []
    refused = 0
    for keep, dup in pairs:
        start = time.perf_counter()
        try:
            with unit_of_work(engine) as s:
                service.merge_children(s, actor=ACTOR, duplicate_id=dup, into_id=keep, reason="bench")
        except DomainError:
            refused += 1
            continue
        merge_times.append(time.perf_counter() - start)
        merged.append(dup)
    unmerge_times: list[float] = []
    for dup in reversed(merged):
        start = time.perf_counter()
        with unit_of_work(engine) as s:
            service.unmerge_children(s, actor=ACTOR, duplicate_id=dup)
        unmerge_times.append(time.perf_counter() - start)
    _report("merge", merge_times)
    _report("unmerge", unmerge_times)
    print(f"refused (both records with an open CAF): {refused} of {len(pairs)}")
    print("every moved table back as it was:", _fingerprint(engine) == before)
    sar_times: list[float] = []
    for child_id in ids[: min(100, len(ids))]:
        start = time.perf_counter()
        with Session(engine) as s:
            export = subject_access.build(
                s, actor=ACTOR, child_id=child_id, authority="Bench", now=datetime.now(UTC)
            )
            s.commit()
        sar_times.append(time.perf_counter() - start)
        assert export.bundle["entry"]
    _report("subject access export", sar_times)


if __name__ == "__main__":
    main()
