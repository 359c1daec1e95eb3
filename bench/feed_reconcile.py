"""Feeds that reconcile (`childindex import --source`): time and count them, and measure wrong links.

    python bench/feed_reconcile.py unchanged --rows 1000000
    python bench/feed_reconcile.py changes --children 100000 --rows 100000

``unchanged``: load N children (the plain bulk import), then reconcile the same file from the
``pds`` source: every row finds its record by NHS number and agrees with it, so nothing changes.
The search index is left empty: no row of an unchanged feed reaches the matching engine.

``changes``: load and index N children (embedded backend on SQLite), then reconcile a feed of
``--rows`` rows from the ``pds`` source: 10% new children (NHS numbers the directory does not
hold), 5% corrupted duplicates of existing children (no NHS number, one corruption each: a typo
in a name, a date of birth a digit out, a move, a surname change, or the names swapped), and the
rest existing children by NHS number, ``--changed`` of them (default 30%) with a new surname (the
others unchanged). Every row is labelled with the child it is, so a row joined automatically to
any other child (or a new child's row joined to anyone) is a wrong link.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from import_rate import people, write_csv  # bench/ is the script's folder: on sys.path

from childindex.demo.seed import seed
from childindex.feeds import reconcile_files
from childindex.importing import import_files
from directory.db import make_engine
from directory.identifiers import nhs_check_digit
from directory.importer.precedence import Precedence
from directory.importer.reconcile import Outcome, ReconcileResult
from directory.models import Actor, Outbox, Role
from search.embedded import EmbeddedBackend
from search.projection import all_children

ACTOR = Actor(subject="bench:feed", role=Role.DIRECTORY_ADMIN)


def _fresh(path: Path) -> sa.Engine:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    seed(engine, children=0, seed=1, actor=ACTOR)  # the localities of the DS postcodes
    return engine


def _load(engine: sa.Engine, csv_path: Path, *, index: bool) -> EmbeddedBackend:
    started = time.perf_counter()
    loaded = import_files(engine, [csv_path], fmt="csv", actor=ACTOR)
    print(f"loaded {loaded.created:,} children in {time.perf_counter() - started:.0f} s (plain import)")
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    if index:
        started = time.perf_counter()
        count = backend.rebuild(all_children(engine, batch=5000))
        print(f"indexed {count:,} children in {time.perf_counter() - started:.0f} s")
    outbox = Outbox.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:  # the index holds them all (or, unindexed, needs none of them)
        conn.execute(
            sa.update(outbox).where(outbox.c.processed_at.is_(None)).values(processed_at=sa.func.now())
        )
    return backend


def _show(label: str, result: ReconcileResult, elapsed: float, cpu: float) -> None:
    print(
        f"{label}: {result.read:,} rows in {elapsed:.1f} s = {result.read / elapsed:,.0f} rows/s "
        f"({cpu:.1f} s of CPU in this process; load average {os.getloadavg()[0]:.1f}); "
        f"created {result.created:,}, updated {result.updated:,}, unchanged {result.unchanged:,}, "
        f"held {result.held:,}, rejected {len(result.rejected):,}; ignored fields {dict(result.ignored)}"
    )


def unchanged(args: argparse.Namespace) -> None:
    """Re-import N unchanged rows through the reconciler."""
    args.dir.mkdir(parents=True, exist_ok=True)
    csv_path = args.dir / "children.csv"
    if args.again:  # the file and database of an earlier run: reconcile it once more
        engine = make_engine(f"sqlite:///{args.dir / 'feed.db'}")
        backend = EmbeddedBackend(engine)
    else:
        write_csv(csv_path, people(args.rows, 5))
        engine = _fresh(args.dir / "feed.db")
        backend = _load(engine, csv_path, index=False)
    started, cpu = time.perf_counter(), time.process_time()
    result = reconcile_files(
        engine, [csv_path], fmt="csv", source="pds", backend=backend, precedence=Precedence(), actor=ACTOR
    )
    _show("reconcile, unchanged", result, time.perf_counter() - started, time.process_time() - cpu)


def _new_nhs(rng: random.Random) -> str:
    while True:
        body = str(rng.randrange(600_000_000, 700_000_000))
        digit = nhs_check_digit(body)
        if digit is not None:
            return f"{body}{digit}"


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word + rng.choice("aeiou")
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _corrupt(row: dict[str, str], rng: random.Random, surnames: list[str]) -> tuple[dict[str, str], str]:
    out = dict(row, nhs_number="", upn="", local_id=f"other:{uuid.uuid4().hex[:12]}")
    kind = rng.choice(["typo-given", "typo-family", "dob-digit", "moved", "surname-change", "swapped"])
    if kind == "typo-given":
        out["given"] = _typo(row["given"], rng)
    elif kind == "typo-family":
        out["family"] = _typo(row["family"], rng)
    elif kind == "dob-digit":
        born = date.fromisoformat(row["date_of_birth"])
        out["date_of_birth"] = (born + timedelta(days=rng.choice([-1, 1, 10, -10]))).isoformat()
    elif kind == "moved":
        out["postcode"] = f"DS{rng.randint(1, 24)} {rng.randint(1, 9)}ZZ"
        out["address_line1"] = "1 Elsewhere Road"
    elif kind == "surname-change":
        out["family"] = rng.choice(surnames)
    else:
        out["given"], out["family"] = row["family"], row["given"]
    return out, kind


def changes(args: argparse.Namespace) -> None:
    """Reconcile a feed of changes against N indexed children; count outcomes and wrong links."""
    rng = random.Random(11)
    args.dir.mkdir(parents=True, exist_ok=True)
    population = people(args.children, 5)
    base = args.dir / "children.csv"
    write_csv(base, population)
    engine = _fresh(args.dir / "changes.db")
    backend = _load(engine, base, index=True)
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT value, child_id FROM child_identifier WHERE system = 'nhs'"))
        by_nhs = {value: uuid.UUID(str(child_id)) for value, child_id in found}
    surnames = sorted({p["family"] for p in population})
    feed_rows: list[dict[str, str]] = []
    truth: list[tuple[str, object]] = []  # (kind, the child the row is, or None for a new child)
    picked = rng.sample(range(len(population)), int(args.rows * 0.9))
    n_new = args.rows - len(picked)
    n_dup = int(args.rows * 0.05)
    new_people = people(n_new, 77)
    for p in new_people:
        feed_rows.append(dict(p, nhs_number=_new_nhs(rng), upn=""))
        truth.append(("new", None))
    for k, i in enumerate(picked):
        person = population[i]
        child = by_nhs[person["nhs_number"]]
        if k < n_dup:
            row, kind = _corrupt(person, rng, surnames)
            feed_rows.append(row)
            truth.append((f"duplicate:{kind}", child))
        elif rng.random() < args.changed:
            feed_rows.append(dict(person, family=rng.choice(surnames)))
            truth.append(("changed", child))
        else:
            feed_rows.append(dict(person))
            truth.append(("same", child))
    order = list(range(len(feed_rows)))
    rng.shuffle(order)
    feed = args.dir / "feed.csv"
    write_csv(feed, [feed_rows[i] for i in order])
    truth = [truth[i] for i in order]
    started, cpu = time.perf_counter(), time.process_time()
    result = reconcile_files(
        engine, [feed], fmt="csv", source="pds", backend=backend, precedence=Precedence(), actor=ACTOR
    )
    _show("reconcile, feed of changes", result, time.perf_counter() - started, time.process_time() - cpu)
    _score(result, truth)


def _score(result: ReconcileResult, truth: list[tuple[str, object]]) -> None:
    """Outcomes by kind of row, and the wrong automatic links (rows joined to a child they are not)."""
    table: Counter[tuple[str, str]] = Counter()
    wrong = linked = 0
    for line in result.lines:
        kind, child = truth[line.line - 2]  # line 1 is the header
        table[(kind.split(":")[0], line.outcome.value)] += 1
        if line.outcome in (Outcome.UPDATED, Outcome.UNCHANGED):
            linked += 1
            if line.child_id is None or child is None or line.child_id != child:
                wrong += 1
    for (kind, outcome), n in sorted(table.items()):
        print(f"  {kind:>10} -> {outcome:<9} {n:>7,}")
    dup = Counter(t[0] for t in truth if t[0].startswith("duplicate"))
    print(f"  corrupted duplicates by kind: {dict(sorted(dup.items()))}")
    print(
        f"wrong automatic links: {wrong:,} of {linked:,} rows joined automatically "
        f"({100 * wrong / max(linked, 1):.3f}%), {100 * wrong / max(len(result.lines), 1):.3f}% of all rows"
    )


def main() -> None:
    """Run one of the two benchmarks."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("unchanged", "changes"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.3)
    parser.add_argument(
        "--again", action="store_true", help="unchanged: reuse the last run's file and database"
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp/childindex-feed-bench"))
    args = parser.parse_args()
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    (unchanged if args.mode == "unchanged" else changes)(args)


if __name__ == "__main__":
    main()
