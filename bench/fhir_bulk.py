"""A FHIR Bulk Data export of every child of a seeded database: wall time and peak memory of the job.

    .venv/bin/python bench/fhir_bulk.py [--children 1000000] [--db var/bench-1000000.db] [--batch 500]

Seeds the database with bench/seed_rate.py in a separate process when the file does not exist (so the
seed's memory is not counted), then runs one export in this process exactly as the serving process's
worker thread does (interop.bulk.worker.ExportRun: keyset-paged batches, each child's picture built as
a read of it would be, one audit event per batch), as a connected system with every child type's read
scope. Prints the children and resources exported, the files' size, the wall time, and this process's
peak RSS before and after the export (the export's own growth is the difference).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from directory.db import make_engine, unit_of_work  # noqa: E402
from directory.models import Actor, BulkExport, Contact, Purpose, Role  # noqa: E402
from interop.bulk.jobs import BulkConfig, outputs  # noqa: E402
from interop.bulk.params import EXPORT_TYPES  # noqa: E402
from interop.bulk.worker import ExportRun  # noqa: E402

TEAM = Contact(name="Early Help Hub", role="local delivery team")


def progress(engine: sa.Engine, export_id: uuid.UUID) -> int:
    """How many children the export has done."""
    with unit_of_work(engine) as s:
        row = s.get(BulkExport, export_id)
        return row.children_done if row else 0


def peak_mib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Seed when needed, then export every child and report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--children", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("var/bench-bulk"))
    ap.add_argument(
        "--stop-after",
        type=int,
        default=0,
        help="cancel the export once this many children are done (the rate on a big database, sooner)",
    )
    args = ap.parse_args()
    db = args.db or Path(f"var/bench-{args.children}.db")
    if not db.exists():
        here = Path(__file__).resolve().parent
        subprocess.run(
            [sys.executable, str(here / "seed_rate.py"), "--children", str(args.children), "--db", str(db)],
            check=True,
        )
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    engine = make_engine(f"sqlite:///{db}")
    actor = Actor(subject="bench-bulk", role=Role.SYSTEM, organisation="RNU", purpose=Purpose.DIRECT_CARE)
    cfg = BulkConfig(directory=args.out, batch_size=args.batch)
    with unit_of_work(engine) as s:
        row = BulkExport(
            client_id=actor.subject,
            actor=actor.model_dump_json(),
            scopes="directory.export system/*.rs",
            level="system",
            types=",".join(EXPORT_TYPES),
            request_url="http://bench/fhir/$export",
        )
        s.add(row)
    before = peak_mib()
    load = os.getloadavg()
    started = time.perf_counter()
    run = ExportRun(engine, cfg, row.id, TEAM)
    worker = threading.Thread(target=run.run)
    worker.start()
    while worker.is_alive():
        worker.join(2)
        if args.stop_after and progress(engine, row.id) >= args.stop_after:
            with unit_of_work(engine) as s:  # as DELETE on the status URL does
                s.execute(sa.update(BulkExport).where(BulkExport.id == row.id).values(status="cancelled"))  # type: ignore[arg-type]
            worker.join()
    elapsed = time.perf_counter() - started
    with unit_of_work(engine) as s:
        done = s.get(BulkExport, row.id)
        assert done is not None
        status, children, files = done.status, done.children_done, outputs(done)
    size = sum(f.stat().st_size for f in cfg.files_of(row.id).glob("*.ndjson"))
    if status == "cancelled":
        files = [{"type": t, "count": n} for t, n in run.counts.items()]
        print(f"stopped after {children:,} children (--stop-after); files deleted as on a cancel")
    print(f"machine: {os.cpu_count()} cores, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"export {status}: {children:,} children in {elapsed:.1f} s ({children / elapsed:,.0f} children/s)")
    print("resources: " + ", ".join(f"{o['type']} {o['count']:,}" for o in files))
    print(f"files: {size / 2**20:,.0f} MiB of NDJSON")
    print(f"peak RSS: {before:,.0f} MiB before the export, {peak_mib():,.0f} MiB after (batch {args.batch})")


if __name__ == "__main__":
    main()
