"""Changing a child's details in the domain: each field kept as a version, everything checked before
anything is written, who may change what, the audit event naming fields and never values."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import service
from directory.db import unit_of_work
from directory.errors import Conflict, InvalidInput, NotAllowed, NotFound, RuleBroken, StaleVersion
from directory.identifiers import upn_check_letter
from directory.models import Child, ChildChange, ChildVersion, InvolvementCreate, Role, ShieldSet
from search.embedded import EmbeddedBackend
from search.indexer import drain
from search.matching import MatchingEngine
from search.port import SearchQuery
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
    next_nhs_number,
)

ADMIN = actor(Role.DIRECTORY_ADMIN, subject="admin")


def _rows(session: Session, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    sqlite = session.get_bind().dialect.name == "sqlite"  # (a uuid is stored as hex there)
    bound = {k: v.hex if sqlite and isinstance(v, uuid.UUID) else v for k, v in params.items()}
    return [tuple(r) for r in session.execute(sa.text(sql), bound).all()]


def _change(
    session: Session, child_id: uuid.UUID, body: dict[str, Any], who: Any = ADMIN, **kw: Any
) -> list[str]:
    return service.change_child(
        session,
        actor=who,
        child_id=child_id,
        change=ChildChange.model_validate(body),
        today=date.today(),
        source="test",
        **kw,
    )


def _state(session: Session, child_id: uuid.UUID) -> tuple[Any, ...]:
    """Everything a failed change must leave as it was."""
    session.expire_all()
    child = session.get(Child, child_id)
    assert child is not None
    return (
        child.version,
        child.date_of_birth,
        _rows(session, "SELECT count(*) FROM child_version WHERE child_id = :c", c=child_id),
        _rows(session, "SELECT count(*) FROM audit_event"),
        _rows(session, "SELECT count(*) FROM outbox"),
        _rows(
            session,
            "SELECT use, given, family, until FROM child_name WHERE child_id = :c ORDER BY use",
            c=child_id,
        ),
        _rows(
            session,
            "SELECT postcode, until FROM child_address WHERE child_id = :c ORDER BY postcode",
            c=child_id,
        ),
    )


def test_create_writes_version_one(session: Session) -> None:
    child_id = make_child(session)
    rows = _rows(
        session, "SELECT version, changed, source, role FROM child_version WHERE child_id = :c", c=child_id
    )
    assert rows == [(1, "created", "app", "directory_admin")]


def test_each_field_changes_and_is_kept_as_a_version(session: Session) -> None:
    make_locality(session, code="EAST", areas=("OX4",))
    west = make_locality(session, code="WEST", areas=("OX2",))
    school = make_org(session, name="Cherwell School")
    gp = make_org(session, name="Jericho Health Centre", kind="gp_practice")
    child_id = make_child(session)
    person = _rows(session, "SELECT id FROM related_person WHERE child_id = :c", c=child_id)[0][0]
    upn = upn_check_letter("123456789012") + "123456789012"
    steps: list[tuple[dict[str, Any], list[str]]] = [
        ({"official_name": {"given": "Olivia", "family": "Jones"}}, ["name"]),
        ({"add_names": [{"given": "Liv", "family": "Jones", "use": "usual"}]}, ["other names"]),
        ({"date_of_birth": (date.today() - timedelta(days=365 * 7)).isoformat()}, ["date of birth"]),
        ({"sex": "other"}, ["sex"]),
        ({"address": {"line1": "2 Walton Street", "postcode": "ox2 6ae"}}, ["address"]),
        ({"school_id": str(school.id), "gp_practice_id": str(gp.id)}, ["school", "gp practice"]),
        ({"add_related_people": [{"name": "Tom Jones", "relationship": "father"}]}, ["related people"]),
        (
            {"parental_responsibility": [{"id": str(person), "parental_responsibility": False}]},
            ["related people"],
        ),
        ({"end_related_people": [{"id": str(person)}]}, ["related people"]),
        ({"identifiers": [{"system": "upn", "value": upn}]}, ["upn"]),
        ({"school_id": None}, ["school"]),
    ]
    for version, (body, expected) in enumerate(steps, start=2):
        assert _change(session, child_id, body) == expected
        child = session.get(Child, child_id)
        assert child is not None and child.version == version
        snap = _rows(
            session,
            "SELECT changed FROM child_version WHERE child_id = :c AND version = :v",
            c=child_id,
            v=version,
        )
        assert snap == [(", ".join(expected),)]
    child = session.get(Child, child_id)
    assert child is not None
    assert child.locality_id == west.id  # recomputed from the new postcode
    assert child.school_id is None and child.gp_practice_id == gp.id
    names = _rows(
        session, "SELECT use, given, family FROM child_name WHERE child_id = :c ORDER BY use", c=child_id
    )
    assert names == [
        ("official", "Olivia", "Jones"),
        ("previous", "Olivia", "Smith"),
        ("usual", "Liv", "Jones"),
    ]
    addresses = _rows(
        session, "SELECT postcode, until FROM child_address WHERE child_id = :c ORDER BY postcode", c=child_id
    )
    assert [(p, u and str(u)) for p, u in addresses] == [
        ("OX2 6AE", None),
        ("OX4 1AB", date.today().isoformat()),
    ]
    assert [p.name for p in service.repo.related_people(session, child_id)] == ["Tom Jones"]
    first = json.loads(
        _rows(session, "SELECT snapshot FROM child_version WHERE child_id = :c AND version = 1", c=child_id)[
            0
        ][0]
    )
    assert first["names"][0]["family"] == "Smith" and first["address"]["postcode"] == "OX4 1AB"
    # the same change again changes nothing and makes no version
    assert (
        _change(
            session,
            child_id,
            {"sex": "other", "address": {"line1": "2 Walton Street", "postcode": "OX2 6AE"}},
        )
        == []
    )
    assert session.get(Child, child_id).version == len(steps) + 1  # type: ignore[union-attr]


def test_the_audit_event_names_fields_never_values(session: Session) -> None:
    child_id = make_child(session)
    _change(
        session,
        child_id,
        {
            "official_name": {"given": "Zebedee", "family": "Quartermain"},
            "address": {"line1": "9 Secret Road", "postcode": "OX4 2ZZ"},
        },
    )
    details = _rows(session, "SELECT detail FROM audit_event WHERE action = 'child.details.change'")
    assert [json.loads(d) for (d,) in details] == [{"changed": "name, address", "source": "test"}]
    everything = " ".join(str(r) for r in _rows(session, "SELECT * FROM audit_event"))
    for value in ("Zebedee", "Quartermain", "Secret", "OX4 2ZZ"):
        assert value not in everything
    assert _rows(session, "SELECT count(*) FROM outbox WHERE entity_id = :e", e=child_id.hex)[0][0] >= 2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"address": {"line1": "1 Road", "postcode": "NOT A PC"}}, InvalidInput),
        ({"date_of_birth": (date.today() + timedelta(days=3)).isoformat()}, InvalidInput),
        ({"date_of_birth": "1990-01-01"}, RuleBroken),
        ({"school_id": str(uuid.uuid4())}, NotFound),
        ({"end_related_people": [{"id": str(uuid.uuid4())}]}, NotFound),
        ({"identifiers": [{"system": "nhs", "value": "1234567890"}]}, InvalidInput),
        ({"born_on": date.today().isoformat()}, InvalidInput),  # already born
    ],
)
def test_bad_input_changes_nothing(session: Session, body: dict[str, Any], error: type[Exception]) -> None:
    child_id = make_child(session)
    # a valid part alongside the bad one must not be written either
    body = {"official_name": {"given": "New", "family": "Name"}, "sex": "male", **body}
    before = _state(session, child_id)
    with pytest.raises(error):
        _change(session, child_id, body)
    assert _state(session, child_id) == before


def test_an_impossible_date_is_refused_by_the_shape() -> None:
    with pytest.raises(ValueError):
        ChildChange.model_validate({"date_of_birth": "2020-02-30"})


def test_unborn_child_is_born_on_the_same_record(session: Session) -> None:
    child_id = make_child(
        session, date_of_birth=None, expected_delivery_date=(date.today() + timedelta(days=10)).isoformat()
    )
    assert _change(session, child_id, {"born_on": date.today().isoformat()}) == ["date of birth"]
    child = session.get(Child, child_id)
    assert child is not None and child.date_of_birth == date.today() and child.expected_delivery_date is None


def test_a_stale_version_is_refused(session: Session) -> None:
    child_id = make_child(session)
    _change(session, child_id, {"sex": "male"}, expected_version=1)
    before = _state(session, child_id)
    with pytest.raises(StaleVersion):
        _change(session, child_id, {"sex": "female"}, expected_version=1)
    assert _state(session, child_id) == before


def test_an_identifier_held_by_another_record_is_refused(session: Session) -> None:
    nhs = next_nhs_number()
    make_child(session, identifiers=[{"system": "nhs", "value": nhs}])
    child_id = make_child(session)
    with pytest.raises(Conflict):
        _change(session, child_id, {"identifiers": [{"system": "nhs", "value": nhs}]})


def _involved(session: Session, child_id: uuid.UUID, role: Role = Role.PRACTITIONER) -> Any:
    """A practitioner of a service actively involved with the child (not named on the involvement)."""
    org = make_org(session, name=f"Trust {uuid.uuid4().hex[:6]}", kind="nhs_trust")
    svc = make_service(session, org)
    who = make_practitioner(session, org)
    service.record_involvement(
        session,
        actor=actor(Role.LOCAL_DELIVERY_TEAM, subject="ldt"),
        child_id=child_id,
        data=InvolvementCreate(
            service_id=svc.id, role="health visitor", level_of_need=1, start_date=date.today()
        ),
    )
    return actor(role, subject=f"p-{who.id.hex[:6]}", practitioner_id=who.id)


def test_a_practitioner_whose_service_is_involved_may_change_details(session: Session) -> None:
    child_id = make_child(session)
    involved = _involved(session, child_id)
    assert _change(session, child_id, {"sex": "male"}, who=involved) == ["sex"]
    other = make_child(session)  # the same practitioner on a child their service is not involved with
    with pytest.raises(NotAllowed):
        _change(session, other, {"sex": "male"}, who=involved)


def test_who_may_change_what(session: Session) -> None:
    child_id = make_child(session)
    stranger = actor(Role.PRACTITIONER, subject="stranger", practitioner_id=make_practitioner(session).id)
    with pytest.raises(NotAllowed):
        _change(session, child_id, {"sex": "male"}, who=stranger)
    for role in (Role.AUDITOR, Role.ADOPTION_OFFICER):
        with pytest.raises(NotAllowed):
            _change(session, child_id, {"sex": "male"}, who=actor(role, subject="x"))
    for role in (Role.DATA_MANAGER, Role.SYSTEM, Role.LOCAL_DELIVERY_TEAM):
        _change(
            session,
            child_id,
            {"sex": "male" if role != Role.SYSTEM else "female"},
            who=actor(role, subject="x"),
        )


def test_shield_rules(session: Session) -> None:
    child_id = make_child(session)
    service.set_shield(session, actor=ADMIN, child_id=child_id, data=ShieldSet(reason="fleeing violence"))
    assert _rows(
        session, "SELECT version, changed FROM child_version WHERE child_id = :c ORDER BY version", c=child_id
    ) == [
        (1, "created"),
        (2, "shield"),
    ]
    move = {"address": {"line1": "1 New Road", "postcode": "OX4 3AA"}}
    before = _state(session, child_id)
    with pytest.raises(NotAllowed) as refused:
        _change(session, child_id, move, who=ADMIN)
    assert "designated practitioner" in refused.value.message
    assert _state(session, child_id) == before
    assert _change(session, child_id, {"sex": "male"}, who=ADMIN) == ["sex"]  # other fields: yes
    designated = actor(Role.DESIGNATED_PRACTITIONER, subject="dp", localities=())
    with pytest.raises(NotAllowed):  # not involved: the same refusal as for an unshielded child
        _change(session, child_id, move, who=designated)
    involved = _involved(session, child_id)
    with pytest.raises(NotAllowed):  # involved but not a shield viewer: not the address
        _change(
            session,
            child_id,
            {"add_related_people": [{"name": "A B", "relationship": "carer"}]},
            who=involved,
        )
    assert _change(
        session, child_id, move, who=_involved(session, child_id, Role.DESIGNATED_PRACTITIONER)
    ) == ["address"]
    move = {"address": {"line1": "2 New Road", "postcode": "OX4 3AB"}}
    assert _change(session, child_id, move, who=actor(Role.SYSTEM, subject="feed")) == ["address"]


def test_refusal_of_a_stranger_does_not_reveal_the_shield(session: Session) -> None:
    plain, shielded = make_child(session), make_child(session)
    service.set_shield(session, actor=ADMIN, child_id=shielded, data=ShieldSet(reason="r"))
    stranger = actor(Role.PRACTITIONER, subject="stranger", practitioner_id=make_practitioner(session).id)
    messages = []
    for child_id in (plain, shielded):
        with pytest.raises(NotAllowed) as refused:
            _change(session, child_id, {"address": {"line1": "1 Road", "postcode": "OX4 3AA"}}, who=stranger)
        messages.append((refused.value.message, refused.value.data))
    assert messages[0] == messages[1]


def test_demographics_and_address_go_through_the_same_versions(engine: Engine, session: Session) -> None:
    child_id = make_child(session)
    service.change_address(
        session, actor=ADMIN, child_id=child_id, line1="3 Road", postcode="OX4 2AA", since=date.today()
    )
    rows = _rows(
        session, "SELECT version, changed FROM child_version WHERE child_id = :c ORDER BY version", c=child_id
    )
    assert rows == [(1, "created"), (2, "address")]


def test_parallel_changes_against_one_version_exactly_one_wins(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        child_id = make_child(s)
    tries = 8
    barrier = threading.Barrier(tries)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            with unit_of_work(engine) as s:
                _change(
                    s, child_id, {"official_name": {"given": f"G{i}", "family": "Race"}}, expected_version=1
                )
            return "won"
        except StaleVersion:
            return "stale"

    with ThreadPoolExecutor(tries) as pool:
        outcomes = list(pool.map(attempt, range(tries)))
    assert outcomes.count("won") == 1 and outcomes.count("stale") == tries - 1
    with Session(engine) as s:
        assert _rows(s, "SELECT version FROM child") == [(2,)]
        assert _rows(s, "SELECT count(*) FROM child_name WHERE use = 'official'") == [(1,)]
        assert _rows(s, "SELECT count(*) FROM child_version") == [(2,)]


def test_merged_and_archived_records_are_not_changed(session: Session) -> None:
    kept, duplicate, old = make_child(session), make_child(session), make_child(session)
    service.merge_children(session, actor=ADMIN, duplicate_id=duplicate, into_id=kept)
    with pytest.raises(RuleBroken, match="merged"):
        _change(session, duplicate, {"sex": "male"})
    record = session.get(Child, old)
    assert record is not None
    record.status = "archived"
    session.add(record)
    session.flush()
    # a data manager may read an archived record, and is told it cannot change; an admin may not read
    # it, and is answered as for an unknown id (the refusal must not say the record exists)
    with pytest.raises(RuleBroken, match="archived"):
        _change(session, old, {"sex": "male"}, who=actor(Role.DATA_MANAGER, subject="dm"))
    with pytest.raises(NotFound, match="No child record has that id"):
        _change(session, old, {"sex": "male"})


def test_the_index_sees_the_change(engine: Engine) -> None:
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    born = date.today() - timedelta(days=365 * 6)
    with unit_of_work(engine) as s:
        child_id = make_child(
            s, names=[{"given": "Isla", "family": "Fairweather"}], date_of_birth=born.isoformat()
        )
    drain(engine, backend, wait=True)
    with unit_of_work(engine) as s:
        _change(s, child_id, {"official_name": {"given": "Isla", "family": "Pemberton"}})
    engine_ = MatchingEngine(backend)
    query = SearchQuery(given="Isla", family="Pemberton", birth_date=born)
    before = engine_.search(query).matches
    assert not before or "family" not in before[0].agreed  # the index still holds the old surname
    drain(engine, backend, wait=True)
    found = engine_.search(query).matches
    assert found and found[0].child_id == child_id.hex and "family" in found[0].agreed


def test_a_record_loaded_in_bulk_has_its_current_state_as_history(session: Session) -> None:
    child_id = make_child(session)
    session.execute(sa.delete(ChildVersion))  # as an import leaves it
    _child, versions = service.child_history(session, actor=ADMIN, child_id=child_id)
    assert [(v.version, v.role, v.changed) for v in versions] == [(1, "not recorded", [])]
    assert versions[0].details is not None and versions[0].details["names"][0]["given"] == "Olivia"
    assert _rows(session, "SELECT count(*) FROM child_version") == [(0,)]  # a read writes no version


def test_a_data_manager_acts_only_within_the_localities_of_their_grant(session: Session) -> None:
    make_locality(session, code="EAST", areas=("OX4",))
    child_id = make_child(session)  # OX4: EAST
    west_only = actor(Role.DATA_MANAGER, subject="dm-west", localities=("WEST",))
    with pytest.raises(NotAllowed):
        _change(session, child_id, {"sex": "male"}, who=west_only)
    east = actor(Role.DATA_MANAGER, subject="dm-east", localities=("EAST",))
    assert _change(session, child_id, {"sex": "male"}, who=east) == ["sex"]


def test_history_withholds_what_a_reader_may_not_see_of_a_shielded_record(session: Session) -> None:
    child_id = make_child(session, names=[{"given": "Maya", "family": "Birthname"}])
    _change(session, child_id, {"official_name": {"given": "Maya", "family": "Newname"}})
    service.set_shield(session, actor=ADMIN, child_id=child_id, data=ShieldSet(reason="adopted"))
    reader = actor(Role.PRACTITIONER, subject="reader", organisation="Elsewhere")
    _child, versions = service.child_history(session, actor=reader, child_id=child_id)
    assert [v.changed for v in versions] == [["created"], [], ["shield"]]  # the name change withheld
    shown = json.dumps([v.model_dump(mode="json") for v in versions])
    for withheld in ("Birthname", "Newname", "High Street", "OX4", "Jane Smith"):
        assert withheld not in shown
    assert all(v.organisation is None for v in versions)
    designated = actor(Role.DESIGNATED_PRACTITIONER, subject="dp")
    _child, full = service.child_history(session, actor=designated, child_id=child_id)
    assert [v.changed for v in full] == [["created"], ["name"], ["shield"]]
    assert full[0].details is not None and full[0].details["names"][0]["family"] == "Birthname"
    assert full[0].organisation == "Test Org"  # the author's, to a reader of the access log
    events = _rows(session, "SELECT count(*) FROM audit_event WHERE action = 'child.history.read'")
    assert events == [(2,)]
