"""Generate a large CSV (or FHIR NDJSON) file of children and time importing it, twice.

    uv run python bench/import_rate.py [--rows 1000000] [--format csv|fhir]

The first import creates every child; the second finds them all already present and
changes nothing (the idempotent path: identifier lookups only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from datetime import date, timedelta
from pathlib import Path

from childindex.demo.seed import seed
from childindex.demo.vocabulary import HERITAGES, INWARD_LETTERS, STREETS
from childindex.importing import import_files
from directory.db import make_engine
from directory.identifiers import nhs_check_digit, upn_check_letter
from directory.importer import CSV_COLUMNS
from directory.models import Actor, Role
from interop.systems import NHS_NUMBER as NHS_SYSTEM_URI
from interop.systems import UPN as UPN_SYSTEM_URI

ACTOR = Actor(subject="bench:import", role=Role.DIRECTORY_ADMIN)


def people(rows: int, seed_: int) -> list[dict[str, str]]:
    """Synthetic children with valid, unique NHS numbers and UPNs."""
    rng = random.Random(seed_)
    today = date.today()
    out: list[dict[str, str]] = []
    body = 950_000_000
    for i in range(rows):
        while nhs_check_digit(str(body)) is None:
            body += 1
        nhs = f"{body}{nhs_check_digit(str(body))}"
        body += 1
        heritage = rng.choice(list(HERITAGES))
        female = rng.random() < 0.5
        born = today - timedelta(days=rng.randrange(19 * 365))
        upn_body = f"991{2000 + i // 100_000:04d}{(i // 1000) % 100:02d}{i % 1000:03d}"
        district = rng.randint(1, 24)
        out.append(
            {
                "nhs_number": nhs,
                "upn": upn_check_letter(upn_body) + upn_body if born < today - timedelta(days=1600) else "",
                "given": rng.choice(HERITAGES[heritage][1] if female else HERITAGES[heritage][2]),
                "family": rng.choice(HERITAGES[heritage][3]),
                "date_of_birth": born.isoformat(),
                "sex": "female" if female else "male",
                "address_line1": f"{rng.randint(1, 150)} {rng.choice(STREETS)}",
                "town": "Demchester",
                "postcode": f"DS{district} {rng.randint(1, 9)}{rng.choice(INWARD_LETTERS)}"
                f"{rng.choice(INWARD_LETTERS)}",
                "parent_name": f"{rng.choice(HERITAGES[heritage][1])} Parent",
                "parent_relationship": "mother",
                "parent_phone": f"07700 900{rng.randrange(1000):03d}",
                "parental_responsibility": "yes",
            }
        )
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """The documented CSV layout."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_ndjson(folder: Path, rows: list[dict[str, str]]) -> list[Path]:
    """Patient.ndjson and RelatedPerson.ndjson, as a Bulk Data export writes them."""
    patients, related = folder / "Patient.ndjson", folder / "RelatedPerson.ndjson"
    with patients.open("w", encoding="utf-8") as p, related.open("w", encoding="utf-8") as r:
        for i, row in enumerate(rows):
            ids = [{"system": NHS_SYSTEM_URI, "value": row["nhs_number"]}]
            if row["upn"]:
                ids.append({"system": UPN_SYSTEM_URI, "value": row["upn"]})
            p.write(
                json.dumps(
                    {
                        "resourceType": "Patient",
                        "id": f"p{i}",
                        "identifier": ids,
                        "name": [{"use": "official", "family": row["family"], "given": [row["given"]]}],
                        "gender": row["sex"],
                        "birthDate": row["date_of_birth"],
                        "address": [
                            {
                                "line": [row["address_line1"]],
                                "city": row["town"],
                                "postalCode": row["postcode"],
                            }
                        ],
                    }
                )
                + "\n"
            )
            r.write(
                json.dumps(
                    {
                        "resourceType": "RelatedPerson",
                        "id": f"r{i}",
                        "patient": {"reference": f"Patient/p{i}"},
                        "relationship": [{"coding": [{"code": "MTH"}]}],
                        "name": [{"text": row["parent_name"]}],
                        "telecom": [{"system": "phone", "value": row["parent_phone"]}],
                    }
                )
                + "\n"
            )
    return [patients, related]


def main() -> None:
    """Generate the file, import it into a fresh SQLite database, then import it again."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "fhir"), default="csv")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/childindex-import-bench"))
    args = parser.parse_args()
    # Key files from CHILDINDEX_AUDIT_KEY_FILE / _SECRETS_KEY_FILE (bench/run.sh sets them).
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    args.dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = people(args.rows, 5)
    if args.format == "csv":
        files = [args.dir / "children.csv"]
        write_csv(files[0], rows)
    else:
        files = write_ndjson(args.dir, rows)
    del rows
    print(
        f"generated {args.rows:,} children as {args.format} in "
        f"{time.perf_counter() - started:.1f} s ({os.cpu_count()} cores)"
    )
    db = args.dir / "import.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db}")
    seed(engine, children=0, seed=1, actor=ACTOR)  # the localities of the DS postcodes
    for label in ("first import", "re-import (all present)"):
        started = time.perf_counter()
        result = import_files(engine, files, fmt=args.format, actor=ACTOR)
        elapsed = time.perf_counter() - started
        print(
            f"{label}: {result.read:,} rows in {elapsed:.1f} s = {result.read / elapsed:,.0f} "
            f"rows/s; created {result.created:,}, unchanged {result.unchanged:,}, "
            f"rejected {len(result.rejected):,}"
        )


if __name__ == "__main__":
    main()
