"""PostgreSQL beside SQLite at the same scale, in one run and one table (issue #21, item 3).

    uv run python bench/databases.py --children 1000000 [--rate 500] [--duration 20]

For each database in turn, the same steps with the same seed:
  1. seed N children into an empty database (`bench/seed_rate.py`);
  2. build the embedded search index (`childindex reindex`), wall time;
  3. involvement card reads, in process and over HTTP (`bench/card_read.py --http`);
  4. search through HTTP with auth and audit, 2 uvicorn workers: flat out (wrk, 16 connections) and
     at a fixed rate (`bench/search_http.py --workers 2 --rate R`).
SQLite is a file under var/ (WAL, synchronous=FULL, as served). PostgreSQL 15 is a cluster of its own
started by tests/services/postgres.sh on --pg-port with the durability a deployment has (fsync on,
synchronous_commit on) and shared_buffers of --pg-shared-buffers: not the suite's fsync-off cluster.
The steps run one after another on the same machine, so the two columns meet the same conditions;
the output's last lines are the table the README carries.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run a command from the repository root, echo its output, return it and its wall time."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    return done.stdout, elapsed


def grab(pattern: str, text: str, what: str) -> re.Match[str]:
    """The first match of `pattern` in a step's output, or stop with what was missing."""
    m = re.search(pattern, text)
    if m is None:
        raise SystemExit(f"could not find {what} in:\n{text}")
    return m


def start_postgres(port: int, shared_buffers: str) -> str:
    """A durable PostgreSQL cluster of the bench's own; its server URL (no database)."""
    env = {
        **os.environ,
        "CHILDINDEX_TEST_PG_PORT": str(port),
        "CHILDINDEX_TEST_PG_DIR": str(ROOT / "var" / f"bench-pg-{port}"),
        "CHILDINDEX_TEST_PG_OPTIONS": (
            f"-c fsync=on -c synchronous_commit=on -c shared_buffers={shared_buffers} "
            "-c max_wal_size=8GB -c checkpoint_timeout=15min"
        ),
    }
    subprocess.run(["bash", "tests/services/postgres.sh", "start"], cwd=ROOT, env=env, check=True)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}"


def stop_postgres(port: int) -> None:
    """Stop the bench's cluster and delete its data."""
    env = {
        **os.environ,
        "CHILDINDEX_TEST_PG_PORT": str(port),
        "CHILDINDEX_TEST_PG_DIR": str(ROOT / "var" / f"bench-pg-{port}"),
    }
    subprocess.run(["bash", "tests/services/postgres.sh", "stop"], cwd=ROOT, env=env, check=False)


def fresh_postgres_database(server: str, name: str) -> str:
    """Drop and create `name` on the server; its SQLAlchemy URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def database_bytes(url: str) -> int:
    """The database's size on disk: the SQLite file and its WAL, or PostgreSQL's pg_database_size."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return sum(
            Path(f"{path}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{path}{suffix}").exists()
        )
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()


def measure(label: str, url: str, seed_args: list[str], args: argparse.Namespace) -> dict[str, str]:
    """Every step on one database; the table's column for it."""
    print(f"\n=== {label}: {url}", flush=True)
    col: dict[str, str] = {}
    out, _ = run([PY, "bench/seed_rate.py", "--children", str(args.children), *seed_args])
    m = grab(r"seeded [\d,]+ children .* in ([\d.]+) s: ([\d,]+) children/s", out, "the seed rate")
    col["seed"] = f"{float(m[1]):.0f} s ({m[2]} children/s)"
    env = {**os.environ, "CHILDINDEX_DATABASE_URL": url}
    _, elapsed = run(["childindex", "reindex"], env)
    col["reindex"] = f"{elapsed:.0f} s"
    col["size after reindex"] = f"{database_bytes(url) / 2**30:.2f} GiB"
    out, _ = run([PY, "bench/card_read.py", "--url", url, "--reads", str(args.reads), "--http"])
    reads = r": \d+ reads, p50 ([\d.]+) ms, p95 ([\d.]+) ms"
    m = grab(r"read_card \(in process, audited\)" + reads, out, "card reads")
    col["card in process"] = f"p50 {m[1]} ms, p95 {m[2]} ms"
    m = grab(r"GET /api/v1/children/\{id\} [^:]*" + reads, out, "HTTP card reads")
    col["card over HTTP"] = f"p50 {m[1]} ms, p95 {m[2]} ms"
    search = [
        PY, "bench/search_http.py", "--database-url", url, "--workers", str(args.workers),
        "--skip", "ceiling", "dev", "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--queries", "1000", "--rate", str(args.rate),
    ]  # fmt: skip
    out, _ = run(search)
    rows = re.findall(
        r"app: search \+ auth \+ audit\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)", out
    )
    if len(rows) != 2:
        raise SystemExit(f"expected the flat-out and the fixed-rate rows in:\n{out}")
    flat, paced = rows
    col["search flat out"] = f"{float(flat[0]):.0f}/s, p95 {flat[2]} ms"
    col[f"search at {args.rate:g}/s"] = (
        f"p50 {paced[1]} ms, p95 {paced[2]} ms, p99 {paced[3]} ms ({paced[4]} failed)"
    )
    return col


def main() -> None:
    """Measure SQLite, then PostgreSQL, and print one table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--children", type=int, default=1_000_000)
    ap.add_argument("--reads", type=int, default=2000, help="card reads (each way)")
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pg-port", type=int, default=55490)
    ap.add_argument("--pg-shared-buffers", default="4GB")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], help="measure one database only")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL cluster and SQLite file")
    args = ap.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    columns: dict[str, dict[str, str]] = {}
    steps: list[tuple[str, Callable[[], dict[str, str]]]] = []
    db = ROOT / "var" / f"bench-databases-{args.children}.db"
    steps.append(("SQLite", lambda: measure("SQLite", f"sqlite:///{db}", ["--db", str(db)], args)))

    def postgres() -> dict[str, str]:
        server = start_postgres(args.pg_port, args.pg_shared_buffers)
        try:
            url = fresh_postgres_database(server, f"bench_{args.children}")
            return measure("PostgreSQL 15", url, ["--url", url], args)
        finally:
            if not args.keep:
                stop_postgres(args.pg_port)

    steps.append(("PostgreSQL 15", postgres))
    for name, step in steps:
        if args.only and not name.lower().startswith(args.only[:6]):
            continue
        columns[name] = step()
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    load = os.getloadavg()
    print(
        f"\n{args.children:,} children; {os.cpu_count()} cores; {args.workers} workers; "
        f"load average at the end {load[0]:.1f}"
    )
    names = list(columns)
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in next(iter(columns.values())):
        print(f"| {key} | " + " | ".join(columns[n].get(key, "") for n in names) + " |")


if __name__ == "__main__":
    main()
