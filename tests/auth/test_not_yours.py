"""Every route that changes a child's record, walked by a signed-in practitioner (and a connected
system) who does not hold the CAF and does not work for the services involved: each is refused and
nothing changes. The walk must name every write route of /api/v1 and /fhir, so a new one cannot ship
without a decision about whose it is. Real tokens, production mode, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.models import SubjectKind
from auth.policy import Policy, all_routes, declared_policy
from directory import notices, service
from directory.db import unit_of_work
from directory.models import (
    CafSignal,
    CafStart,
    ConsentCreate,
    HandOver,
    InvolvementCreate,
    Role,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from interop import systems as S
from tests.fixtures.auth_builders import bearer, make_grant, token_for
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)

FHIR = "application/fhir+json"
USER_FHIR = (
    "user/Patient.rs",
    "user/PractitionerRole.cruds",
    "user/Flag.cruds",
    "user/CareTeam.cruds",
    "user/Consent.cruds",
    "user/EpisodeOfCare.cruds",
)
SYSTEM_FHIR = tuple(s.replace("user/", "system/") for s in USER_FHIR) + ("directory.search",)


@dataclass
class Scene:
    """A child with an open CAF held by Sam (school), a TAC, Tess's health-visiting involvement, and
    the consents Sam recorded; Olly (same school) and another trust's system have no part in it."""

    child: uuid.UUID
    caf: uuid.UUID
    tac: uuid.UUID
    school: uuid.UUID
    sam: uuid.UUID
    olly: uuid.UUID
    tess: uuid.UUID
    involvement: uuid.UUID
    hv_service: uuid.UUID
    consent: uuid.UUID
    notice: uuid.UUID
    olly_headers: dict[str, str]
    system_headers: dict[str, str]
    request: uuid.UUID | None = None  # Sam's request that Tess take on the Lead Professional role


def _user(state: AuthState, engine: Engine, subject: str, role: Role = Role.PRACTITIONER) -> dict[str, str]:
    scopes = ("directory.search", "directory.write", *USER_FHIR)
    with unit_of_work(engine) as s:
        make_grant(s, subject, role=role, scopes=scopes)
    return bearer(token_for(state, subject, scopes=scopes, role=role), purpose="direct-care")


@pytest.fixture
def scene(api: TestClient, engine: Engine, state: AuthState) -> Scene:
    with unit_of_work(engine) as s:
        make_locality(s, code="EAST", areas=("OX4",))
        school = make_org(s, name="Cowley School", kind="school", urn="123456")
        trust = make_org(s, name="Demoshire Health", kind="nhs_trust", ods_code="RNU")
        make_org(s, name="Other Trust", kind="nhs_trust", ods_code="RXX")
        hv = make_service(s, trust, name="Health Visiting")
        sam = make_practitioner(s, school, name="Sam Carter", subject="sam").id
        olly = make_practitioner(s, school, name="Olly Stone", role="class teacher", subject="olly").id
        tess = make_practitioner(s, trust, name="Tess Vale", role="health visitor", subject="tess").id
        lee = make_practitioner(s, name="Lee Park", role="youth worker").id
        child = make_child(s)
        as_sam = actor(subject="sam", practitioner_id=sam)
        involvement = service.record_involvement(
            s,
            actor=actor(subject="tess", practitioner_id=tess),
            child_id=child,
            data=InvolvementCreate(
                service_id=hv.id,
                practitioner_id=tess,
                role="health visitor",
                level_of_need=1,
                start_date=date.today(),
            ),
        ).id
        caf = service.signal_caf(
            s,
            actor=as_sam,
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        ).id
        consent = service.record_consent(
            s,
            actor=as_sam,
            child_id=child,
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
        ).id
        service.start_caf(s, actor=as_sam, caf_id=caf, data=CafStart(consent_id=consent), now=utcnow())
        tac = service.update_tac(
            s,
            actor=as_sam,
            caf_id=caf,
            data=TacUpdate(
                add_members=[TacMemberIn(practitioner_id=p, role="member") for p in (sam, tess, lee)]
            ),
            now=utcnow(),
        ).id
        # a notice to Sam (a change Tess made as a TAC member), to walk the notice routes with
        service.update_tac(
            s,
            actor=actor(subject="tess", practitioner_id=tess),
            caf_id=caf,
            data=TacUpdate(reason="review moved", next_review_date=date.today() + timedelta(days=30)),
            now=utcnow(),
        )
        notice = notices.my_notices(s, actor=as_sam)[0].id
        request = service.request_hand_over(
            s, actor=as_sam, caf_id=caf, data=HandOver(to_practitioner_id=tess, reason="x"), now=utcnow()
        ).request
        assert request is not None
        make_grant(
            s,
            "other-trust",
            kind=SubjectKind.CLIENT,
            role=Role.SYSTEM,
            scopes=SYSTEM_FHIR,
            organisation="RXX",
        )
    system = bearer(
        token_for(
            state,
            "other-trust",
            kind=SubjectKind.CLIENT,
            scopes=SYSTEM_FHIR,
            role=Role.SYSTEM,
            client_id="other-trust",
        ),
        purpose="direct-care",
    )
    return Scene(
        child=child,
        caf=caf,
        tac=tac,
        school=school.id,
        sam=sam,
        olly=olly,
        tess=tess,
        involvement=involvement,
        hv_service=hv.id,
        consent=consent,
        notice=notice,
        olly_headers=_user(state, engine, "olly"),
        system_headers=system,
        request=request.id,
    )


_TABLES = (
    "assessment",
    "tac",
    "tac_action",
    "tac_review",
    "tac_member",
    "lead_professional_assignment",
    "involvement",
    "consent",
    "notice",
    "child_version",
    "caf_request",
)


def record_state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a change to a CAF, an involvement or a consent touches."""
    with engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {t}"))), key=repr) for t in _TABLES}


# --------------------------------------------------------------------------- /api/v1

Step = tuple[str, str, dict[str, Any] | None, set[int]]


def api_walk(sc: Scene) -> dict[str, Step]:
    """Route name -> (method, path, body, refusal statuses) for everything that changes what is not theirs."""
    today = date.today().isoformat()
    return {
        "signal_caf": (  # as someone else: a CAF held in Sam's name
            "POST",
            f"/api/v1/children/{sc.child}/caf",
            {"practitioner_id": str(sc.sam), "no_risk_of_significant_harm": True},
            {403},
        ),
        "start_caf": (
            "POST",
            f"/api/v1/cafs/{sc.caf}/start",
            {"consent_id": str(sc.consent), "reason": "x"},
            {403},
        ),
        "complete_caf": (
            "POST",
            f"/api/v1/cafs/{sc.caf}/complete",
            {"outcome": "needs_met_in_service", "reason": "x"},
            {403},
        ),
        "close_caf": ("POST", f"/api/v1/cafs/{sc.caf}/close", {"reason": "x"}, {403}),
        "hand_over_lead": (
            "POST",
            f"/api/v1/cafs/{sc.caf}/lead-professional",
            {"to_practitioner_id": str(sc.olly), "reason": "x"},
            {403},
        ),
        "update_tac": (
            "POST",
            f"/api/v1/cafs/{sc.caf}/tac",
            {"remove_practitioner_ids": [str(sc.tess)], "reason": "x"},
            {403},
        ),
        "convene_tac": (
            "POST",
            f"/api/v1/tacs/{sc.tac}/convene",
            {"next_review_date": today, "reason": "x"},
            {403},
        ),
        # the TAC's plan (childindex/plan_api.py): the CAF's rule
        "add_tac_action": (
            "POST",
            f"/api/v1/tacs/{sc.tac}/actions",
            {"title": "x", "area": "child.health", "owner": "family", "due_date": today, "reason": "x"},
            {403},
        ),
        "change_tac_action": (
            "PATCH",
            f"/api/v1/tacs/{sc.tac}/actions/{uuid.uuid4()}",
            {"status": "done", "reason": "x"},
            {403},
        ),
        "record_tac_review": (
            "POST",
            f"/api/v1/tacs/{sc.tac}/reviews",
            {"held_on": today, "outcome": "needs_met", "family_has_plan": True, "reason": "x"},
            {403},
        ),
        "end_involvement": ("POST", f"/api/v1/involvements/{sc.involvement}/end", {"end_date": today}, {403}),
        "confirm_involvement": ("POST", f"/api/v1/involvements/{sc.involvement}/confirm", None, {403}),
        "withdraw_consent": ("POST", f"/api/v1/consents/{sc.consent}/withdraw", {"reason": "x"}, {403}),
        # the panel and step up (childindex/panel_api.py): the CAF's own rule, before its status
        "send_caf_to_panel": ("POST", f"/api/v1/cafs/{sc.caf}/panel", {"reason": "x"}, {403}),
        "step_up_caf": ("POST", f"/api/v1/cafs/{sc.caf}/step-up", {"reason": "x"}, {403}),
        "record_involvement": (  # another organisation's service, and naming its practitioner
            "POST",
            f"/api/v1/children/{sc.child}/involvements",
            {
                "service_id": str(sc.hv_service),
                "practitioner_id": str(sc.tess),
                "role": "health visitor",
                "level_of_need": 1,
                "start_date": today,
            },
            {403},
        ),
        "read_notice": ("POST", f"/api/v1/notices/{sc.notice}/read", None, {404}),  # Sam's, not Olly's
        "mark_inbox_read": ("POST", f"/api/v1/inbox/{sc.notice}/read", None, {404}),  # Sam's, not Olly's
        "invite_to_tac": (
            "POST",
            f"/api/v1/cafs/{sc.caf}/tac-invitations",
            {"practitioner_id": str(sc.olly), "role": "class teacher", "reason": "x"},
            {403},
        ),
        # a hand-over addressed to Tess: no one else accepts or declines it
        "accept_request": ("POST", f"/api/v1/requests/{sc.request}/accept", None, {403}),
        "decline_request": ("POST", f"/api/v1/requests/{sc.request}/decline", None, {403}),
        "shield_child": ("POST", f"/api/v1/children/{sc.child}/shielding", {"reason": "x"}, {403}),
        "unshield_child": ("DELETE", f"/api/v1/children/{sc.child}/shielding", {"reason": "x"}, {403}),
        # Olly's school holds the CAF but no service of it works with the child (no If-Match: still 403)
        "change_child": ("PATCH", f"/api/v1/children/{sc.child}", {"sex": "male"}, {403}),
        "merge_child": (
            "POST",
            f"/api/v1/children/{sc.child}/merge",
            {"duplicate_id": str(uuid.uuid4()), "reason": "same child"},
            {403},
        ),
    }


# Write routes open to every writer (they change nothing that is someone else's) or that only read.
# set_notice_preference: your own; ask_to_join_tac: an ask changes nothing yet
OPEN_TO_WRITERS = {"create_child", "record_consent", "set_notice_preference", "ask_to_join_tac"}
READS = {"search_children"}
BY_ROLE = {"merge_child"}  # walked too, though only admins may at all


def write_routes(app: FastAPI, prefix: str) -> set[str]:
    """Names of the routes under `prefix` with a method that changes something and that a practitioner
    may call at all (the rest refuse them by role, as tests/auth/test_matrix.py shows)."""
    names = set()
    for route in all_routes(app):
        original = route.original_route
        if not (isinstance(original, APIRoute) and route.path.startswith(prefix)):
            continue
        policy = declared_policy(original)
        for_practitioners = isinstance(policy, Policy) and Role.PRACTITIONER in policy.roles
        if route.methods & {"POST", "PUT", "PATCH", "DELETE"} and for_practitioners:
            names.add(original.name)
    return names


def test_the_walk_names_every_write_route(app: FastAPI, scene: Scene) -> None:
    walked = set(api_walk(scene))
    assert write_routes(app, "/api/v1") - walked - OPEN_TO_WRITERS - READS == set()
    assert walked - write_routes(app, "/api/v1") - BY_ROLE == set()
    fhir = {
        name
        for name in write_routes(app, "/fhir")
        if not name.startswith(("fhir_search_post_", "fhir_match_"))  # searches by POST only read
    }
    assert fhir - set(fhir_walk(scene, {})) == set()


def test_a_practitioner_who_does_not_hold_it_changes_nothing(
    api: TestClient, engine: Engine, scene: Scene
) -> None:
    before = record_state(engine)
    for name, (method, path, body, refused) in api_walk(scene).items():
        r = api.request(method, path, headers=scene.olly_headers, json=body)
        assert r.status_code in refused, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", name
        if r.status_code == 403 and name not in (
            "shield_child",
            "unshield_child",
            "merge_child",
            "signal_caf",
            "accept_request",
            "decline_request",
        ):
            assert r.json()["ask"]["name"], (name, r.json())  # whom to ask instead
    assert record_state(engine) == before
    refusals = _refusals(engine, "olly")
    assert len(refusals) >= len(api_walk(scene)) - 4  # each refusal is audited (role refusals by auth)


def _refusals(engine: Engine, subject: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT action FROM audit_event "
                    "WHERE actor_subject = :s AND outcome IN ('refused', 'denied')"
                ),
                {"s": subject},
            ).scalars()
        )


def test_the_refusal_names_the_holder_and_the_holder_may(
    api: TestClient, engine: Engine, state: AuthState, scene: Scene
) -> None:
    r = api.post(f"/api/v1/cafs/{scene.caf}/close", headers=scene.olly_headers, json={"reason": "done"})
    assert (
        r.status_code == 403
        and "Sam Carter" in r.json()["detail"]
        and r.json()["ask"]["name"] == "Sam Carter"
    )
    tess = _user(state, engine, "tess")
    r = api.post(f"/api/v1/cafs/{scene.caf}/complete", headers=tess, json={"outcome": "needs_met_in_service"})
    assert r.status_code == 422 and "reason" in r.json()["detail"]  # a TAC member gives a reason
    r = api.post(
        f"/api/v1/cafs/{scene.caf}/complete",
        headers=tess,
        json={"outcome": "needs_met_in_service", "reason": "agreed"},
    )
    assert r.status_code == 200, r.text
    sam = _user(state, engine, "sam")
    notes = api.get("/api/v1/notices?unread=true", headers=sam).json()
    assert [n["action"] for n in notes] == ["caf.complete", "tac.update"] and notes[0]["reason"] == "agreed"
    assert api.get("/api/v1/notices", headers=scene.olly_headers).json() == []
    r = api.post(f"/api/v1/cafs/{scene.caf}/close", headers=sam, json={"reason": "needs met"})
    assert r.status_code == 200 and r.json()["status"] == "closed"


# --------------------------------------------------------------------------- /fhir


def fhir_walk(
    sc: Scene, read: dict[str, dict[str, Any]]
) -> dict[str, Callable[[TestClient, dict[str, str]], Any]]:
    """Route name -> a request changing what is not the caller's (made from the resources they read)."""

    def closed_flag(api: TestClient, h: dict[str, str]) -> Any:
        flag = {k: v for k, v in read["flag"].items() if k not in ("extension", "meta", "text")}
        flag["code"] = {"coding": [{"system": S.FLAG_CODE, "code": "caf-closed"}]}
        flag["extension"] = [{"url": S.EXT_CHANGE_REASON, "valueString": "x"}]
        return api.put(f"/fhir/Flag/{flag['id']}", headers=h, json=flag)

    def signal_as_sam(api: TestClient, h: dict[str, str]) -> Any:
        other = read["other_child"]
        return api.post(
            "/fhir/Flag",
            headers=h,
            json={
                "resourceType": "Flag",
                "status": "active",
                "code": {"coding": [{"system": S.FLAG_CODE, "code": "caf-signalled"}]},
                "subject": {"reference": f"Patient/{other}"},
                "author": {"reference": f"Practitioner/{sc.sam}"},
                "extension": [{"url": S.EXT_NO_SIGNIFICANT_HARM, "valueBoolean": True}],
            },
        )

    def smaller_team(api: TestClient, h: dict[str, str]) -> Any:
        team = {k: v for k, v in read["team"].items() if k not in ("meta", "text")}
        team["participant"] = [
            p for p in team["participant"] if p["member"]["reference"] != f"Practitioner/{sc.tess}"
        ]
        team["extension"] = [*team.get("extension", []), {"url": S.EXT_CHANGE_REASON, "valueString": "x"}]
        return api.put(f"/fhir/CareTeam/{team['id']}", headers=h, json=team)

    def ended_episode(api: TestClient, h: dict[str, str]) -> Any:
        episode = {k: v for k, v in read["episode"].items() if k not in ("meta", "text")}
        episode["status"] = "finished"
        episode["period"] = {**episode["period"], "end": date.today().isoformat()}
        return api.put(f"/fhir/EpisodeOfCare/{episode['id']}", headers=h, json=episode)

    def withdrawn_consent(api: TestClient, h: dict[str, str]) -> Any:
        consent = {k: v for k, v in read["consent"].items() if k not in ("meta", "text")}
        consent["status"] = "inactive"
        return api.put(f"/fhir/Consent/{consent['id']}", headers=h, json=consent)

    def new_episode(api: TestClient, h: dict[str, str]) -> Any:
        episode = {k: v for k, v in read["episode"].items() if k not in ("meta", "text", "id")}
        episode["patient"] = {"reference": f"Patient/{read['other_child']}"}
        return api.post("/fhir/EpisodeOfCare", headers=h, json=episode)

    def second_team(api: TestClient, h: dict[str, str]) -> Any:
        team = {k: v for k, v in read["team"].items() if k not in ("meta", "text", "id")}
        return api.post("/fhir/CareTeam", headers=h, json=team)

    def closing_bundle(api: TestClient, h: dict[str, str]) -> Any:
        flag = {k: v for k, v in read["flag"].items() if k not in ("extension", "meta", "text")}
        flag["code"] = {"coding": [{"system": S.FLAG_CODE, "code": "caf-closed"}]}
        flag["extension"] = [{"url": S.EXT_CHANGE_REASON, "valueString": "x"}]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": flag, "request": {"method": "PUT", "url": f"Flag/{flag['id']}"}}],
        }
        return api.post("/fhir", headers=h, json=bundle)

    def colleague_elsewhere(api: TestClient, h: dict[str, str]) -> Any:
        return api.post(
            "/fhir/PractitionerRole",
            headers=h,
            json={
                "resourceType": "PractitionerRole",
                "practitioner": {"display": "Not Sam"},
                "organization": {"reference": f"Organization/{read['school']}"},
                "code": [{"text": "SENCO"}],
                "telecom": [{"system": "phone", "value": "07700 900999"}],
            },
        )

    def sams_number_changed(api: TestClient, h: dict[str, str]) -> Any:
        role = {k: v for k, v in read["sam"].items() if k not in ("meta", "text")}
        role["telecom"] = [{"system": "phone", "value": "07700 900999"}]
        return api.put(f"/fhir/PractitionerRole/{role['id']}", headers=h, json=role)

    return {
        "fhir_create_PractitionerRole": colleague_elsewhere,
        "fhir_update_PractitionerRole": sams_number_changed,
        "fhir_update_Flag": closed_flag,
        "fhir_create_Flag": signal_as_sam,
        "fhir_update_CareTeam": smaller_team,
        "fhir_create_CareTeam": second_team,  # (409: the CAF has its TAC; 403 for its non-members)
        "fhir_update_EpisodeOfCare": ended_episode,
        "fhir_create_EpisodeOfCare": new_episode,
        "fhir_update_Consent": withdrawn_consent,
        "fhir_create_Consent": lambda api, h: None,  # open to writers, as in the app API
        "fhir_bundle": closing_bundle,
    }


@pytest.mark.parametrize("who", ["olly", "other trust's system"])
def test_over_fhir_nobody_changes_what_is_not_theirs(
    api: TestClient, engine: Engine, scene: Scene, who: str
) -> None:
    h = {
        **(scene.olly_headers if who == "olly" else scene.system_headers),
        "Content-Type": FHIR,
        "Accept": FHIR,
    }
    with unit_of_work(engine) as s:
        other_child = make_child(s, names=[{"given": "Noah", "family": "Brook"}])
    flags = api.get(f"/fhir/Flag?patient={scene.child}", headers=h).json()
    read = {
        "flag": next(e["resource"] for e in flags["entry"] if e["resource"]["id"].startswith("caf-")),
        "team": api.get(f"/fhir/CareTeam/{scene.tac}", headers=h).json(),
        "episode": api.get(f"/fhir/EpisodeOfCare/{scene.involvement}", headers=h).json(),
        "consent": api.get(f"/fhir/Consent/{scene.consent}", headers=h).json(),
        "other_child": other_child,
        "sam": api.get(f"/fhir/PractitionerRole/{scene.sam}", headers=h).json(),
        "school": scene.school,
    }
    before = record_state(engine)
    for name, attempt in fhir_walk(scene, read).items():
        r = attempt(api, h)
        if r is None:
            continue
        assert r.status_code in (403, 409), (name, r.status_code, r.text)
        body = r.json()
        assert body["resourceType"] == "OperationOutcome", (name, body)
        assert body["issue"][0]["code"] in ("forbidden", "conflict"), (name, body)
    assert record_state(engine) == before
