"""Round trips domain -> FHIR -> domain for every mapping, and R4B validation of every emitted resource."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from fhir.resources.R4B import get_fhir_model_class

from directory.errors import (
    CafAlreadyOpen,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    RuleBroken,
    StaleVersion,
)
from directory.models import (
    AddressRead,
    AuditEvent,
    CafRead,
    ChildCard,
    ConsentRead,
    Contact,
    IdentifierRead,
    LeadProfessionalRead,
    Locality,
    NameRead,
    Organisation,
    Practitioner,
    RelatedPersonRead,
    Service,
    ShieldNotice,
    Tac,
)
from interop import mapping as m
from interop import systems as S
from interop.outcome import from_domain

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _valid(resource: dict) -> dict:
    """Re-validate what a mapper emitted with the R4B model, independently of the mapper."""
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)
    return resource


def _card(**overrides: object) -> ChildCard:
    body: dict = {
        "id": uuid.uuid4(),
        "status": "active",
        "names": [
            NameRead(given="Olivia", middle="Rose", family="Smith", use="official"),
            NameRead(given="Liv", family="Smith", use="usual"),
            NameRead(given="Olivia", family="Jones", use="previous", until=date(2020, 1, 1)),
            NameRead(given="Ollie", family="Smith", use="alias"),
        ],
        "date_of_birth": date(2018, 5, 4),
        "expected_delivery_date": None,
        "age_years": 7,
        "sex": "female",
        "identifiers": [
            IdentifierRead(system="nhs", value="9434765919"),
            IdentifierRead(system="upn", value="A123456789012"),
            IdentifierRead(system="local:mosaic", value="M-1"),
        ],
        "shielded": False,
        "address": AddressRead(
            line1="1 High Street", line2="Flat 2", town="Oxford", postcode="OX4 1AB", since=date(2021, 2, 3)
        ),
        "gp_practice": Contact(name="Cowley Road Surgery"),
    }
    body.update(overrides)
    return ChildCard(**body)


def test_patient_round_trip_keeps_names_identifiers_address_and_gp() -> None:
    card = _card()
    gp = uuid.uuid4()
    res = _valid(m.patient(card, m.PatientExtras(version=3, updated_at=NOW, gp_practice_id=gp)))
    assert res["meta"]["versionId"] == "3"
    assert {"system": S.NHS_NUMBER, "value": "9434765919"} in res["identifier"]
    assert [n["use"] for n in res["name"]] == ["official", "usual", "old", "nickname"]
    back = m.patient_in(res)
    assert back.id == card.id
    assert back.identifiers == [{"system": i.system, "value": i.value} for i in card.identifiers]
    assert [(n["given"], n["middle"], n["family"], n["use"], n["until"]) for n in back.names] == [
        (n.given, n.middle, n.family, n.use, n.until) for n in card.names
    ]
    assert back.date_of_birth == card.date_of_birth and back.sex == "female"
    assert back.address == {
        "line1": "1 High Street",
        "line2": "Flat 2",
        "town": "Oxford",
        "postcode": "OX4 1AB",
        "since": date(2021, 2, 3),
    }
    assert back.gp_practice_id == gp


def test_a_shielded_patient_withheld_from_the_caller_has_no_address_and_says_whom_to_ask() -> None:
    ask = Contact(name="City Early Help Team", phone="01632 960100")
    card = _card(
        shielded=True, address=None, gp_practice=None, shield_notice=ShieldNotice(message="shielded", ask=ask)
    )
    res = _valid(m.patient(card, m.PatientExtras(version=1, gp_practice_id=uuid.uuid4())))
    assert "address" not in res and "generalPractitioner" not in res
    assert res["meta"]["security"][0]["code"] == "R"
    ext = {e["url"]: e for e in res["extension"]}
    assert ext[S.EXT_ASK]["valueContactDetail"]["name"] == "City Early Help Team"
    assert m.patient_in(res).shielded is True


def test_an_unborn_child_carries_the_expected_date_of_delivery() -> None:
    card = _card(date_of_birth=None, expected_delivery_date=date(2026, 6, 1), sex="unknown")
    res = _valid(m.patient(card, m.PatientExtras(version=1)))
    assert "birthDate" not in res
    assert m.patient_in(res).expected_delivery_date == date(2026, 6, 1)


def test_patient_in_refuses_invalid_codes_and_unknown_systems() -> None:
    with pytest.raises(m.MappingError, match="administrative gender"):
        m.patient_in({"resourceType": "Patient", "gender": "woman"})
    # Another organisation's system is kept exactly as sent (issue #22); a system that is no URI is refused.
    kept = m.patient_in({"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}]})
    assert kept.identifiers == [{"system": "urn:x", "value": "1"}]
    with pytest.raises(m.MappingError) as err:
        m.patient_in({"resourceType": "Patient", "identifier": [{"system": "mosaic", "value": "1"}]})
    assert err.value.code == "code-invalid"
    with pytest.raises(m.MappingError, match="not valid FHIR"):
        m.patient_in({"resourceType": "Patient", "birthDate": "yesterday"})


def test_related_person_round_trip() -> None:
    child = uuid.uuid4()
    for rel in ("mother", "foster carer", "aunt"):
        person = RelatedPersonRead(
            id=uuid.uuid4(),
            name="Jane Smith",
            relationship=rel,
            parental_responsibility=rel == "mother",
            phone="07700 900001",
            email="jane@example.com",
        )
        res = _valid(m.related_person(person, child))
        child_id, back = m.related_person_in(res)
        assert child_id == child
        assert back == {
            "name": "Jane Smith",
            "relationship": rel,
            "parental_responsibility": rel == "mother",
            "phone": "07700 900001",
            "email": "jane@example.com",
        }


def test_organization_round_trip() -> None:
    org = Organisation(
        id=uuid.uuid4(),
        name="Cowley Road Surgery",
        kind="gp_practice",
        ods_code="K84001",
        phone="01632 960400",
        email="s@example.nhs.uk",
        postcode="OX4 1XX",
    )
    back = m.organization_in(_valid(m.organization(org)))
    assert back == {
        "name": org.name,
        "kind": org.kind,
        "ods_code": "K84001",
        "urn": None,
        "phone": org.phone,
        "email": org.email,
        "postcode": "OX4 1XX",
    }


def test_practitioner_and_practitioner_role_round_trip() -> None:
    p = Practitioner(
        id=uuid.uuid4(),
        name="Hannah Vale",
        role="health visitor",
        organisation_id=uuid.uuid4(),
        phone="07700 900200",
        email="h.vale@example.nhs.uk",
        version=2,
    )
    _valid(m.practitioner(p))
    role = _valid(m.practitioner_role(p, "Demoshire Community Health"))
    assert role["telecom"][0] == {"system": "phone", "value": "07700 900200", "use": "work"}
    back = m.practitioner_role_in(role)
    assert (back.name, back.role, back.organisation_id, back.phone, back.email, back.active) == (
        p.name,
        p.role,
        p.organisation_id,
        p.phone,
        p.email,
        True,
    )


def test_healthcare_service_round_trip_keeps_level_tier_coverage_and_sensitivity() -> None:
    svc = Service(
        id=uuid.uuid4(),
        name="Young People's Sexual Health",
        service_type="sexual_health",
        organisation_id=uuid.uuid4(),
        level_of_need=2,
        tier="aligned",
        phone="01632 960500",
        sensitive=True,
        sensitive_category="sexual_health",
    )
    areas = [uuid.uuid4(), uuid.uuid4()]
    fields, back_areas = m.healthcare_service_in(_valid(m.healthcare_service(svc, areas)))
    assert back_areas == areas
    assert fields == {
        "name": svc.name,
        "service_type": "sexual_health",
        "organisation_id": svc.organisation_id,
        "level_of_need": 2,
        "tier": "aligned",
        "phone": svc.phone,
        "email": None,
        "sensitive": True,
        "sensitive_category": "sexual_health",
    }


def test_location_round_trip() -> None:
    loc = Locality(
        id=uuid.uuid4(),
        code="CITY",
        name="City locality",
        authority="Demoshire",
        team_name="City Early Help Team",
        team_phone="01632 960100",
        team_email="city@example.gov.uk",
    )
    back = m.location_in(_valid(m.location(loc, ["OX4", "OX3 7"])))
    assert back == {
        "code": "CITY",
        "name": loc.name,
        "authority": "Demoshire",
        "team_name": loc.team_name,
        "team_phone": loc.team_phone,
        "team_email": loc.team_email,
    }


def _row(**overrides: object) -> m.EpisodeRow:
    body: dict = dict(
        id=uuid.uuid4(),
        child_id=uuid.uuid4(),
        service_id=uuid.uuid4(),
        service_name="Health Visiting",
        service_type="health_visiting",
        organisation_id=uuid.uuid4(),
        organisation_name="Trust",
        practitioner_id=uuid.uuid4(),
        practitioner_name="Hannah Vale",
        role="health visitor",
        level_of_need=1,
        start_date=date(2025, 1, 2),
        end_date=None,
        status="active",
        sensitive=False,
        consent_id=None,
        source="app",
        last_confirmed_at=NOW,
        version=4,
    )
    body.update(overrides)
    return m.EpisodeRow(**body)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"status": "ended", "end_date": date(2025, 6, 1)},
        {"sensitive": True, "consent_id": uuid.uuid4(), "practitioner_id": None, "practitioner_name": None},
    ],
)
def test_episode_of_care_round_trip(overrides: dict) -> None:
    row = _row(**overrides)
    res = _valid(m.episode_of_care(row))
    assert res["meta"]["versionId"] == "4"
    back = m.episode_of_care_in(res)
    assert (
        back.child_id,
        back.service_id,
        back.practitioner_id,
        back.role,
        back.level_of_need,
        back.start_date,
        back.end_date,
        back.status,
        back.sensitive,
        back.consent_id,
        back.source,
    ) == (
        row.child_id,
        row.service_id,
        row.practitioner_id,
        row.role,
        row.level_of_need,
        row.start_date,
        row.end_date,
        row.status,
        row.sensitive,
        row.consent_id,
        row.source,
    )


def test_episode_of_care_in_refuses_bad_codes_and_missing_service() -> None:
    res = m.episode_of_care(_row())
    with pytest.raises(m.MappingError) as err:
        m.episode_of_care_in({**res, "status": "paused"})
    assert err.value.code == "code-invalid"
    with pytest.raises(m.MappingError) as err:
        m.episode_of_care_in({**res, "status": "waitlist"})
    assert err.value.code == "not-supported"
    with pytest.raises(m.MappingError) as err:
        m.episode_of_care_in({**res, "extension": []})
    assert err.value.code == "required"
    bad_level = [
        e
        if e["url"] != S.EXT_LEVEL_OF_NEED
        else {**e, "valueCoding": {"system": S.LEVEL_OF_NEED, "code": "7"}}
        for e in res["extension"]
    ]
    with pytest.raises(m.MappingError, match="1-4"):
        m.episode_of_care_in({**res, "extension": bad_level})


def test_care_team_round_trip_codes_the_lead_professional() -> None:
    child = uuid.uuid4()
    tac = Tac(
        id=uuid.uuid4(),
        child_id=child,
        assessment_id=uuid.uuid4(),
        status="convened",
        family_participating=True,
        convened_at=NOW,
        next_review_date=date(2026, 4, 1),
        version=2,
    )
    members = [
        m.TeamMember(uuid.uuid4(), "Sam Carter", "SENCO"),
        m.TeamMember(uuid.uuid4(), "Hannah Vale", "health visitor"),
        m.TeamMember(uuid.uuid4(), "Yusuf Ali", "youth worker"),
    ]
    res = _valid(m.care_team(tac, members, lead_practitioner_id=members[0].practitioner_id))
    lp = res["participant"][0]["role"][0]["coding"][0]
    assert (lp["system"], lp["code"]) == (S.CARE_TEAM_ROLE, m.LEAD_PROFESSIONAL)
    back = m.care_team_in(res)
    assert back.child_id == child and back.status == "convened"
    assert back.members == [(x.practitioner_id, x.role) for x in members]
    assert back.lead_practitioner_id == members[0].practitioner_id
    assert back.family_participating is True and back.next_review_date == date(2026, 4, 1)


def test_flags_round_trip_caf_status_and_lead_professional() -> None:
    holder = Contact(name="Sam Carter", role="SENCO", organisation="Cowley School", phone="07700 900123")
    caf = CafRead(id=uuid.uuid4(), status="in_progress", holder=holder, signalled_at=NOW)
    lead_id = uuid.uuid4()
    lead = LeadProfessionalRead(practitioner_id=lead_id, contact=holder, since=NOW, reason="initiator")
    card = _card(caf=caf, lead_professional=lead)
    flags = [_valid(f) for f in m.flags(card, caf_holder_id=lead_id)]
    assert [f["id"] for f in flags] == [f"caf-{caf.id.hex}", f"lp-{card.id.hex}"]
    assert "contact Sam Carter" in flags[0]["code"]["text"]
    caf_back, lp_back = (m.flag_in(f) for f in flags)
    assert (caf_back.kind, caf_back.caf_status, caf_back.active, caf_back.practitioner_id) == (
        "caf",
        "in_progress",
        True,
        lead_id,
    )
    assert (lp_back.kind, lp_back.active, lp_back.practitioner_id, lp_back.child_id) == (
        "lead-professional",
        True,
        lead_id,
        card.id,
    )
    closed = m.caf_flag(
        card.id, caf.model_copy(update={"status": "closed", "closed_at": NOW}), holder_id=lead_id
    )
    assert m.flag_in(_valid(closed)).active is False


def test_consent_round_trip_including_withdrawal() -> None:
    child = uuid.uuid4()
    c = ConsentRead(
        id=uuid.uuid4(),
        scope="caf",
        given_by_kind="parent_carer",
        given_by_name="Jane Smith",
        given_at=NOW,
        withdrawn_at=datetime(2026, 3, 5, tzinfo=UTC),
        withdrawn_reason="changed mind",
        current=False,
    )
    res = _valid(m.consent(c, child))
    assert res["status"] == "inactive"
    back = m.consent_in(res)
    assert (back.child_id, back.active) == (child, False)
    assert back.create_fields() == {
        "scope": "caf",
        "given_by_kind": "parent_carer",
        "given_by_name": "Jane Smith",
        "related_person_id": None,
        "given_at": NOW,
        "young_person_competent": None,
    }


def test_audit_event_round_trip_carries_the_chain() -> None:
    target = uuid.uuid4()
    e = AuditEvent(
        seq=7,
        at=NOW,
        request_id="req-12345678",
        actor_subject="trust-hv",
        actor_role="system",
        actor_organisation="Trust",
        client_id="trust-hv",
        purpose="direct-care",
        action="child.read",
        target_type="child",
        target_id=str(target),
        outcome="success",
        prev_hash="a" * 64,
        hash="b" * 64,
    )
    back = m.audit_event_in(_valid(m.audit_event(e)))
    assert back == {
        "seq": 7,
        "action": "child.read",
        "actor_subject": "trust-hv",
        "actor_role": "system",
        "actor_organisation": "Trust",
        "client_id": "trust-hv",
        "purpose": "direct-care",
        "outcome": "success",
        "target_id": str(target),
        "prev_hash": "a" * 64,
        "hash": "b" * 64,
        "request_id": "req-12345678",
    }


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound("x"), 404, "not-found"),
        (CafAlreadyOpen("x"), 409, "conflict"),
        (StaleVersion("x"), 412, "conflict"),
        (Conflict("x"), 409, "conflict"),
        (NotAllowed("x"), 403, "forbidden"),
        (RuleBroken("x"), 422, "business-rule"),
        (InvalidInput("x"), 400, "invalid"),
    ],
)
def test_domain_errors_map_once_to_status_and_issue_code(error: Exception, status: int, code: str) -> None:
    fe = from_domain(error)  # type: ignore[arg-type]
    assert (fe.status, fe.code) == (status, code)


def test_identifier_systems_are_declared_once_and_reversible() -> None:
    for domain in ("nhs", "upn", "local:mosaic"):
        assert S.domain_identifier_system(S.fhir_identifier_system(domain)) == domain
    assert S.fhir_identifier_system("nhs") == "https://fhir.nhs.uk/Id/nhs-number"
    assert S.domain_identifier_system("urn:other") is None
