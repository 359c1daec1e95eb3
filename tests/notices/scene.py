"""A child in the EAST locality with the people around it, for the notification tests.

Sam (school) signals and holds the CAF; Tess (health visiting) and Nia (a sexual health nurse, on a
sensitive involvement) work with the child; Lee (youth work) joins the TAC; Lina is EAST's local
delivery team, Wes is WEST's; Dee is a designated practitioner working with the child; Cara is a
child-protection practitioner with no link to the child. Grants give each their role (Tess and Lee
have none: told as plain practitioners).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from childindex import people_notify
from directory import service
from directory.db import unit_of_work
from directory.models import (
    Actor,
    CafSignal,
    CafStart,
    ConsentCreate,
    InvolvementCreate,
    Role,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from directory.models.notifications import Notice
from tests.fixtures.auth_builders import make_grant
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)


@dataclass
class World:
    child: uuid.UUID
    sam: uuid.UUID
    tess: uuid.UUID
    nia: uuid.UUID
    lee: uuid.UUID
    lina: uuid.UUID
    wes: uuid.UUID
    dee: uuid.UUID
    hv: uuid.UUID
    hv_involvement: uuid.UUID

    def person(self, name: str, role: Role = Role.PRACTITIONER) -> Actor:
        return actor(role, subject=name, practitioner_id=getattr(self, name))


def build(engine: Engine) -> World:
    """The world, committed; the people's cursor starts after it (nothing of the set-up is told)."""
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
        make_locality(s, code="WEST", areas=("OX2",))
        school = make_org(s, name="Cowley School", kind="school")
        trust = make_org(s, name="Demoshire Health", kind="nhs_trust", ods_code="RNU")
        council = make_org(s, name="Demoshire Council", kind="local_authority")
        hv = make_service(s, trust, name="Health Visiting")
        sexual = make_service(
            s,
            trust,
            name="Sexual Health",
            service_type="sexual_health",
            level_of_need=2,
            tier="aligned",
            sensitive=True,
            sensitive_category="sexual_health",
        )
        people = {
            "sam": make_practitioner(s, school, name="Sam Carter", subject="sam", email="sam@school.test"),
            "tess": make_practitioner(s, trust, name="Tess Vale", subject="tess", email="tess@nhs.test"),
            "nia": make_practitioner(s, trust, name="Nia Patel", subject="nia", email="nia@nhs.test"),
            "lee": make_practitioner(s, council, name="Lee Park", subject="lee", email="lee@council.test"),
            "lina": make_practitioner(
                s, council, name="Lina Moss", subject="lina", email="lina@council.test"
            ),
            "wes": make_practitioner(s, council, name="Wes Hale", subject="wes", email="wes@council.test"),
            "dee": make_practitioner(s, trust, name="Dee Ross", subject="dee", email="dee@nhs.test"),
        }
        ids = {k: v.id for k, v in people.items()}
        make_grant(s, "sam", role=Role.PRACTITIONER)
        make_grant(s, "nia", role=Role.PRACTITIONER)
        make_grant(s, "lina", role=Role.LOCAL_DELIVERY_TEAM, localities=["EAST"])
        make_grant(s, "wes", role=Role.LOCAL_DELIVERY_TEAM, localities=["WEST"])
        make_grant(s, "dee", role=Role.DESIGNATED_PRACTITIONER)
        child = make_child(s)
        hv_inv = service.record_involvement(
            s,
            actor=actor(subject="tess", practitioner_id=ids["tess"]),
            child_id=child,
            data=InvolvementCreate(
                service_id=hv.id,
                practitioner_id=ids["tess"],
                role="health visitor",
                level_of_need=1,
                start_date=date.today(),
            ),
        )
        for who in ("dee",):
            service.record_involvement(
                s,
                actor=actor(subject=who, practitioner_id=ids[who]),
                child_id=child,
                data=InvolvementCreate(
                    service_id=make_service(s, trust, name="Paediatrics").id,
                    practitioner_id=ids[who],
                    role="paediatrician",
                    level_of_need=2,
                    start_date=date.today(),
                ),
            )
        consent = service.record_consent(
            s,
            actor=actor(subject="nia", practitioner_id=ids["nia"]),
            child_id=child,
            data=ConsentCreate(
                scope="sensitive:sexual_health",
                given_by_kind="young_person",
                given_by_name="Olivia Smith",
                young_person_competent=True,
            ),
        )
        service.record_involvement(
            s,
            actor=actor(subject="nia", practitioner_id=ids["nia"]),
            child_id=child,
            data=InvolvementCreate(
                service_id=sexual.id,
                practitioner_id=ids["nia"],
                role="sexual health nurse",
                level_of_need=2,
                start_date=date.today(),
                consent_id=consent.id,
                sensitive=True,
            ),
        )
    people_notify.start_cursor(engine)
    return World(child=child, hv=hv.id, hv_involvement=hv_inv.id, **ids)


def open_caf(
    engine: Engine, w: World, *, by: str = "sam", tac: bool = True
) -> tuple[uuid.UUID, uuid.UUID | None]:
    """A started CAF held by `by`, with a TAC of Sam, Tess and Lee (when `tac`); returns (caf, tac)."""
    who = w.person(by)
    with unit_of_work(engine) as s:
        caf = service.signal_caf(
            s,
            actor=who,
            child_id=w.child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        ).id
        consent = service.record_consent(
            s,
            actor=who,
            child_id=w.child,
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
        ).id
        service.start_caf(s, actor=who, caf_id=caf, data=CafStart(consent_id=consent), now=utcnow())
        tac_id = None
        if tac:
            members = [getattr(w, by), w.tess, w.lee]
            tac_id = service.update_tac(
                s,
                actor=who,
                caf_id=caf,
                data=TacUpdate(
                    add_members=[
                        TacMemberIn(practitioner_id=p, role="member") for p in dict.fromkeys(members)
                    ]
                ),
                now=utcnow(),
            ).id
    return caf, tac_id


def notices_of(engine: Engine, practitioner_id: uuid.UUID, action: str | None = None) -> list[Notice]:
    """A practitioner's notices (of one audit action), oldest first."""
    with Session(engine) as s:
        stmt = select(Notice).where(Notice.practitioner_id == practitioner_id)
        if action is not None:
            stmt = stmt.where(Notice.action == action)
        return list(s.exec(stmt.order_by(col(Notice.created_at))).all())
