"""Latency of a child's whole picture over FHIR: Patient?identifier=...&_revinclude=... (p50/p95/p99).

    uv run python bench/fhir_revinclude.py [--children 3000] [--requests 500] [--db URL]

Seeds N children through the domain service (1-3 involvements each, a CAF for one in ten)
unless the database already holds children, then times in-process requests (the full app:
token validation, grant lookup, policy, card building, R4B validation, audit append) with
random NHS numbers that exist. Use `childindex seed --children N` (branch `seed`) for a big
database and pass its URL with --db.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auth.models import SubjectKind  # noqa: E402
from childindex.app import create_app  # noqa: E402
from childindex.migrations import upgrade  # noqa: E402
from childindex.settings import Settings  # noqa: E402
from directory import service  # noqa: E402
from directory.db import make_engine, unit_of_work  # noqa: E402
from directory.identifiers import nhs_check_digit  # noqa: E402
from directory.models import (  # noqa: E402
    Actor,
    CafSignal,
    ChildCreate,
    InvolvementCreate,
    Organisation,
    Practitioner,
    Role,
    Service,
    utcnow,
)

GIVEN = [
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Noah",
    "Oliver",
    "George",
    "Leo",
    "Arthur",
    "Muhammad",
    "Freya",
    "Lily",
    "Harry",
    "Jack",
    "Aisha",
    "Zara",
    "Theo",
    "Oscar",
    "Ivy",
]
FAMILY = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Khan",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
]
SCOPES = ("system/Patient.rs", "system/EpisodeOfCare.rs", "system/Flag.rs", "system/CareTeam.rs")


def nhs_numbers(start: int) -> Iterator[str]:
    """Valid NHS numbers, counting up from a nine-digit body."""
    body = start
    while True:
        check = nhs_check_digit(f"{body:09d}")
        if check is not None:
            yield f"{body:09d}{check}"
        body += 1


def seed(engine: sa.Engine, children: int, rng: random.Random) -> None:
    """Build `children` children with involvements and some CAFs through the domain service."""
    admin = Actor(subject="bench", role=Role.DIRECTORY_ADMIN, organisation="bench", request_id="bench")
    with unit_of_work(engine) as s:
        orgs = [Organisation(name=f"Org {i}", kind="nhs_trust" if i % 2 else "school") for i in range(10)]
        s.add_all(orgs)
        s.flush()
        services = [
            Service(
                name=f"Service {i}",
                service_type=f"type_{i}",
                organisation_id=orgs[i % 10].id,
                level_of_need=1 + i % 3,
                tier="core",
            )
            for i in range(12)
        ]
        people = [
            Practitioner(
                name=f"Practitioner {i}",
                role="health visitor",
                organisation_id=orgs[i % 10].id,
                phone="07700 900000",
            )
            for i in range(40)
        ]
        s.add_all(services + people)
        s.flush()
        service_ids = [x.id for x in services]
        practitioner_ids = [x.id for x in people]
        # an involvement names one of its service's organisation's practitioners
        staff = {
            svc.id: [p.id for p in people if p.organisation_id == svc.organisation_id] for svc in services
        }
    numbers = nhs_numbers(400_000_001)
    today = date.today()
    done = 0
    started = time.perf_counter()
    while done < children:
        with unit_of_work(engine) as s:
            for _ in range(min(250, children - done)):
                data = ChildCreate.model_validate(
                    {
                        "names": [{"given": rng.choice(GIVEN), "family": rng.choice(FAMILY)}],
                        "date_of_birth": (today - timedelta(days=rng.randint(30, 18 * 365))).isoformat(),
                        "sex": rng.choice(["female", "male"]),
                        "identifiers": [{"system": "nhs", "value": next(numbers)}],
                        "address": {"line1": f"{rng.randint(1, 200)} High Street", "postcode": "OX4 1AB"},
                    }
                )
                child = service.create_child(s, actor=admin, data=data, today=today)
                for svc in rng.sample(service_ids, rng.randint(1, 3)):
                    service.record_involvement(
                        s,
                        actor=admin,
                        child_id=child.id,
                        data=InvolvementCreate(
                            service_id=svc,
                            practitioner_id=rng.choice(staff[svc]),
                            role="practitioner",
                            level_of_need=rng.randint(1, 3),
                            start_date=today - timedelta(days=rng.randint(1, 900)),
                        ),
                    )
                if rng.random() < 0.1:
                    holder = rng.choice(practitioner_ids)  # signals as themselves
                    service.signal_caf(
                        s,
                        actor=admin.model_copy(update={"role": Role.PRACTITIONER, "practitioner_id": holder}),
                        child_id=child.id,
                        data=CafSignal(no_risk_of_significant_harm=True),
                        signal_days=14,
                        now=utcnow(),
                    )
                done += 1
        print(f"  seeded {done}/{children} ({time.perf_counter() - started:.0f}s)", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Seed if needed, run the requests, print the percentiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--children", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    # Key files from CHILDINDEX_AUDIT_KEY_FILE / _SECRETS_KEY_FILE (bench/run.sh sets them).
    from childindex.keys import install_when_needed

    install_when_needed(Settings)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.db"
        engine = make_engine(url)
        upgrade(engine)
        with engine.connect() as conn:
            have = int(conn.execute(sa.text("SELECT count(*) FROM child")).scalar_one())
        if have == 0:
            seed(engine, args.children, rng)
        with engine.connect() as conn:
            have = int(conn.execute(sa.text("SELECT count(*) FROM child")).scalar_one())
            nhs = list(
                conn.execute(
                    sa.text(
                        "SELECT value FROM child_identifier WHERE system = 'nhs' ORDER BY value LIMIT 200000"
                    )
                ).scalars()
            )
        settings = Settings(
            environment="production",
            database_url=url,
            issuer="http://bench",
            secret_key="bench",
            search_rate_per_minute=10**9,
            trawl_distinct_children=10**9,
        )
        app = create_app(settings, engine=engine)
        from tests.fixtures.auth_builders import make_grant, token_for

        with unit_of_work(engine) as s:
            make_grant(s, "bench-trust", kind=SubjectKind.CLIENT, role=Role.SYSTEM, scopes=SCOPES)
        with TestClient(app) as client:
            token = token_for(
                app.state.auth,
                "bench-trust",
                kind=SubjectKind.CLIENT,
                scopes=SCOPES,
                role=Role.SYSTEM,
                client_id="bench-trust",
            )
            headers = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "direct-care"}

            def one() -> float:
                number = rng.choice(nhs)
                t = time.perf_counter()
                r = client.get(
                    "/fhir/Patient",
                    params=[
                        ("identifier", f"https://fhir.nhs.uk/Id/nhs-number|{number}"),
                        ("_revinclude", "EpisodeOfCare:patient"),
                        ("_revinclude", "Flag:patient"),
                        ("_revinclude", "CareTeam:patient"),
                    ],
                    headers=headers,
                )
                elapsed = (time.perf_counter() - t) * 1000
                assert r.status_code == 200 and r.json()["total"] == 1, r.text
                return elapsed

            for _ in range(20):
                one()
            times = sorted(one() for _ in range(args.requests))
        q = statistics.quantiles(times, n=100)
        print(f"database: {engine.dialect.name}, children: {have}, requests: {len(times)}")
        print(
            "Patient?identifier=...&_revinclude=EpisodeOfCare:patient&_revinclude=Flag:patient"
            "&_revinclude=CareTeam:patient"
        )
        print(
            f"p50 {q[49]:.1f} ms  p95 {q[94]:.1f} ms  p99 {q[98]:.1f} ms  "
            f"mean {statistics.fmean(times):.1f} ms"
        )
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
