"""Merging two records of one child and undoing it, through /api/v1, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import service
from directory.models import Role, utcnow
from search.embedded import EmbeddedBackend
from search.indexer import drain
from tests.directory.test_api import SIGNAL, catalogue, new_child, who
from tests.fixtures.builders import actor, next_nhs_number

ADMIN = who("directory_admin", subject="admin")
DATA = {**who("data_manager", subject="dm"), "X-Purpose-Of-Use": "administration"}
# Left out of the before/after comparison: the logs that grow (audit, outbox), the index and the
# rate-limit counters a request writes.
GROWING = {"audit_event", "audit_subject", "audit_head", "outbox", "rate_hit", "trawl_look", "trawl_tally"}
MOVED_TABLES = (
    "child_identifier",
    "child_name",
    "child_address",
    "related_person",
    "involvement",
    "involvement_version",
    "assessment",
    "lead_professional_assignment",
    "tac",
    "consent",
    "notice",
    "caf_request",
)
GROWING |= {"search_record", "search_key", "search_log", "trawl_alert", "seen_jti"}


# A record's version, when it changed and its history only move on: a merge and an unmerge each make a
# new version of both records (checked on their own below).
# what only moves on: a record's version and when it changed; when a moved involvement, CAF, TAC or consent
# changed (a sync client polling _since sees a merge and an unmerge: tests/interop/test_fhir_last_updated.py)
VERSIONS = {
    "child": ("version", "updated_at"),
    "child_version": ("*",),
    "involvement": ("updated_at",),
    "assessment": ("updated_at",),
    "tac": ("updated_at",),
    "consent": ("updated_at",),
}


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the growing ones and the versions), sorted, as comparable tuples."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            if table in GROWING or table == "alembic_version" or VERSIONS.get(table) == ("*",):
                continue
            result = conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            kept = [i for i, c in enumerate(result.keys()) if c not in VERSIONS.get(table, ())]
            out[table] = sorted(tuple(str(r[i]) for i in kept) for r in result.all())
    return out


def history(client: TestClient, child: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/children/{child}/history", headers=who("designated_practitioner", subject="dp"))
    assert r.status_code == 200, r.text
    body = r.json()
    return list(body["versions"] if isinstance(body, dict) else body)


def _involve(client: TestClient, child: str, ids: dict[str, str], who_: dict[str, str], p: str) -> None:
    r = client.post(
        f"/api/v1/children/{child}/involvements",
        headers=who_,
        json={
            "service_id": ids["hv"],
            "practitioner_id": ids[p],
            "role": "health visitor",
            "level_of_need": 1,
            "start_date": date.today().isoformat(),
        },
    )
    assert r.status_code == 201, r.text


def _caf_with_tac(client: TestClient, child: str, ids: dict[str, str], starter: str) -> str:
    """An open CAF (in progress, a hand-over, a convened TAC) on a child; returns its id."""
    by = who(subject=f"s-{starter}", practitioner=ids[starter])
    caf = client.post(f"/api/v1/children/{child}/caf", headers=by, json=SIGNAL)
    assert caf.status_code == 201, caf.text
    caf_id = str(caf.json()["id"])
    consent = client.post(
        f"/api/v1/children/{child}/consents",
        headers=by,
        json={"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Sara Khan"},
    )
    client.post(f"/api/v1/cafs/{caf_id}/start", headers=by, json={"consent_id": consent.json()["id"]})
    other = "p2" if starter != "p2" else "p1"
    handed = client.post(
        f"/api/v1/cafs/{caf_id}/lead-professional",
        headers=by,
        json={"to_practitioner_id": ids[other], "reason": "closer to the family"},
    )
    assert handed.status_code == 202, handed.text  # a request the named practitioner accepts
    accepted = client.post(
        f"/api/v1/requests/{handed.json()['id']}/accept",
        headers=who(subject=f"s-{other}", practitioner=ids[other]),
    )
    assert accepted.status_code == 200, accepted.text
    members = [{"practitioner_id": ids[p], "role": "member"} for p in ("p1", "p2", "p3")]
    tac = client.post(f"/api/v1/cafs/{caf_id}/tac", headers=by, json={"add_members": members})
    review = (date.today() + timedelta(days=30)).isoformat()
    r = client.post(f"/api/v1/tacs/{tac.json()['id']}/convene", headers=by, json={"next_review_date": review})
    assert r.status_code == 200, r.text
    return caf_id


def _close(client: TestClient, caf_id: str, ids: dict[str, str]) -> None:
    r = client.post(
        f"/api/v1/cafs/{caf_id}/close",
        headers=who(subject="s-p2", practitioner=ids["p2"]),
        json={"reason": "done"},
    )
    assert r.status_code == 200, r.text


def _two_records(client: TestClient, engine: Engine) -> tuple[str, str, str, dict[str, str]]:
    """The kept record and a shielded duplicate with everything on it; returns (keep, dup, dup's nhs)."""
    ids = catalogue(engine)
    keep = new_child(client)
    nhs = next_nhs_number()
    dup = new_child(
        client,
        names=[{"given": "Amy", "family": "Khan"}, {"given": "Amy", "family": "Jones", "use": "usual"}],
        identifiers=[{"system": "nhs", "value": nhs}, {"system": "local:mosaic", "value": "MOS1"}],
        address={"line1": "9 Refuge Lane", "town": "Oxford", "postcode": "OX4 9ZZ"},
    )
    _involve(client, keep, ids, who(subject="hannah", practitioner=ids["p0"]), "p0")
    _involve(client, dup, ids, who(subject="hannah", practitioner=ids["p0"]), "p0")
    _close(client, _caf_with_tac(client, keep, ids, "p1"), ids)
    dup_caf = _caf_with_tac(client, dup, ids, "p3")  # open on the duplicate only
    review = (date.today() + timedelta(days=20)).isoformat()
    r = client.post(  # a TAC member who does not hold the CAF changes it: its holders get notices
        f"/api/v1/cafs/{dup_caf}/tac",
        headers=who(subject="s-p1", practitioner=ids["p1"]),
        json={"next_review_date": review, "reason": "review moved"},
    )
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/children/{dup}/shielding", headers=ADMIN, json={"reason": "fleeing violence"})
    assert r.status_code == 200, r.text
    client.get(f"/api/v1/children/{dup}", headers=who(subject="looker"))  # an access to move with it
    return keep, dup, nhs, ids


def test_everything_moves_and_unmerge_restores_every_table(client: TestClient, engine: Engine) -> None:
    keep, dup, nhs, _ = _two_records(client, engine)
    before = dump(engine)
    versions_before = {c: len(history(client, c)) for c in (keep, dup)}
    r = client.post(
        f"/api/v1/children/{keep}/merge", headers=DATA, json={"duplicate_id": dup, "reason": "same child"}
    )
    assert r.status_code == 200, r.text
    moved = r.json()["moved"]
    for table in MOVED_TABLES:
        assert moved.get(table), (table, moved)
    with engine.connect() as conn:
        for table in MOVED_TABLES:
            left = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE child_id = :d"),
                {"d": uuid.UUID(dup).hex if engine.dialect.name == "sqlite" else dup},
            ).scalar_one()
            assert left == 0, table
        kept = conn.execute(
            sa.text("SELECT shielded, shielded_reason FROM child WHERE id = :k"),
            {"k": uuid.UUID(keep).hex if engine.dialect.name == "sqlite" else keep},
        ).one()
    assert bool(kept[0]) and kept[1] == "fleeing violence"  # the stricter protection wins, reason carried

    # The kept record: the duplicate's names as aliases, its NHS number, its open CAF, both addresses.
    card = client.get(f"/api/v1/children/{keep}", headers=who("designated_practitioner")).json()
    assert {"nhs": nhs} == {i["system"]: i["value"] for i in card["identifiers"] if i["value"] == nhs}
    assert ("Amy", "Khan", "alias") in {(n["given"], n["family"], n["use"]) for n in card["names"]}
    assert ("Amy", "Jones", "alias") in {(n["given"], n["family"], n["use"]) for n in card["names"]}
    assert card["shielded"] and card["caf"]["status"] == "in_progress"
    # Reads of the duplicate lead to the kept record.
    r = client.get(f"/api/v1/children/{dup}", headers=who(), follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == f"/api/v1/children/{keep}"
    assert r.headers["cache-control"] == "no-store"
    assert client.get(f"/api/v1/children/{dup}", headers=who()).json()["id"] == keep
    # The access history of the duplicate shows under the kept record.
    log = client.get(f"/api/v1/children/{keep}/access-log", headers=who("auditor", subject="aud")).json()
    assert any(e["actor_subject"] == "looker" for e in log)
    # The duplicate itself cannot be changed any more.
    assert (
        client.post(f"/api/v1/children/{dup}/shielding", headers=ADMIN, json={"reason": "x"}).status_code
        == 422
    )

    r = client.post(f"/api/v1/children/{dup}/unmerge", headers=DATA)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert dump(engine) == before
    # Each record's history shows the merge and the unmerge, two new versions, and its last snapshot
    # is what it was before the merge.
    for child in (keep, dup):
        versions = sorted(history(client, child), key=lambda v: int(v["version"]))
        assert len(versions) == versions_before[child] + 2, versions
        assert [v["changed"] for v in versions[-2:]] == [["merged"], ["unmerged"]], versions[-2:]
        assert [v["source"] for v in versions[-2:]] == ["merge", "unmerge"]
        assert versions[-1]["details"] == versions[-3]["details"]
        assert versions[-2]["details"] != versions[-3]["details"]
    assert client.get(f"/api/v1/children/{dup}", headers=ADMIN, follow_redirects=False).status_code == 200


def test_search_by_the_duplicates_nhs_number_finds_the_kept_record(
    client: TestClient, engine: Engine
) -> None:
    keep = new_child(client)
    nhs = next_nhs_number()
    dup = new_child(client, identifiers=[{"system": "nhs", "value": nhs}])
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    drain(engine, backend, wait=True)
    assert [r.child_id for r in backend.by_identifier("nhs", nhs)] == [uuid.UUID(dup).hex]
    r = client.post(
        f"/api/v1/children/{keep}/merge", headers=ADMIN, json={"duplicate_id": dup, "reason": "same"}
    )
    assert r.status_code == 200, r.text
    drain(engine, backend, wait=True)
    assert [r.child_id for r in backend.by_identifier("nhs", nhs)] == [uuid.UUID(keep).hex]
    assert backend.count() == 1  # the index dropped the duplicate
    assert client.post(f"/api/v1/children/{dup}/unmerge", headers=ADMIN).status_code == 200
    drain(engine, backend, wait=True)
    assert [r.child_id for r in backend.by_identifier("nhs", nhs)] == [uuid.UUID(dup).hex]
    assert backend.count() == 2  # and takes it back after an unmerge


def test_both_open_cafs_refused_naming_both_holders(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    keep, dup = new_child(client), new_child(client)
    _caf_with_tac(client, keep, ids, "p1")
    _caf_with_tac(client, dup, ids, "p3")
    before = dump(engine)
    r = client.post(
        f"/api/v1/children/{keep}/merge", headers=ADMIN, json={"duplicate_id": dup, "reason": "same"}
    )
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert "Yusuf Youth" in detail and detail.count("Yusuf Youth") == 2  # each CAF's Lead Professional
    assert len(r.json()["holders"]) == 2
    assert dump(engine) == before


@pytest.mark.parametrize(
    "role", ["practitioner", "designated_practitioner", "auditor", "local_delivery_team"]
)
def test_only_admins_and_data_managers_merge(client: TestClient, engine: Engine, role: str) -> None:
    keep, dup = new_child(client), new_child(client)
    before = dump(engine)
    r = client.post(
        f"/api/v1/children/{keep}/merge", headers=who(role), json={"duplicate_id": dup, "reason": "same"}
    )
    assert r.status_code == 403
    assert dump(engine) == before


def test_self_merge_merged_and_unknown_records_refused(client: TestClient, engine: Engine) -> None:
    a, b, c = new_child(client), new_child(client), new_child(client)
    before = dump(engine)
    r = client.post(f"/api/v1/children/{a}/merge", headers=ADMIN, json={"duplicate_id": a, "reason": "same"})
    assert r.status_code == 422 and "itself" in r.json()["detail"]
    r = client.post(
        f"/api/v1/children/{a}/merge", headers=ADMIN, json={"duplicate_id": str(uuid.uuid4()), "reason": "x"}
    )
    assert r.status_code == 404
    r = client.post(f"/api/v1/children/{a}/merge", headers=ADMIN, json={"duplicate_id": b, "reason": " "})
    assert r.status_code == 422
    assert dump(engine) == before
    assert (
        client.post(
            f"/api/v1/children/{a}/merge", headers=ADMIN, json={"duplicate_id": b, "reason": "x"}
        ).status_code
        == 200
    )
    for keep, dup in ((c, b), (b, c), (a, b)):
        r = client.post(
            f"/api/v1/children/{keep}/merge", headers=ADMIN, json={"duplicate_id": dup, "reason": "x"}
        )
        assert r.status_code == 422 and "merged" in r.json()["detail"], r.text
    r = client.post(f"/api/v1/children/{a}/unmerge", headers=ADMIN)
    assert r.status_code == 422 and "not merged" in r.json()["detail"]


def test_an_archived_record_is_an_unknown_id_to_an_admin_and_read_only_to_a_data_manager(
    client: TestClient, engine: Engine
) -> None:
    a, b = new_child(client), new_child(client)
    died = (date.today() - timedelta(days=1)).isoformat()
    r = client.post(f"/api/v1/children/{b}/death", headers=ADMIN, json={"date_of_death": died})
    assert r.status_code == 200, r.text
    before = dump(engine)
    unknown = client.post(
        f"/api/v1/children/{a}/merge", headers=ADMIN, json={"duplicate_id": str(uuid.uuid4()), "reason": "x"}
    )
    for keep, dup in ((a, b), (b, a)):
        r = client.post(
            f"/api/v1/children/{keep}/merge", headers=ADMIN, json={"duplicate_id": dup, "reason": "x"}
        )
        assert (r.status_code, r.json()["detail"]) == (unknown.status_code, unknown.json()["detail"]), r.text
        # A data manager may read an archived record, not change it.
        r = client.post(
            f"/api/v1/children/{keep}/merge", headers=DATA, json={"duplicate_id": dup, "reason": "x"}
        )
        assert r.status_code == 422 and "archived" in r.json()["detail"], r.text
    assert dump(engine) == before


def test_unmerge_past_its_period_is_refused(client: TestClient, engine: Engine) -> None:
    keep, dup = new_child(client), new_child(client)
    with Session(engine, expire_on_commit=False) as s:
        service.merge_children(
            s,
            actor=actor(Role.DATA_MANAGER),
            duplicate_id=uuid.UUID(dup),
            into_id=uuid.UUID(keep),
            reason="same",
            now=utcnow() - timedelta(days=91),
        )
        s.commit()
    r = client.post(f"/api/v1/children/{dup}/unmerge", headers=ADMIN)
    assert r.status_code == 422, r.text
    assert "within 90 days" in r.json()["detail"]
    assert client.get(f"/api/v1/children/{dup}", headers=ADMIN, follow_redirects=False).status_code == 301


def _at_once(client: TestClient, pairs: list[tuple[str, str]]) -> list[int]:
    """Merge each (keep, duplicate) pair from its own thread, all released together."""
    results: list[int] = []
    gate = threading.Barrier(len(pairs))

    def merge(keep: str, dup: str) -> None:
        gate.wait()
        r = client.post(
            f"/api/v1/children/{keep}/merge", headers=ADMIN, json={"duplicate_id": dup, "reason": "x"}
        )
        results.append(r.status_code)

    threads = [threading.Thread(target=merge, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)


def test_merges_of_the_same_duplicate_at_once_one_wins(client: TestClient, engine: Engine) -> None:
    dup = new_child(client)
    keeps = [new_child(client) for _ in range(6)]
    results = _at_once(client, [(k, dup) for k in keeps])
    assert results[0] == 200 and all(r in (409, 422) for r in results[1:]), results
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM child_merge")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM child WHERE status = 'merged'")).scalar_one() == 1


def test_two_records_merged_into_each_other_at_once_one_wins(client: TestClient, engine: Engine) -> None:
    a, b = new_child(client), new_child(client)
    results = _at_once(client, [(a, b), (b, a)])
    assert results[0] == 200 and results[1] in (409, 422), results
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM child WHERE status = 'merged'")).scalar_one() == 1


def _merge(client: TestClient, keep: str, dup: str, reason: str = "same child") -> None:
    r = client.post(
        f"/api/v1/children/{keep}/merge", headers=ADMIN, json={"duplicate_id": dup, "reason": reason}
    )
    assert r.status_code == 200, r.text


def test_unmerge_refused_when_what_moved_changed_since(client: TestClient, engine: Engine) -> None:
    keep, dup = new_child(client), new_child(client)
    client.post(f"/api/v1/children/{dup}/shielding", headers=ADMIN, json={"reason": "refuge"})
    _merge(client, keep, dup)
    r = client.request("DELETE", f"/api/v1/children/{keep}/shielding", headers=ADMIN, json={"reason": "over"})
    assert r.status_code == 200, r.text
    before = dump(engine)
    r = client.post(f"/api/v1/children/{dup}/unmerge", headers=ADMIN)
    assert r.status_code == 409 and "child.shielded" in r.json()["detail"], r.text
    assert dump(engine) == before


def test_merges_of_merges_lead_to_the_last_record_and_unwind_in_order(
    client: TestClient, engine: Engine
) -> None:
    a, b, c = new_child(client), new_child(client), new_child(client)
    before = dump(engine)
    _merge(client, b, a)
    r = client.post(f"/api/v1/children/{c}/merge", headers=ADMIN, json={"duplicate_id": b, "reason": "same"})
    assert r.status_code == 200 and r.json()["moved"]["child"] == 1, r.text  # a now points at c
    assert client.get(f"/api/v1/children/{a}", headers=who()).json()["id"] == c
    r = client.get(f"/api/v1/children/{a}", headers=who(), follow_redirects=False)
    assert r.headers["location"] == f"/api/v1/children/{c}"
    # a's rows went on to c with b's: a cannot be unmerged before b is.
    refused = client.post(f"/api/v1/children/{a}/unmerge", headers=ADMIN)
    assert refused.status_code == 409, refused.text
    assert client.post(f"/api/v1/children/{b}/unmerge", headers=ADMIN).status_code == 200
    assert client.post(f"/api/v1/children/{a}/unmerge", headers=ADMIN).status_code == 200
    assert dump(engine) == before


def test_a_kept_record_without_an_address_takes_the_duplicates(client: TestClient, engine: Engine) -> None:
    keep = new_child(client, address=None)
    dup = new_child(client, address={"line1": "3 Iffley Road", "town": "Oxford", "postcode": "OX4 1EA"})
    _merge(client, keep, dup)
    card = client.get(f"/api/v1/children/{keep}", headers=who()).json()
    assert card["address"]["line1"] == "3 Iffley Road"


def test_the_merge_is_audited_with_ids_only(client: TestClient, engine: Engine) -> None:
    keep, dup = new_child(client), new_child(client)
    _merge(client, keep, dup, reason="Amelia Khan's school record matches")
    client.post(f"/api/v1/children/{dup}/unmerge", headers=ADMIN)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT action, target_id, detail FROM audit_event "
                "WHERE action IN ('child.merge', 'child.unmerge') ORDER BY seq"
            )
        ).all()
    assert [(r[0], uuid.UUID(r[1])) for r in rows] == [
        ("child.merge", uuid.UUID(dup)),
        ("child.unmerge", uuid.UUID(dup)),
    ]
    assert uuid.UUID(keep).hex in rows[0][2] and all("Amelia" not in (r[2] or "") for r in rows)


def test_a_sealed_record_is_not_found_for_a_merge_or_a_subject_access_export(
    client: TestClient, engine: Engine
) -> None:
    keep, sealed = new_child(client), new_child(client)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE child SET status = 'sealed' WHERE id = :i"),
            {"i": uuid.UUID(sealed).hex if engine.dialect.name == "sqlite" else sealed},
        )
    unknown = client.post(
        f"/api/v1/children/{keep}/merge",
        headers=ADMIN,
        json={"duplicate_id": str(uuid.uuid4()), "reason": "x"},
    )
    for path, body in (
        (f"/api/v1/children/{keep}/merge", {"duplicate_id": sealed, "reason": "x"}),
        (f"/api/v1/children/{sealed}/merge", {"duplicate_id": keep, "reason": "x"}),
    ):
        r = client.post(path, headers=ADMIN, json=body)
        assert r.status_code == 404 and r.json()["detail"] == unknown.json()["detail"], r.text
    r = client.get(f"/api/v1/children/{sealed}/subject-access", headers=DATA)
    assert r.status_code == 404


def _id(engine: Engine, value: str) -> object:
    return uuid.UUID(value).hex if engine.dialect.name == "sqlite" else uuid.UUID(value)


def test_the_database_refuses_a_row_added_to_a_merged_record(client: TestClient, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the domain's own check is enough there")
    keep, dup = new_child(client), new_child(client)
    _merge(client, keep, dup)
    with pytest.raises(sa.exc.IntegrityError, match="merged into another"), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO child_name (id, child_id, use, given, family) VALUES (:i, :c, 'alias', 'A', 'B')"
            ),
            {"i": _id(engine, str(uuid.uuid4())), "c": _id(engine, dup)},
        )
    with engine.begin() as conn:  # (the record kept takes them)
        conn.execute(
            sa.text(
                "INSERT INTO child_name (id, child_id, use, given, family) VALUES (:i, :c, 'alias', 'A', 'B')"
            ),
            {"i": _id(engine, str(uuid.uuid4())), "c": _id(engine, keep)},
        )


def test_a_write_racing_a_merge_is_refused_not_left_on_the_pointer(
    client: TestClient, engine: Engine
) -> None:
    """A consent recorded for the duplicate while its merge commits (PostgreSQL: the insert waits for
    the merge's row lock) is refused at its commit instead of staying behind on the pointer."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the domain's own check is enough there")
    keep, dup = new_child(client), new_child(client)
    merging = engine.connect()
    tx = merging.begin()
    merging.execute(sa.text("SELECT id FROM child WHERE id IN (:k, :d) FOR UPDATE"), {"k": keep, "d": dup})
    merging.execute(
        sa.text("UPDATE child SET status = 'merged', merged_into_id = :k WHERE id = :d"),
        {"k": keep, "d": dup},
    )
    errors: list[BaseException] = []

    def record() -> None:  # checked the record was active before the merge committed
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO consent (id, child_id, scope, given_by_kind, given_by_name, given_at, "
                        "recorded_by) VALUES (:i, :c, 'caf', 'parent_carer', 'Sara', now(), 'x')"
                    ),
                    {"i": uuid.uuid4(), "c": dup},
                )
        except BaseException as exc:
            errors.append(exc)

    racer = threading.Thread(target=record)
    racer.start()
    racer.join(timeout=1)
    assert racer.is_alive()  # waiting for the merge's lock
    tx.commit()
    merging.close()
    racer.join(timeout=10)
    assert errors and isinstance(errors[0], sa.exc.IntegrityError) and "merged into another" in str(errors[0])
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM consent WHERE child_id = :d"), {"d": dup}).scalar_one()
            == 0
        )


def test_the_merge_guards_are_in_place_after_every_migration(engine: Engine) -> None:
    """(A later migration that recreates one of these tables drops its triggers: this says so.)"""
    from directory.db.rules import MERGE_GUARDED_TABLES

    if engine.dialect.name != "postgresql":
        pytest.skip("the guards are PostgreSQL's (SQLite has one writer at a time)")
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT tgname FROM pg_trigger")).scalars())
    wanted = {f"{t}_not_merged_{e}" for t in MERGE_GUARDED_TABLES for e in ("insert", "update")}
    assert wanted <= names, wanted - names


@pytest.mark.parametrize("status", ["sealed", "archived"])
def test_a_pointer_to_a_record_the_reader_may_not_read_is_an_unknown_id(
    client: TestClient, engine: Engine, status: str
) -> None:
    """A duplicate merged into a record that an adoption sealed (or that was archived) since must not
    send a practitioner on to it: the pointer is answered exactly as an id never used."""
    keep, dup = new_child(client), new_child(client)
    _merge(client, keep, dup)
    reader = who(subject="looker")
    assert client.get(f"/api/v1/children/{dup}", headers=reader, follow_redirects=False).status_code == 301
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE child SET status = :s WHERE id = :i"), {"s": status, "i": _id(engine, keep)}
        )
    unknown = client.get(f"/api/v1/children/{uuid.uuid4()}", headers=reader)
    r = client.get(f"/api/v1/children/{dup}", headers=reader, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers, r.text
    assert r.json()["detail"] == unknown.json()["detail"]
    assert keep not in r.text
