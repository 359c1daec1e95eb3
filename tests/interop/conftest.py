"""The app in production mode with a connected trust system (a client-credentials token) and a small world."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.models import SubjectKind
from childindex.settings import Settings
from directory import service
from directory.db import unit_of_work
from directory.models import CafSignal, ConsentCreate, InvolvementCreate, Role, ServiceLocality, utcnow
from tests.fixtures.auth_builders import make_grant, token_for
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)

ISSUER = "http://testserver"
TRUST_SCOPES = (
    "system/Patient.rs",
    "system/EpisodeOfCare.rs",
    "system/EpisodeOfCare.cru",
    "system/Flag.rs",
    "system/CareTeam.rs",
    "system/CarePlan.rs",
    "system/Consent.rs",
    "system/RelatedPerson.rs",
    "system/Practitioner.rs",
    "system/PractitionerRole.rs",
    "system/PractitionerRole.cru",
    "system/Organization.rs",
    "system/HealthcareService.rs",
    "system/Location.rs",
)
FHIR = "application/fhir+json"


@pytest.fixture
def prod_settings() -> Settings:
    """Production settings: only access tokens get in."""
    return Settings(
        environment="production",
        database_url="sqlite://",
        issuer=ISSUER,
        secret_key="test-secret-key",
        search_rate_per_minute=10_000,
        trawl_distinct_children=10_000,
        fhir_max_bundle_entries=20,
    )


def system_headers(
    state: AuthState,
    engine: Engine,
    subject: str = "trust-hv",
    scopes: tuple[str, ...] = TRUST_SCOPES,
    purpose: str | None = "direct-care",
    role: Role = Role.SYSTEM,
    organisation: str = "RNU",
) -> dict[str, str]:
    """Headers of a connected system with a grant and a token carrying `scopes` (by default the
    community health trust's system, ODS code RNU, whose health visitors it acts for)."""
    kind = SubjectKind.CLIENT if role == Role.SYSTEM else SubjectKind.USER
    with unit_of_work(engine) as s:
        make_grant(s, subject, kind=kind, role=role, scopes=scopes, organisation=organisation)
    token = token_for(state, subject, kind=kind, scopes=scopes, role=role, client_id=subject)
    headers = {"Authorization": f"Bearer {token}", "Accept": FHIR}
    if purpose:
        headers["X-Purpose-Of-Use"] = purpose
    return headers


@dataclass
class World:
    """A child with an involvement, an open CAF and its Lead Professional; a catalogue around it."""

    child: uuid.UUID
    nhs: str
    shielded_child: uuid.UUID
    shielded_nhs: str
    trust: uuid.UUID
    school: uuid.UUID
    hv_service: uuid.UUID
    school_service: uuid.UUID
    school_nursing: uuid.UUID  # run by the trust: its system records involvements of it
    sexual_health: uuid.UUID
    locality: uuid.UUID
    hv: uuid.UUID
    senco: uuid.UUID
    involvement: uuid.UUID
    sensitive_involvement: uuid.UUID
    caf: uuid.UUID


@pytest.fixture
def world(engine: Engine) -> World:
    """Build the world through the domain service."""
    return build_world(engine)


def build_world(engine: Engine) -> World:
    """The world, built through the domain service (for a fixture of any scope)."""
    from tests.fixtures.builders import next_nhs_number

    admin = actor(Role.DIRECTORY_ADMIN)
    nhs, shielded_nhs = next_nhs_number(), next_nhs_number()
    with unit_of_work(engine) as s:
        loc = make_locality(s)
        trust = make_org(s, name="Demoshire Community Health", kind="nhs_trust", ods_code="RNU")
        school = make_org(s, name="Cowley Primary School", kind="school", urn="123456")
        gp = make_org(s, name="Cowley Road Surgery", kind="gp_practice", ods_code="K84001")
        hv_service = make_service(s, trust)
        s.add(ServiceLocality(service_id=hv_service.id, locality_id=loc.id))
        school_nursing = make_service(s, trust, name="School Nursing", service_type="school_nursing")
        school_service = make_service(
            s, school, name="Cowley Pastoral Care", service_type="school", level_of_need=2
        )
        sexual = make_service(
            s,
            trust,
            name="Young People's Sexual Health",
            service_type="sexual_health",
            level_of_need=2,
            tier="aligned",
            sensitive=True,
            sensitive_category="sexual_health",
        )
        hv = make_practitioner(s, trust, name="Hannah Vale", role="health visitor")
        senco = make_practitioner(s, school, name="Sam Carter", role="SENCO")
        child = make_child(
            s,
            identifiers=[{"system": "nhs", "value": nhs}, {"system": "local:mosaic", "value": "M-1001"}],
            names=[
                {"given": "Olivia", "family": "Smith"},
                {"given": "Olivia", "family": "Jones", "use": "previous", "until": "2020-01-01"},
            ],
            gp_practice_id=gp.id,
        )
        shielded = make_child(
            s,
            identifiers=[{"system": "nhs", "value": shielded_nhs}],
            names=[{"given": "Amira", "family": "Khan"}],
        )
        inv = service.record_involvement(
            s,
            actor=admin,
            child_id=child,
            data=InvolvementCreate(
                service_id=hv_service.id,
                practitioner_id=hv.id,
                role="health visitor",
                level_of_need=1,
                start_date=date.today() - timedelta(days=100),
            ),
        )
        consent = service.record_consent(
            s,
            actor=admin,
            child_id=child,
            data=ConsentCreate(
                scope="sensitive:sexual_health",
                given_by_kind="young_person",
                given_by_name="Olivia Smith",
                young_person_competent=True,
            ),
        )
        sensitive = service.record_involvement(
            s,
            actor=admin,
            child_id=child,
            data=InvolvementCreate(
                service_id=sexual.id,
                role="sexual health nurse",
                level_of_need=2,
                start_date=date.today() - timedelta(days=10),
                sensitive=True,
                consent_id=consent.id,
            ),
        )
        caf = service.signal_caf(
            s,
            actor=actor(practitioner_id=senco.id, subject="sam"),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        service.record_involvement(
            s,
            actor=admin,
            child_id=shielded,
            data=InvolvementCreate(
                service_id=school_service.id,
                role="SENCO",
                level_of_need=2,
                start_date=date.today() - timedelta(days=5),
            ),
        )
        from directory.models import ShieldSet

        service.set_shield(
            s, actor=admin, child_id=shielded, data=ShieldSet(reason="family fleeing violence")
        )
        return World(
            child=child,
            nhs=nhs,
            shielded_child=shielded,
            shielded_nhs=shielded_nhs,
            trust=trust.id,
            school=school.id,
            hv_service=hv_service.id,
            school_service=school_service.id,
            school_nursing=school_nursing.id,
            sexual_health=sexual.id,
            locality=loc.id,
            hv=hv.id,
            senco=senco.id,
            involvement=inv.id,
            sensitive_involvement=sensitive.id,
            caf=caf.id,
        )
