"""Sensitive means invisible: a child sees a sexual health nurse (with the young person's consent),
and the nurse holds the CAF, is Lead Professional and sits in the TAC. A practitioner who may not
see sensitive involvements learns nothing of it on any surface: the card, search hits, every FHIR
read and search a client could make, the pages. A designated practitioner sees it (so each check
can fail). Withdrawing the consent hides the involvement from everyone at once, and the nurse stays
unnamed. Real tokens, production mode, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory import service
from directory.db import unit_of_work
from directory.models import (
    CafSignal,
    CafStart,
    ConsentCreate,
    ConsentWithdraw,
    InvolvementCreate,
    Role,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from search.indexer import drain
from tests.fixtures.auth_builders import bearer, make_grant, token_for
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)

LEAKS = ("Nia Patel", "sexual", "Sexual", "07700 900254", "nia.patel@")
SCOPES = (
    "directory.search",
    "directory.write",
    *(
        f"user/{t}.rs"
        for t in ("Patient", "Flag", "CareTeam", "Consent", "EpisodeOfCare", "RelatedPerson", "Practitioner")
    ),
)


@dataclass
class Sensitive:
    child: uuid.UUID
    nia: uuid.UUID
    consent: uuid.UUID
    tac: uuid.UUID


@pytest.fixture
def sensitive(api: TestClient, engine: Engine) -> Sensitive:
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
        school = make_org(s, name="Cowley School", kind="school")
        trust = make_org(s, name="Demoshire Health", kind="nhs_trust")
        clinic = make_service(
            s,
            trust,
            name="Young People's Sexual Health",
            service_type="sexual_health",
            level_of_need=3,
            tier="aligned",
            sensitive=True,
            sensitive_category="sexual_health",
        )
        nia = make_practitioner(
            s,
            trust,
            name="Nia Patel",
            role="sexual health nurse",
            phone="07700 900254",
            email="nia.patel@nhs.example",
        ).id
        sam = make_practitioner(s, school, name="Sam Carter", role="SENCO").id
        tess = make_practitioner(s, trust, name="Tess Vale", role="health visitor").id
        make_practitioner(s, school, name="Olly Stone", role="class teacher", subject="olly")
        child = make_child(s, names=[{"given": "Maya", "family": "Okafor"}], date_of_birth="2011-02-03")
        as_nia = actor(subject="nia", practitioner_id=nia)
        consent = service.record_consent(
            s,
            actor=as_nia,
            child_id=child,
            data=ConsentCreate(
                scope="sensitive:sexual_health",
                given_by_kind="young_person",
                given_by_name="Maya Okafor",
                young_person_competent=True,
            ),
        ).id
        service.record_involvement(
            s,
            actor=as_nia,
            child_id=child,
            data=InvolvementCreate(
                service_id=clinic.id,
                practitioner_id=nia,
                role="sexual health nurse",
                level_of_need=3,
                start_date=date.today(),
                consent_id=consent,
            ),
        )
        caf = service.signal_caf(
            s,
            actor=as_nia,
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        caf_consent = service.record_consent(
            s,
            actor=as_nia,
            child_id=child,
            data=ConsentCreate(
                scope="caf",
                given_by_kind="young_person",
                given_by_name="Maya Okafor",
                young_person_competent=True,
            ),
        ).id
        service.start_caf(s, actor=as_nia, caf_id=caf.id, data=CafStart(consent_id=caf_consent), now=utcnow())
        tac = service.update_tac(
            s,
            actor=as_nia,
            caf_id=caf.id,
            data=TacUpdate(
                add_members=[TacMemberIn(practitioner_id=p, role="member") for p in (nia, sam, tess)]
            ),
            now=utcnow(),
        ).id
    drain(engine, api.app.state.search_backend, wait=True)  # type: ignore[attr-defined]
    return Sensitive(child=child, nia=nia, consent=consent, tac=tac)


def _headers(state: AuthState, engine: Engine, subject: str, role: Role) -> dict[str, str]:
    with unit_of_work(engine) as s:
        make_grant(s, subject, role=role, scopes=SCOPES)
    return {
        **bearer(token_for(state, subject, scopes=SCOPES, role=role), purpose="direct-care"),
        "Accept": "application/fhir+json",
    }


def every_surface(api: TestClient, h: dict[str, str], x: Sensitive) -> dict[str, str]:
    """Every answer a caller can get about the child, by surface."""
    child = x.child
    found = api.post(
        "/api/v1/children/search",
        headers=h,
        json={"given": "Maya", "family": "Okafor", "birth_date": "2011-02-03"},
    )
    answers = {
        "card": api.get(f"/api/v1/children/{child}", headers=h),
        "search": found,
        "search by GET": api.get(
            "/api/v1/children/search?given=Maya&family=Okafor&birth_date=2011-02-03", headers=h
        ),
        "Patient": api.get(f"/fhir/Patient/{child}", headers=h),
        "Patient?_revinclude": api.get(
            f"/fhir/Patient?_id={child}&_revinclude=Consent:patient&_revinclude=Flag:patient"
            "&_revinclude=CareTeam:patient&_revinclude=EpisodeOfCare:patient",
            headers=h,
        ),
        "Consent?patient": api.get(f"/fhir/Consent?patient={child}", headers=h),
        "Consent/id": api.get(f"/fhir/Consent/{x.consent}", headers=h),
        "Flag?patient": api.get(f"/fhir/Flag?patient={child}", headers=h),
        "Flag lp": api.get(f"/fhir/Flag/lp-{child.hex}", headers=h),
        "CareTeam?patient": api.get(f"/fhir/CareTeam?patient={child}", headers=h),
        "CareTeam/id": api.get(f"/fhir/CareTeam/{x.tac}", headers=h),
        "CareTeam?_include": api.get(
            f"/fhir/CareTeam?patient={child}&_include=CareTeam:participant", headers=h
        ),
        "EpisodeOfCare?patient": api.get(f"/fhir/EpisodeOfCare?patient={child}", headers=h),
        "EpisodeOfCare?care-manager": api.get(
            f"/fhir/EpisodeOfCare?patient={child}&care-manager=Practitioner/{x.nia}", headers=h
        ),
    }
    for name, r in answers.items():
        assert r.status_code in (200, 404), (name, r.status_code, r.text)
    return {name: r.text for name, r in answers.items()}


def _leaks(answers: dict[str, str]) -> dict[str, list[str]]:
    return {
        name: [leak for leak in LEAKS if leak in text]
        for name, text in answers.items()
        if any(leak in text for leak in LEAKS)
    }


def test_a_practitioner_learns_nothing_of_a_sensitive_involvement_anywhere(
    api: TestClient, engine: Engine, state: AuthState, sensitive: Sensitive
) -> None:
    olly = _headers(state, engine, "olly", Role.PRACTITIONER)
    answers = every_surface(api, olly, sensitive)
    assert _leaks(answers) == {}
    card = api.get(f"/api/v1/children/{sensitive.child}", headers=olly).json()
    assert card["caf"]["status"] == "in_progress" and card["caf"]["holder"] is None
    assert "East Early Help Team" in card["caf"]["advice"]
    assert card["involvements"] == [] and card["highest_level_of_need"] is None  # not counted either
    assert [c["scope"] for c in card["consents"]] == ["caf"]
    assert len(card["tac"]["members"]) == 2
    hit = api.post(
        "/api/v1/children/search",
        headers=olly,
        json={"given": "Maya", "family": "Okafor", "birth_date": "2011-02-03"},
    ).json()["hits"][0]["involvement"]
    assert hit["caf_status"] == "in_progress" and hit["caf_holder"] is None and hit["services_involved"] == 0
    assert "East Early Help Team" in hit["ask"]
    # The same for whoever may see it: a designated practitioner is told everything (the check can fail).
    designated = _headers(state, engine, "dee", Role.DESIGNATED_PRACTITIONER)
    seen = _leaks(every_surface(api, designated, sensitive))
    assert {"card", "Consent?patient", "Flag?patient", "CareTeam/id", "EpisodeOfCare?patient"} <= set(seen)


def test_withdrawn_consent_hides_it_from_everyone_and_the_nurse_stays_unnamed(
    api: TestClient, engine: Engine, state: AuthState, sensitive: Sensitive
) -> None:
    with unit_of_work(engine) as s:
        service.withdraw_consent(
            s,
            actor=actor(subject="nia", practitioner_id=sensitive.nia),
            consent_id=sensitive.consent,
            data=ConsentWithdraw(reason="the young person asked"),
        )
    olly = _headers(state, engine, "olly", Role.PRACTITIONER)
    assert _leaks(every_surface(api, olly, sensitive)) == {}
    designated = _headers(state, engine, "dee", Role.DESIGNATED_PRACTITIONER)
    card = api.get(f"/api/v1/children/{sensitive.child}", headers=designated).json()
    assert card["involvements"] == []  # hidden at once, for everyone


def test_the_pages_show_nothing_of_it_either(engine: Engine, sensitive: Sensitive) -> None:
    """The card page renders the same card: checked through a signed-in browser session."""
    from childindex.app import create_app
    from tests.auth.conftest import ISSUER
    from tests.fixtures.auth_builders import make_user
    from tests.web.world import World, page_client, sign_in, web_settings

    world = World()
    with unit_of_work(engine) as s:
        user = make_user(s, "olly-web")
        world.totp["olly-web"] = user.totp_secret
        make_grant(s, "olly-web", role=Role.PRACTITIONER)
    app = create_app(web_settings(ISSUER), engine=engine)
    with page_client(app, ISSUER) as browser:
        sign_in(browser, world, "olly-web")
        page = browser.get(f"/children/{sensitive.child}?purpose=direct-care")
        if "Why are you looking" in page.text or 'name="purpose"' in page.text:
            from tests.web.world import csrf_of

            browser.post(
                f"/children/{sensitive.child}/purpose",
                data={"csrf_token": csrf_of(page.text), "purpose": "direct-care"},
            )
            page = browser.get(f"/children/{sensitive.child}")
        assert page.status_code == 200 and "Maya" in page.text
        assert [leak for leak in LEAKS if leak in page.text] == []
        assert "East Early Help Team" in page.text
