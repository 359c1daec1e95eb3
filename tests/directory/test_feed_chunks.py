"""Feeds in chunks: a bad row in the middle of a chunk loses nothing else, a second run changes nothing,
fifty rows for one child end in one consistent record; and a row whose identifier a sealed, archived
or purged record holds."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from childindex.importing import import_files
from directory import service
from directory.errors import InvalidInput
from directory.models import Actor, AdoptionCreate, ArchiveReason, Child, NameIn, Role, ShieldSet
from directory.service import lifecycle
from tests.conftest import count
from tests.directory.test_importer import nhs
from tests.directory.test_reconcile import ADMIN, SHIELDER, feed, outcomes, row, run, scalar, versions

ADOPTION = Actor(subject="ao", role=Role.ADOPTION_OFFICER)
EVERY_OTHER_ROLE = [r for r in Role if r is not Role.ADOPTION_OFFICER]


def who(role: Role, subject: str = "m1") -> dict[str, str]:
    return {"X-Dev-Actor": f"subject={subject}; role={role.value}", "X-Purpose-Of-Use": "administration"}


def child_id(engine: Engine, n: int) -> uuid.UUID:
    """The record holding row n's NHS number (rows here use n = 10, 20, ...: nhs(n) is then distinct)."""
    value = scalar(
        engine, "SELECT child_id FROM child_identifier WHERE system = 'nhs' AND value = :v", v=nhs(n)
    )
    return uuid.UUID(str(value).replace("-", ""))


def load(engine: Engine, path: Path) -> None:
    """The children of a file, added as they are (the plain import: no matching between them)."""
    assert import_files(engine, [path], fmt="csv", actor=ADMIN).rejected == []


def state(engine: Engine) -> dict[str, Any]:
    """Everything a feed run could change, table by table (rows as tuples, in order)."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for table, columns in (
            ("child", "id, version, status, sex, date_of_birth, locality_id"),
            ("child_name", "child_id, use, given, family, until"),
            ("child_identifier", "child_id, system, value"),
            ("child_address", "child_id, line1, postcode, since, until"),
            ("child_version", "child_id, version, changed"),
            ("outbox", "topic, entity_id"),
            ("match_review", "row_hash, status, restricted"),
        ):
            out[table] = sorted(
                tuple(str(v) for v in r) for r in conn.execute(sa.text(f"SELECT {columns} FROM {table}"))
            )
    return out


# ----------------------------------------------------------------------------- the chunked path


def test_a_bad_row_in_the_middle_of_a_chunk_is_rejected_and_the_others_are_kept(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(engine, feed(tmp_path, *(row(10 * n, given=f"Child{n}") for n in range(1, 8))))
    before = state(engine)
    # Row 4's change fails after the name was written (its version snapshot refuses): the savepoint
    # must undo all of that row, and nothing of rows 1-3 and 5-7 (the same chunk: batch=50).
    from directory.service import versions as versions_module

    real = versions_module.record_version
    target = child_id(engine, 40)

    def failing(session: Session, *, child: Child, **kw: Any) -> None:
        if child.id == target:
            raise InvalidInput("refused for the test")
        real(session, child=child, **kw)

    monkeypatch.setattr(versions_module, "record_version", failing)
    changed = feed(
        tmp_path, *(row(10 * n, given=f"Child{n}", family="Moved") for n in range(1, 8)), name="b.csv"
    )
    result = run(engine, changed, "pds", batch=50)
    assert outcomes(result) == [
        (2, "updated", "identifier"),
        (3, "updated", "identifier"),
        (4, "updated", "identifier"),
        (5, "rejected", "invalid-input"),
        (6, "updated", "identifier"),
        (7, "updated", "identifier"),
        (8, "updated", "identifier"),
    ]
    after = state(engine)
    with engine.connect() as conn:
        families: dict[str, str] = dict(
            conn.execute(  # type: ignore[arg-type]
                sa.text("SELECT given, family FROM child_name WHERE use = 'official' ORDER BY given")
            ).all()
        )
    assert families == {f"Child{n}": ("Ward" if n == 4 else "Moved") for n in range(1, 8)}
    # row 4: not a name, not a version, not an outbox row, not an audit event more than before
    assert [r for r in after["child_name"] if r[0] == str(target)] == [
        r for r in before["child_name"] if r[0] == str(target)
    ]
    assert len(after["child_version"]) == len(before["child_version"]) + 6
    assert len(after["outbox"]) == len(before["outbox"]) + 6
    assert scalar(engine, "SELECT count(*) FROM audit_event WHERE action = 'child.details.change'") == 6


def test_the_same_feed_twice_changes_nothing_the_second_time(engine: Engine, tmp_path: Path) -> None:
    load(engine, feed(tmp_path, *(row(10 * n, given=f"Child{n}") for n in range(1, 13))))
    mixed = [row(10 * n, given=f"Child{n}", family="Newname" if n % 3 else "Ward") for n in range(1, 13)]
    mixed += [  # new children, unlike each other and everyone else
        row(10 * n, given=given, family=family, born=born, postcode="OX1 2JD")
        for n, given, family, born in (
            (20, "Zara", "Okafor", "2011-01-14"),
            (21, "Milo", "Brennan", "2013-06-30"),
            (22, "Ines", "Szabo", "2016-09-03"),
            (23, "Hugo", "Lindqvist", "2018-12-21"),
            (24, "Nell", "Moreau", "2020-04-11"),
        )
    ]
    path = feed(tmp_path, *mixed, name="b.csv")
    first = run(engine, path, "pds", batch=5)
    assert (first.created, first.updated, first.unchanged) == (5, 8, 4), outcomes(first)
    before, events = state(engine), count(engine, "audit_event")
    again = run(engine, path, "pds", batch=5)
    assert (again.created, again.updated, again.unchanged, again.held, len(again.rejected)) == (
        0,
        0,
        17,
        0,
        0,
    )
    assert state(engine) == before
    assert count(engine, "audit_event") == events + 1  # the run's own event, nothing else


def test_fifty_rows_for_one_child_end_in_one_consistent_record(engine: Engine, tmp_path: Path) -> None:
    run(engine, feed(tmp_path, row(1)), "pds")
    child = child_id(engine, 1)
    rows = [row(1, family=f"Name{k:02d}") for k in range(50)]
    result = run(engine, feed(tmp_path, *rows, name="b.csv"), "pds", batch=7)  # across eight chunks
    assert result.updated == 1 and len(result.rejected) == 49
    assert {o.reason for o in result.lines if o.outcome.value == "rejected"} == {"repeated-in-run"}
    assert count(engine, "child") == 1
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT use, family FROM child_name ORDER BY use")).all()
        versions_ = conn.execute(
            sa.text("SELECT version, snapshot FROM child_version ORDER BY version")
        ).all()
    assert [tuple(n) for n in names] == [("official", "Name00"), ("previous", "Ward")]
    # one version (the one change), the record as it stands
    assert [v for v, _ in versions_] == [scalar(engine, "SELECT version FROM child")] == [2]
    last = json.loads(versions_[-1][1])
    assert [n["family"] for n in last["names"] if n["use"] == "official"] == ["Name00"]
    made_and_changed = scalar(engine, "SELECT count(*) FROM outbox WHERE entity_id = :c", c=child.hex)
    assert made_and_changed == 2


# ----------------------------------------------------------------------------- sealed, archived, purged


def seal(engine: Engine, child: uuid.UUID) -> uuid.UUID:
    """Adopt the child: the birth record (holding the birth NHS number) is sealed."""
    with Session(engine) as session:
        adoptive = service.adoption.adopt(
            session,
            actor=ADOPTION,
            child_id=child,
            data=AdoptionCreate(names=[NameIn(given="Amelia", family="Newfamily")]),
            today=date(2026, 11, 23),
        )
        session.commit()
        return adoptive.id


def test_a_row_whose_identifier_a_sealed_record_holds_is_held_as_beside_a_shielded_child(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    load(engine, feed(tmp_path, row(10), row(20, given="Oscar", family="Ng", born="2012-07-09", sex="M")))
    sealed, shielded = child_id(engine, 10), child_id(engine, 20)
    seal(engine, sealed)
    with Session(engine) as session:
        service.set_shield(session, actor=SHIELDER, child_id=shielded, data=ShieldSet(reason="fleeing"))
        session.commit()
    # the birth identity from a feed; and a move of the shielded child from a source not trusted for it
    birth = run(engine, feed(tmp_path, row(10, family="Ward"), name="b.csv"), "pds")
    beside = run(
        engine,
        feed(
            tmp_path,
            row(20, given="Oscar", family="Ng", born="2012-07-09", sex="M", postcode="OX1 2JD"),
            name="b.csv",
        ),
        "pds",
    )
    assert outcomes(birth) == outcomes(beside) == [(2, "held", "review")]
    assert [r.reason for r in birth.rejected] == [] and birth.held == beside.held == 1
    assert (
        scalar(engine, "SELECT restricted FROM match_review WHERE shielded_candidate = :f", f=False)
        == "sealed"
    )
    review = uuid.UUID(
        str(scalar(engine, "SELECT id FROM match_review WHERE restricted = 'sealed'")).replace("-", "")
    )
    # for every role but the adoption team the queue looks as if the row did not exist
    for role in EVERY_OTHER_ROLE:
        listed = client.get("/api/v1/match-reviews", headers=who(role))
        if listed.status_code == 200:
            assert str(review) not in listed.text, role
            assert str(sealed) not in listed.text and "Ward" not in listed.text, role
        else:
            assert listed.status_code in (401, 403), (role, listed.text)
        by_id = client.get(f"/api/v1/match-reviews/{review}", headers=who(role))
        unknown = client.get(f"/api/v1/match-reviews/{uuid.uuid4()}", headers=who(role))
        assert by_id.status_code == unknown.status_code, role
        assert by_id.json().get("detail") == unknown.json().get("detail"), role
        decided = client.post(
            f"/api/v1/match-reviews/{review}",
            json={"decision": "link", "child_id": str(sealed)},
            headers=who(role),
        )
        assert decided.status_code in (401, 403, 404), (role, decided.text)
    assert scalar(engine, "SELECT status FROM match_review WHERE id = :r", r=review.hex) == "open"
    # the adoption team sees it (and only it: not the shielded child's row), and decides it
    mine = client.get("/api/v1/match-reviews", headers=who(Role.ADOPTION_OFFICER))
    assert mine.status_code == 200, mine.text
    assert [r["id"] for r in mine.json()] == [str(review)]
    assert [c["child_id"] for c in mine.json()[0]["candidates"]] == [str(sealed)]
    v, children = versions(engine), count(engine, "child")
    made = client.post(  # a new record would hold the birth identity's identifier twice: refused, 4xx
        f"/api/v1/match-reviews/{review}", json={"decision": "create"}, headers=who(Role.ADOPTION_OFFICER)
    )
    assert made.status_code in (403, 409), made.text
    assert count(engine, "child") == children
    linked = client.post(
        f"/api/v1/match-reviews/{review}",
        json={"decision": "link", "child_id": str(sealed)},
        headers=who(Role.ADOPTION_OFFICER),
    )
    assert linked.status_code == 200, linked.text
    assert versions(engine) == v  # a sealed record is not changed by a feed
    again = run(engine, feed(tmp_path, row(10, family="Ward"), name="b.csv"), "pds")
    assert outcomes(again) == [(2, "unchanged", "review-decision")]


def test_the_held_rows_page_hides_a_sealed_row_from_others(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    run(engine, feed(tmp_path, row(1)), "pds")
    seal(engine, child_id(engine, 1))
    run(engine, feed(tmp_path, row(1), name="b.csv"), "pds")
    assert count(engine, "match_review") == 1
    # the queue's listing (what the page and any count are made of), role by role
    from directory.importer.reviews import list_reviews

    with Session(engine) as session:
        for role in (Role.DIRECTORY_ADMIN, Role.DATA_MANAGER):
            assert list_reviews(session, actor=Actor(subject="x", role=role)) == [], role
        assert len(list_reviews(session, actor=ADOPTION)) == 1


def test_a_row_whose_identifier_an_archived_record_holds_is_held_for_data_managers(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    run(engine, feed(tmp_path, row(1)), "pds")
    child = child_id(engine, 1)
    with Session(engine) as session:
        record = session.get(Child, child)
        assert record is not None
        lifecycle.archive(
            session,
            actor=Actor(subject="cli", role=Role.DIRECTORY_ADMIN),
            child=record,
            reason=ArchiveReason.MOVED_AWAY,
            now=datetime(2026, 11, 23, tzinfo=UTC),
        )
        session.commit()
    v = versions(engine)
    result = run(engine, feed(tmp_path, row(1, family="Hughes"), name="b.csv"), "pds")
    assert outcomes(result) == [(2, "held", "review")]
    assert versions(engine) == v and count(engine, "child") == 1
    assert client.get("/api/v1/match-reviews", headers=who(Role.DIRECTORY_ADMIN)).json() == []
    [item] = client.get("/api/v1/match-reviews", headers=who(Role.DATA_MANAGER)).json()
    assert [c["child_id"] for c in item["candidates"]] == [str(child)]
    assert client.get("/api/v1/match-reviews", headers=who(Role.ADOPTION_OFFICER)).json() == []


def test_a_row_decided_for_a_record_since_merged_follows_it_to_the_kept_record(
    engine: Engine, tmp_path: Path
) -> None:
    load(engine, feed(tmp_path, row(10), row(20, given="Oscar", family="Ng", born="2012-07-09", sex="M")))
    first, kept = child_id(engine, 10), child_id(engine, 20)
    # a row without a held identifier, near the first child: held, and a person links it to that child
    near = row(30, nhs_no="", local="mosaic:M1", born="2015-03-03", line1="3 Far Lane", postcode="OX1 2JD")
    path = feed(tmp_path, near, name="b.csv")
    assert outcomes(run(engine, path, "social-care")) == [(2, "held", "review")]
    review = uuid.UUID(str(scalar(engine, "SELECT id FROM match_review")).replace("-", ""))
    from directory.importer.precedence import Precedence
    from directory.importer.reviews import ReviewDecision, decide_review

    with Session(engine) as session:
        decide_review(
            session,
            actor=Actor(subject="dm", role=Role.DATA_MANAGER),
            review_id=review,
            decision=ReviewDecision(decision="link", child_id=first),
            precedence=Precedence(),
            today=date(2026, 11, 23),
        )
        service.merge_children(
            session, actor=Actor(subject="dm", role=Role.DATA_MANAGER), duplicate_id=first, into_id=kept
        )
        session.commit()
    # the same row again: the decision named a record now merged; the row reaches the kept record
    again = run(engine, path, "social-care")
    assert [(o.outcome.value, o.reason, o.child_id) for o in again.lines] == [
        ("updated", "review-decision", kept)
    ]
    with engine.connect() as conn:  # social-care is trusted for the address: the kept record moved
        current = conn.execute(
            sa.text("SELECT child_id, line1 FROM child_address WHERE until IS NULL AND line1 = '3 Far Lane'")
        ).all()
    assert [uuid.UUID(str(c).replace("-", "")) for c, _ in current] == [kept]
    assert scalar(engine, "SELECT status FROM child WHERE id = :c", c=first.hex) == "merged"


def test_a_purged_childs_identifier_in_a_feed_never_reaches_the_tombstone(
    engine: Engine, tmp_path: Path
) -> None:
    load(engine, feed(tmp_path, row(10)))
    gone = child_id(engine, 10)
    with Session(engine) as session:
        record = session.get(Child, gone)
        assert record is not None
        admin = Actor(subject="cli", role=Role.DIRECTORY_ADMIN)
        now = datetime(2026, 11, 23, tzinfo=UTC)
        lifecycle.archive(session, actor=admin, child=record, reason=ArchiveReason.MOVED_AWAY, now=now)
        lifecycle.purge(session, actor=admin, child=record, now=now)
        session.commit()
    # the tombstone holds no identifier: the row is matched like any other, and makes a new record
    result = run(engine, feed(tmp_path, row(10), name="b.csv"), "pds")
    assert outcomes(result) == [(2, "created", "no-match")]
    assert scalar(engine, "SELECT status FROM child WHERE id = :c", c=gone.hex) == "purged"
    assert scalar(engine, "SELECT count(*) FROM child_identifier WHERE child_id = :c", c=gone.hex) == 0
