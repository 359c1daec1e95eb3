"""Time the one query every request makes about its caller (`auth.grants.caller_facts`).

    uv run python bench/caller_facts.py [--database-url sqlite:///var/caller-bench.db] [--users 20000]

Seeds a directory's worth of sign-ins (users with local accounts, grants, practitioner records and
refresh-token families; system clients with client grants), then asks `caller_facts` for random
callers, as `auth.deps._grant_of` does, on the same kind of connection (`driver_reader`). Prints
the latency per call for users and for clients.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import statistics
import time
import uuid
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from auth.grants import caller_facts
from auth.models import AccessGrant, LocalUser, OAuthClient, RefreshToken, SubjectKind
from childindex.migrations import upgrade
from directory.db import driver_reader, make_engine
from directory.models import Organisation, Practitioner, utcnow


def _table(model: type[SQLModel]) -> sa.Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def _insert(conn: sa.Connection, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 2000):
        conn.execute(sa.insert(_table(model)), rows[start : start + 2000])


def seed(engine: sa.Engine, users: int, clients: int) -> None:
    """Users (account, grant, practitioner, three refresh families each) and clients with grants."""
    now = utcnow()
    with engine.begin() as conn:
        grants = _table(AccessGrant)
        if conn.execute(sa.select(sa.func.count()).where(grants.c.subject == "user0")).scalar_one():
            return  # seeded by an earlier run
        org = uuid.uuid4()
        _insert(conn, Organisation, [{"id": org, "name": "Bench Org", "kind": "school"}])
        grant = {
            "authority": "Benchshire",
            "organisation": "Bench Org",
            "localities": json.dumps([]),
            "training_completed_on": date.today(),
            "vetting_checked_on": date.today(),
            "valid_from": now - timedelta(days=1),
            "valid_until": now + timedelta(days=300),
            "status": "active",
            "granted_by": "bench",
            "reason": "bench",
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        _insert(
            conn,
            AccessGrant,
            [
                {
                    **grant,
                    "id": uuid.uuid4(),
                    "subject": f"user{i}",
                    "subject_kind": "user",
                    "role": "practitioner",
                    "scopes": "directory.search directory.write",
                }
                for i in range(users)
            ]
            + [
                {
                    **grant,
                    "id": uuid.uuid4(),
                    "subject": f"client{i}",
                    "subject_kind": "client",
                    "role": "system",
                    "scopes": "system/Patient.rs directory.search",
                }
                for i in range(clients)
            ],
        )
        _insert(
            conn,
            LocalUser,
            [
                {
                    "id": uuid.uuid4(),
                    "username": f"user{i}",
                    "password_hash": "x",
                    "totp_secret": "x",
                    "totp_last_step": 0,
                    "display_name": f"User {i}",
                    "active": i % 50 != 0,
                    "failed_logins": 0,
                    "created_at": now,
                }
                for i in range(users)
            ],
        )
        _insert(
            conn,
            Practitioner,
            [
                {
                    "id": uuid.uuid4(),
                    "name": f"User {i}",
                    "role": "SENCO",
                    "organisation_id": org,
                    "subject": f"user{i}",
                    "active": True,
                    "version": 1,
                }
                for i in range(users)
            ],
        )
        _insert(
            conn,
            OAuthClient,
            [
                {
                    "client_id": f"client{i}",
                    "name": f"Client {i}",
                    "auth_method": "client_secret_basic",
                    "allowed_scopes": "system/Patient.rs directory.search",
                    "grant_types": "client_credentials",
                    "redirect_uris": "",
                    "active": True,
                    "created_at": now,
                }
                for i in range(clients)
            ],
        )
        _insert(
            conn,
            RefreshToken,
            [
                {
                    "id": uuid.uuid4(),
                    "token_hash": uuid.uuid4().hex + uuid.uuid4().hex,
                    "family_id": uuid.uuid4(),
                    "client_id": "childindex-web",
                    "subject": f"user{i % users}",
                    "subject_kind": "user",
                    "scope": "directory.search",
                    "amr": "pwd otp",
                    "issued_at": now,
                    "expires_at": now + timedelta(hours=12),
                }
                for i in range(users * 3)
            ],
        )


def run(engine: sa.Engine, calls: list[dict[str, Any]]) -> list[float]:
    """Each call's latency in microseconds."""
    accepted = set(inspect.signature(caller_facts).parameters)
    samples = []
    for call in calls:
        params = {k: v for k, v in call.items() if k in accepted}
        t0 = time.perf_counter()
        with driver_reader(engine) as conn:
            facts = caller_facts(conn, now=utcnow(), **params)
        samples.append((time.perf_counter() - t0) * 1e6)
        assert facts is not None
    return samples


def report(label: str, samples: list[float]) -> None:
    """Median, p95 and mean."""
    q = statistics.quantiles(samples, n=100, method="inclusive")
    mean = statistics.fmean(samples)
    print(f"{label}: {len(samples)} calls, p50 {q[49]:.1f} us, p95 {q[94]:.1f} us, mean {mean:.1f} us")


def main() -> None:
    """Seed, warm up, then time user and client callers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="sqlite:///var/caller-bench.db")
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    upgrade(engine)
    seed(engine, args.users, args.clients)
    rng = random.Random(7)
    users = [
        {
            "subject": f"user{rng.randrange(1, args.users) | 1}",  # odd: never one of the disabled
            "kind": SubjectKind.USER,
            "jti": uuid.uuid4().hex,
            "client_id": "childindex-web",
            "sid": uuid.uuid4(),
        }
        for _ in range(args.calls)
    ]
    clients = [
        {
            "subject": f"client{n}",
            "kind": SubjectKind.CLIENT,
            "jti": uuid.uuid4().hex,
            "client_id": f"client{n}",
            "sid": None,
        }
        for n in (rng.randrange(args.clients) for _ in range(args.calls // 4))
    ]
    run(engine, users[:2000])  # warm up: statements compiled, pages cached
    for _ in range(args.rounds):
        report("user caller", run(engine, users))
        report("client caller", run(engine, clients))


if __name__ == "__main__":
    main()
