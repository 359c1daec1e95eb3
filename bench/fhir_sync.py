"""How long a health system's catalogue poll takes: `Practitioner/_history?_since=` on a big catalogue.

    .venv/bin/python bench/fhir_sync.py [--practitioners 100000] [--db URL]

Loads N practitioners (10 organisations; their last changes spread over 30 days, 100 in the last
hour) into a fresh database (SQLite in a temporary directory unless --db names an empty one), then
times, in process and without HTTP or tokens (the Bundle is built by the same code the route uses):
a poll of the last hour (one page of 100), a whole re-sync through history in pages of 100, and a
`_lastUpdated` search count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Session  # noqa: E402

from childindex.migrations import upgrade  # noqa: E402
from directory.db import make_engine  # noqa: E402
from directory.models import Actor, Organisation, Practitioner, Role, utcnow  # noqa: E402
from interop import repository as repo  # noqa: E402
from interop.api.context import Ctx  # noqa: E402
from interop.api.sync_history import catalogue_history  # noqa: E402


def load(engine: sa.Engine, n: int) -> None:
    now = utcnow()
    orgs = [{"id": uuid.uuid4(), "name": f"Org {i}", "kind": "school"} for i in range(10)]
    rows = [
        {
            "id": uuid.uuid4(),
            "name": f"Worker {i}",
            "role": "SENCO",
            "organisation_id": orgs[i % 10]["id"],
            "active": True,
            "version": 1,
            "updated_at": now - (timedelta(minutes=i % 60) if i < 100 else timedelta(seconds=3600 + i * 25)),
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(Organisation.__table__), orgs)  # type: ignore[attr-defined]
        for start in range(0, n, 20_000):
            conn.execute(sa.insert(Practitioner.__table__), rows[start : start + 20_000])  # type: ignore[attr-defined]


def ctx(session: Session) -> Ctx:
    request: Any = SimpleNamespace(base_url="http://bench/", headers={}, state=SimpleNamespace())
    return Ctx(request=request, session=session, actor=Actor(subject="bench", role=Role.SYSTEM))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--practitioners", type=int, default=100_000)
    ap.add_argument("--db")
    args = ap.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/sync.db"
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    load(engine, args.practitioners)
    print(
        f"loaded {args.practitioners} practitioners in {time.perf_counter() - t:.1f} s "
        f"({engine.dialect.name})"
    )
    since = (utcnow() - timedelta(hours=1)).isoformat()
    with Session(engine) as s:
        c = ctx(s)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            b = catalogue_history(
                c, ("Practitioner",), [("_since", since), ("_count", "100")], "Practitioner/_history"
            )
            times.append(time.perf_counter() - t)
        assert len(b["entry"]) == 100
        print(f"poll of the last hour (100 entries): median {sorted(times)[10] * 1000:.1f} ms")
        t = time.perf_counter()
        items = [("_count", "100")]
        seen = 0
        while True:
            b = catalogue_history(c, ("Practitioner",), items, "Practitioner/_history")
            seen += len(b.get("entry", []))
            nxt = [x["url"] for x in b["link"] if x["relation"] == "next"]
            if not nxt:
                break
            items = [("_count", "100"), ("_cursor", nxt[0].split("_cursor=")[1])]
        took = time.perf_counter() - t
        print(f"full re-sync through history: {seen} entries in {took:.1f} s ({seen / took:.0f}/s)")
        t = time.perf_counter()
        total, _ = repo.practitioners(s, last_updated=[[f"ge{since}"]], limit=0)
        print(f"_lastUpdated=ge<an hour ago> count: {total} in {(time.perf_counter() - t) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
