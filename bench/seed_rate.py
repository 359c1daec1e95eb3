"""Seed N synthetic children into a fresh database and print the rate.

uv run python bench/seed_rate.py [--children 1000000] [--db /tmp/seed-bench.db]
uv run python bench/seed_rate.py --children 100000 --url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from childindex.demo.seed import seed
from directory.db import make_engine
from directory.models import Actor, Role


def main() -> None:
    """Seed into an empty database and report children per second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, default=Path("/tmp/childindex-seed-bench.db"))
    parser.add_argument("--url", help="a PostgreSQL URL instead of a SQLite file (must be empty)")
    parser.add_argument("--in-process", action="store_true", help="generate in this process")
    args = parser.parse_args()
    # Key files from CHILDINDEX_AUDIT_KEY_FILE / _SECRETS_KEY_FILE (bench/run.sh sets them).
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    if args.url:
        url = args.url
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{args.db}"
    engine = make_engine(url)
    actor = Actor(subject="bench:seed", role=Role.DIRECTORY_ADMIN)
    started = time.perf_counter()
    result = seed(
        engine,
        children=args.children,
        seed=args.seed,
        actor=actor,
        parallel=False if args.in_process else None,
    )
    elapsed = time.perf_counter() - started
    rows = sum(result.rows.values())
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {engine.dialect.name}"
    )
    print(
        f"seeded {args.children:,} children ({rows:,} rows) in {elapsed:.1f} s: "
        f"{args.children / elapsed:,.0f} children/s, {rows / elapsed:,.0f} rows/s"
    )
    if not args.url:
        size = Path(args.db).stat().st_size
        print(f"database file: {size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
