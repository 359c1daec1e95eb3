"""The resident copy of the embedded index against the SQL path: load time, memory, lookup time.

    python bench/resident.py --db var/bench-1m.db --queries queries.jsonl --n 300

Loads the copy (as `serve` does, in a background thread) while sampling this process's resident
memory, then runs the same queries through both paths in the same run, warm (each query once
before timing), and checks that the candidate lists are identical. Queries are JSON lines with
`given`, `family` and `birth_date`. The database gains an empty `search_log` if it lacks one;
with `--changes N` it is written to (N children renamed), so use a copy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from sqlalchemy import select

from directory.db import make_engine
from search.embedded import EmbeddedBackend, search_record
from search.matching import CANDIDATE_LIMIT, query_keys
from search.port import PersonFields, SearchQuery


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS; RssAnon: private, without mapped file pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    """Measure and print one line per figure."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--changes", type=int, default=0, help="then change this many children (writes!)")
    args = parser.parse_args()
    # Key files from CHILDINDEX_AUDIT_KEY_FILE / _SECRETS_KEY_FILE (bench/run.sh sets them).
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)

    queries = []
    for line in Path(args.queries).read_text().splitlines()[: args.n]:
        q = json.loads(line)
        queries.append(
            query_keys(
                SearchQuery(
                    given=q["given"], family=q["family"], birth_date=date.fromisoformat(q["birth_date"])
                )
            )
        )

    engine = make_engine(f"sqlite:///{args.db}")
    sql = EmbeddedBackend(engine)
    sql.ensure_ready()
    before = rss_mib("RssAnon")
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib("RssAnon"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    resident_backend = EmbeddedBackend(engine)
    started = time.perf_counter()
    resident = resident_backend.start_resident()
    assert resident.wait_ready(1800)
    loaded = time.perf_counter() - started
    done.set()
    sampler.join()
    stats = resident.stats()
    print(f"load: {loaded:.1f} s; {stats['children']:,} children, {stats['postings']:,} postings")
    print(f"arrays and blob: {stats['base_bytes'] / 2**20:.0f} MiB")
    print(f"RssAnon before {before:.0f} MiB, peak during load {peak[0]:.0f} MiB")
    anon, mapped = rss_mib("RssAnon"), rss_mib("RssFile")
    print(f"after load: RssAnon {anon:.0f} MiB, RssFile {mapped:.0f} MiB (mapped files: libraries)")

    # Warm both paths over the same queries, then time them alternately.
    same = 0
    for keys in queries:
        a = sql.candidates(keys, CANDIDATE_LIMIT)
        b = resident_backend.candidates(keys, CANDIDATE_LIMIT)
        same += a == b
    print(f"identical candidate lists: {same} of {len(queries)}")
    snap = resident._snap
    assert snap is not None
    timings: dict[str, list[float]] = {"sql": [], "resident": [], "rank": [], "poll": []}
    for keys in queries:
        t0 = time.perf_counter()
        sql.candidates(keys, CANDIDATE_LIMIT)
        t1 = time.perf_counter()
        resident_backend.candidates(keys, CANDIDATE_LIMIT)
        t2 = time.perf_counter()
        snap.rank(keys, CANDIDATE_LIMIT)
        t3 = time.perf_counter()
        resident._fresh()
        t4 = time.perf_counter()
        timings["sql"].append(t1 - t0)
        timings["resident"].append(t2 - t1)
        timings["rank"].append(t3 - t2)
        timings["poll"].append(t4 - t3)
    for name, values in timings.items():
        values.sort()
        mean, p50, p95 = statistics.mean(values), values[len(values) // 2], values[int(len(values) * 0.95)]
        print(f"{name:>9}: mean {mean * 1e3:.3f} ms, p50 {p50 * 1e3:.3f} ms, p95 {p95 * 1e3:.3f} ms")
    if args.changes:
        # Another backend (as the indexer in another process) changes children; the next search
        # applies them from the log.
        with engine.connect() as conn:
            stored = conn.execute(
                select(search_record.c.fields).order_by(search_record.c.child_id).limit(args.changes)
            ).scalars()
            changed = [
                replace(PersonFields.from_dict(json.loads(f)), given_names=("Resident",)) for f in stored
            ]
        t0 = time.perf_counter()
        sql.upsert(changed)
        t1 = time.perf_counter()
        resident_backend.candidates(queries[0], CANDIDATE_LIMIT)
        t2 = time.perf_counter()
        same = sum(
            sql.candidates(keys, CANDIDATE_LIMIT) == resident_backend.candidates(keys, CANDIDATE_LIMIT)
            for keys in queries
        )
        print(
            f"{args.changes} children changed through another backend in {t1 - t0:.2f} s; the next search "
            f"applied them in {(t2 - t1) * 1e3:.1f} ms; identical candidate lists after: "
            f"{same} of {len(queries)}"
        )
    print(f"at the end: RSS {rss_mib():.0f} MiB, RssAnon {rss_mib('RssAnon'):.0f} MiB")
    resident_backend.stop_resident()


if __name__ == "__main__":
    main()
