"""Importing children from CSV and FHIR NDJSON: row checks, all-or-nothing, idempotence."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from childindex.demo.seed import seed
from childindex.importing import import_files
from directory.identifiers import nhs_check_digit, upn_check_letter
from interop.systems import EXT_PARENTAL_RESPONSIBILITY as PR_EXTENSION
from interop.systems import NHS_NUMBER as NHS_SYSTEM_URI
from interop.systems import UPN as UPN_SYSTEM_URI
from tests.directory.seed_fixtures import (  # noqa: F401  (fixtures)
    ACTOR,
    db,
    postgres_schema,
    scalar,
)

TODAY = date(2026, 11, 23)
HEADER = (
    "nhs_number,upn,local_id,given,middle,family,known_as,previous_family,date_of_birth,"
    "expected_delivery_date,sex,address_line1,town,postcode,parent_name,parent_relationship,"
    "parent_phone,parent_email,parental_responsibility"
)


def nhs(n: int) -> str:
    """A valid NHS number near 943 476 000 + n."""
    body = 943_476_000 + n
    while nhs_check_digit(str(body)) is None:
        body += 1
    return f"{body}{nhs_check_digit(str(body))}"


def upn(n: int) -> str:
    """A valid UPN with serial n."""
    body = f"99020012{n:04d}"
    return upn_check_letter(body) + body


GOOD_1 = f"{nhs(1)},{upn(1)},mosaic:MOS0000001,Amelia,Rose,Ward,Millie,Hughes,2015-03-02,,F,"
GOOD_1 += "12 Mill Lane,Demchester,ds1 2ab,Sarah Ward,mother,07700 900123,s.ward@mail.example,yes"
BAD_NHS = "9434765918,,,Oliver,,Smith,,,2014-01-01,,M,1 Church Street,Wyvernford,DS7 1AB,,,,,"
GOOD_2 = f"{nhs(2)},,,Seán,,O'Brien,,,14/07/2019,,male,3 Swan Lane,Fenwick,DS19 4QT,,,,,"
BAD_POSTCODE = f"{nhs(3)},,,Ava,,Patel,,,2012-05-05,,female,9 Beech Grove,Redbury,NOT A PC,,,,,"
NO_IDENTIFIER = ",,,Leo,,Brown,,,2016-02-02,,m,,,,,,,,"
UNBORN = ",,local:mosaic:MOS0000009,Baby,,Ward,,,,2027-02-01,u,12 Mill Lane,Demchester,DS1 2AB,,,,,"
TOO_OLD = f"{nhs(4)},,,Jack,,Green,,,2001-01-01,,m,,,,,,,,"


def write_csv(tmp_path: Path, *rows: str, name: str = "children.csv") -> Path:
    """A CSV file in the documented layout."""
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def run(engine: Engine, paths: list[Path], fmt: str = "csv", **kw: object):  # type: ignore[no-untyped-def]
    return import_files(engine, paths, fmt=fmt, actor=ACTOR, today=TODAY, batch=2, **kw)  # type: ignore[arg-type]


def test_csv_good_rows_go_in_and_bad_rows_are_reported_by_line(
    db: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path, GOOD_1, BAD_NHS, GOOD_2, BAD_POSTCODE, NO_IDENTIFIER, UNBORN, TOO_OLD)
    result = run(db, [path])
    assert result.applied and result.created == 3 and result.related_people == 1
    assert [(r.line, r.field) for r in result.rejected] == [
        (3, "nhs_number"),
        (5, "postcode"),
        (6, "identifier"),
        (8, "date_of_birth"),
    ]
    text = " ".join(r.reason for r in result.rejected)
    for secret in ("9434765918", "Oliver", "Patel", "NOT A PC", "2001-01-01", "Green"):
        assert secret not in text
    assert scalar(db, "SELECT count(*) FROM child") == 3
    assert scalar(db, "SELECT count(*) FROM child_name WHERE use = 'usual'") == 1
    assert scalar(db, "SELECT count(*) FROM child_name WHERE use = 'previous'") == 1
    assert scalar(db, "SELECT count(*) FROM child_identifier WHERE system = 'local:mosaic'") == 2
    assert scalar(db, "SELECT count(*) FROM child_address WHERE postcode = 'DS1 2AB'") == 2
    assert scalar(db, "SELECT count(*) FROM child WHERE expected_delivery_date IS NOT NULL") == 1
    assert scalar(db, "SELECT count(*) FROM outbox WHERE topic = 'child'") == 3
    with db.connect() as conn:
        action, outcome, detail = conn.execute(
            sa.text("SELECT action, outcome, detail FROM audit_event")
        ).one()
    assert (action, outcome) == ("import", "partial")
    assert '"created":3' in detail and '"rejected":4' in detail and "children.csv" not in detail


def test_all_or_nothing_applies_nothing_when_a_row_is_bad(
    db: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    result = run(db, [write_csv(tmp_path, GOOD_1, BAD_NHS, GOOD_2)], all_or_nothing=True)
    assert not result.applied and result.created == 0 and len(result.rejected) == 1
    assert scalar(db, "SELECT count(*) FROM child") == 0
    good = run(db, [write_csv(tmp_path, GOOD_1, GOOD_2)], all_or_nothing=True)
    assert good.applied and good.created == 2
    assert scalar(db, "SELECT count(*) FROM child") == 2


def test_reimporting_the_same_file_changes_nothing(db: Engine, tmp_path: Path) -> None:  # noqa: F811
    path = write_csv(tmp_path, GOOD_1, GOOD_2, UNBORN)
    first = run(db, [path])
    counts = {
        t: scalar(db, f"SELECT count(*) FROM {t}")
        for t in ("child", "child_name", "child_identifier", "child_address", "related_person")
    }
    second = run(db, [path])
    assert (first.created, second.created, second.unchanged) == (3, 0, 3)
    assert not second.rejected
    assert counts == {t: scalar(db, f"SELECT count(*) FROM {t}") for t in counts}


def test_a_repeated_or_conflicting_identifier_is_rejected(db: Engine, tmp_path: Path) -> None:  # noqa: F811
    run(db, [write_csv(tmp_path, GOOD_1, GOOD_2)])
    both = f"{nhs(1)},,,Amelia,,Ward,,,2015-03-02,,F,,,,,,,,"  # NHS of one child...
    both = both.replace(",,,Amelia", f",{upn(1)},mosaic:MOS0000001,Amelia")
    clash = f"{nhs(2)},{upn(1)},,Seán,,O'Brien,,,2019-07-14,,m,,,,,,,,"  # ...and UPN of another
    twice_a = f"{nhs(7)},,,Ivy,,Hall,,,2020-01-01,,f,,,,,,,,"
    result = run(db, [write_csv(tmp_path, both, clash, twice_a, twice_a, name="again.csv")])
    assert result.unchanged == 1 and result.created == 1
    assert [(r.line, r.field) for r in result.rejected] == [(3, "identifier"), (5, "identifier")]
    assert "line 4" in result.rejected[1].reason


def test_an_unknown_csv_column_is_refused(db: Engine, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "odd.csv"
    path.write_text("nhs_number,given,family,ethnicity\n", encoding="utf-8")
    result = run(db, [path])
    assert [(r.line, r.field) for r in result.rejected] == [(1, "ethnicity")]


def _patient(pid: str, **extra: object) -> dict[str, object]:
    resource: dict[str, object] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_SYSTEM_URI, "value": nhs(int(pid[1:]))}],
        "name": [{"use": "official", "family": "Kowalska", "given": ["Zofia", "Anna"]}],
        "gender": "female",
        "birthDate": "2013-09-30",
        "address": [
            {
                "line": ["4 Heron Court"],
                "city": "Saltmouth",
                "postalCode": "DS16 3HT",
                "period": {"start": "2021-04-01"},
            },
            {
                "use": "old",
                "line": ["7 Ropewalk"],
                "city": "Gullhaven",
                "postalCode": "DS17 1AB",
                "period": {"start": "2014-01-01", "end": "2021-03-31"},
            },
        ],
    }
    resource.update(extra)
    return resource


def write_ndjson(path: Path, *resources: object) -> Path:
    """One JSON resource a line, as a Bulk Data export writes them."""
    path.write_text("\n".join(json.dumps(r) for r in resources) + "\n", encoding="utf-8")
    return path


def test_fhir_patients_and_related_people_from_a_bulk_export(
    db: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    seed(db, children=0, seed=1, actor=ACTOR)  # the localities, so postcodes find theirs
    p1 = _patient(
        "p1",
        name=[
            {"use": "official", "family": "Kowalska", "given": ["Zofia", "Anna"]},
            {"use": "nickname", "family": "Kowalska", "given": ["Zosia"]},
            {"use": "old", "family": "Nowak", "given": ["Zofia"], "period": {"end": "2019-06-01"}},
        ],
        identifier=[
            {"system": NHS_SYSTEM_URI, "value": nhs(1)},
            {"system": UPN_SYSTEM_URI, "value": upn(5)},
            {"system": "https://mosaic.demoshire.example/Id/mosaic", "value": "MOS77"},
        ],
    )
    partial_date = _patient("p2", birthDate="2013")
    p3 = _patient("p3", gender="male", name=[{"family": "Osei", "given": ["Kwame"]}])
    patients = write_ndjson(
        tmp_path / "Patient.ndjson",
        p1,
        partial_date,
        p3,
        {"resourceType": "Observation", "id": "o1"},
    )
    mother = {
        "resourceType": "RelatedPerson",
        "id": "r1",
        "patient": {"reference": "Patient/p1"},
        "relationship": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}
        ],
        "name": [{"family": "Kowalska", "given": ["Ewa"]}],
        "telecom": [
            {"system": "phone", "value": "07700 900456"},
            {"system": "email", "value": "ewa@mail.example"},
        ],
    }
    uncle = {
        **mother,
        "id": "r2",
        "relationship": [{"coding": [{"code": "UNCLE"}]}],
        "extension": [{"url": PR_EXTENSION, "valueBoolean": False}],
        "patient": {"reference": "Patient/p3"},
        "telecom": [],
    }
    orphan = {**mother, "id": "r3", "patient": {"reference": "Patient/p9"}}
    of_rejected = {**mother, "id": "r4", "patient": {"reference": "Patient/p2"}}
    people = write_ndjson(tmp_path / "RelatedPerson.ndjson", mother, uncle, orphan, of_rejected)

    result = run(db, [patients, people], fmt="fhir")
    assert result.created == 2 and result.related_people == 2
    assert [(r.source, r.line, r.field) for r in result.rejected] == [
        ("Patient.ndjson", 2, "birthDate"),
        ("Patient.ndjson", 4, "resourceType"),
        ("RelatedPerson.ndjson", 3, "patient.reference"),
        ("RelatedPerson.ndjson", 4, "patient.reference"),
    ]
    assert "line 2 of Patient.ndjson" in result.rejected[3].reason
    with db.connect() as conn:
        names = sorted(conn.execute(sa.text("SELECT use, given, middle, family FROM child_name")))
        idents = sorted(r[0] for r in conn.execute(sa.text("SELECT system FROM child_identifier")))
        pr = sorted(conn.execute(sa.text("SELECT relationship, parental_responsibility FROM related_person")))
    assert ("alias", "Zosia", None, "Kowalska") in names
    assert ("previous", "Zofia", None, "Nowak") in names
    assert ("official", "Zofia", "Anna", "Kowalska") in names
    # Another system's URI is kept exactly as sent (issue #22), no longer rewritten to local:mosaic.
    assert idents == ["https://mosaic.demoshire.example/Id/mosaic", "nhs", "nhs", "upn"]
    assert [(r, bool(p)) for r, p in pr] == [("mother", True), ("uncle", False)]
    assert scalar(db, "SELECT count(*) FROM child_address WHERE until IS NOT NULL") == 2
    assert scalar(db, "SELECT count(*) FROM child WHERE locality_id IS NULL") == 0

    again = run(db, [patients, people], fmt="fhir")
    assert (again.created, again.unchanged, again.related_people) == (0, 2, 0)
    assert scalar(db, "SELECT count(*) FROM related_person") == 2
