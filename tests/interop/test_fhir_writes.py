"""FHIR writes beyond involvements: CAF status (Flag), Consent, TAC (CareTeam); PractitionerRole
versions; scope refusals that name the scope; trawling detection on /fhir reads. All over HTTP."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.ratelimit import SubjectLimiter
from directory import service
from directory.db import unit_of_work
from directory.models import Assessment, Organisation, RequestAnswer, utcnow
from interop import systems as S
from tests.conftest import count
from tests.fixtures.builders import actor, make_child, make_practitioner
from tests.interop.conftest import FHIR, TRUST_SCOPES, World, system_headers
from tests.interop.test_fhir_api import audit_actions, outcome, valid

WRITE_SCOPES = (*TRUST_SCOPES, "system/Flag.cu", "system/Consent.cu", "system/CareTeam.cu")


def _writer(state: AuthState, engine: Engine) -> dict[str, str]:
    return {**system_headers(state, engine, subject="trust-caf", scopes=WRITE_SCOPES), "Content-Type": FHIR}


def _new_child(engine: Engine) -> uuid.UUID:
    with unit_of_work(engine) as s:
        return make_child(s, names=[{"given": "Noah", "family": "Brook"}])


def _signal(child: uuid.UUID, author: uuid.UUID) -> dict[str, Any]:
    return {
        "resourceType": "Flag",
        "status": "active",
        "code": {"coding": [{"system": S.FLAG_CODE, "code": "caf-signalled"}]},
        "subject": {"reference": f"Patient/{child}"},
        "author": {"reference": f"Practitioner/{author}"},
        "extension": [{"url": S.EXT_NO_SIGNIFICANT_HARM, "valueBoolean": True}],
    }


def _consent(child: uuid.UUID, scope: str = "caf") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": S.CONSENT_SCOPE_HL7, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": S.CONSENT_SCOPE, "code": scope}]}],
        "patient": {"reference": f"Patient/{child}"},
        "performer": [
            {
                "display": "Jane Brook",
                "extension": [{"url": S.EXT_CONSENT_GIVER, "valueCode": "parent_carer"}],
            }
        ],
    }


def _moved(flag: dict[str, Any], code: str, *extensions: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in flag.items() if k != "extension"}
    out["code"] = {"coding": [{"system": S.FLAG_CODE, "code": code}]}
    if extensions:
        out["extension"] = list(extensions)
    return out


def _team(
    child: uuid.UUID, members: list[tuple[uuid.UUID, str]], lead: uuid.UUID, **extra: Any
) -> dict[str, Any]:
    participants = []
    for pid, role in members:
        roles: list[dict[str, Any]] = [{"text": role}]
        if pid == lead:
            roles.insert(0, {"coding": [{"system": S.CARE_TEAM_ROLE, "code": "lead-professional"}]})
        participants.append({"role": roles, "member": {"reference": f"Practitioner/{pid}"}})
    return {
        "resourceType": "CareTeam",
        "status": "proposed",
        "subject": {"reference": f"Patient/{child}"},
        "participant": participants,
        **extra,
    }


def _accept_hand_over(engine: Engine, child: uuid.UUID, to: uuid.UUID) -> None:
    """The named practitioner accepts the CAF's pending hand-over (on the app API or the pages)."""
    with unit_of_work(engine) as s:
        caf = s.exec(sa.select(Assessment).where(Assessment.child_id == child)).scalars().one()
        pending = service.pending_hand_over(s, caf.id)
        assert pending is not None and pending.practitioner_id == to
        service.answer_request(
            s,
            actor=actor(practitioner_id=to),
            request_id=pending.id,
            accept=True,
            data=RequestAnswer(),
            now=utcnow(),
        )


def test_a_caf_runs_its_course_over_fhir_through_the_domain(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _writer(state, engine)
    child = _new_child(engine)
    with unit_of_work(engine) as s:
        yusuf = make_practitioner(s, name="Yusuf Ali", role="youth worker").id
        nurse = make_practitioner(
            s, s.get(Organisation, world.trust), name="Nia Patel", role="school nurse"
        ).id
    # signal: 201, the Flag names the holder; a second signal is a 409 conflict naming whom to contact
    r = api.post("/fhir/Flag", headers=h, json=_signal(child, world.hv))
    assert r.status_code == 201, r.text
    flag = valid(r.json())
    assert flag["id"].startswith("caf-") and flag["code"]["coding"][0]["code"] == "caf-signalled"
    assert flag["author"]["reference"] == f"Practitioner/{world.hv}" and r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/fhir/Flag/{flag['id']}")
    said = outcome(api.post("/fhir/Flag", headers=h, json=_signal(child, nurse)), 409, "conflict")
    assert "Hannah Vale" in said and "Contact them" in said
    # the world's child already has an open CAF, held by Sam Carter
    said = outcome(api.post("/fhir/Flag", headers=h, json=_signal(world.child, world.hv)), 409, "conflict")
    assert "Sam Carter" in said
    # conditional create finds the open one instead of a second
    cond = api.post(
        "/fhir/Flag",
        headers={**h, "If-None-Exist": f"patient=Patient/{child}&status=active&code=caf-signalled"},
        json=_signal(child, nurse),
    )
    assert cond.status_code == 200 and cond.json()["id"] == flag["id"]
    # start: needs a consent; a stale version is refused
    consent = valid(api.post("/fhir/Consent", headers=h, json=_consent(child)).json())
    assert consent["status"] == "active"
    started = _moved(flag, "caf-in-progress")
    outcome(api.put(f"/fhir/Flag/{flag['id']}", headers=h, json=started), 422, "business-rule")
    with_consent = _moved(
        flag,
        "caf-in-progress",
        {"url": S.EXT_CAF_CONSENT, "valueReference": {"reference": f"Consent/{consent['id']}"}},
    )
    outcome(
        api.put(f"/fhir/Flag/{flag['id']}", headers={**h, "If-Match": 'W/"7"'}, json=with_consent),
        412,
        "conflict",
    )
    r = api.put(f"/fhir/Flag/{flag['id']}", headers={**h, "If-Match": 'W/"1"'}, json=with_consent)
    assert r.status_code == 200, r.text
    assert valid(r.json())["code"]["coding"][0]["code"] == "caf-in-progress" and r.headers["etag"] == 'W/"2"'
    # a TAC: three practitioners, the SENCO appointed Lead Professional, convened at once
    review = (date.today() + timedelta(days=42)).isoformat()
    team = _team(
        child,
        [(world.hv, "health visitor"), (world.senco, "SENCO"), (yusuf, "youth worker")],
        world.senco,
        status="active",
        extension=[{"url": S.EXT_NEXT_REVIEW, "valueDate": review}],
    )
    r = api.post("/fhir/CareTeam", headers=h, json=team)
    assert r.status_code == 201, r.text
    ct = valid(r.json())
    assert ct["status"] == "active" and len(ct["participant"]) == 3
    # the SENCO is asked to take on the Lead Professional role: the health visitor stays until they accept
    lp = [p for p in ct["participant"] if p["role"][0].get("coding")]
    assert [p["member"]["reference"] for p in lp] == [f"Practitioner/{world.hv}"]
    outcome(api.post("/fhir/CareTeam", headers=h, json=team), 409, "conflict")  # one TAC per CAF
    _accept_hand_over(engine, child, world.senco)
    lp_flag = api.get(f"/fhir/Flag/lp-{child.hex}", headers=h).json()
    assert lp_flag["author"]["reference"] == f"Practitioner/{world.senco}"
    assert {
        "lead-professional.hand-over.request",
        "lead-professional.hand-over",
        "tac.update",
        "tac.convene",
    } <= set(audit_actions(engine))
    r = api.get(f"/fhir/CareTeam/{ct['id']}", headers=h)
    ct = r.json()
    # hand the LP role to the youth worker through the CareTeam; the old version is then stale
    handed = {
        **ct,
        "participant": _team(
            child,
            [(world.hv, "health visitor"), (world.senco, "SENCO"), (yusuf, "youth worker")],
            yusuf,
        )["participant"],
    }
    asked = api.put(
        f"/fhir/CareTeam/{ct['id']}",
        headers={**h, "If-Match": r.headers["etag"], "Prefer": "return=OperationOutcome"},
        json=handed,
    )
    assert asked.status_code == 200, asked.text
    issue = asked.json()["issue"][0]  # the answer says the hand-over waits for Yusuf's acceptance
    assert issue["severity"] == "information" and "requested" in issue["diagnostics"]
    lp_now = api.get(f"/fhir/Flag/lp-{child.hex}", headers=h).json()["author"]["reference"]
    assert lp_now == f"Practitioner/{world.senco}"
    _accept_hand_over(engine, child, yusuf)
    r = api.get(f"/fhir/CareTeam/{ct['id']}", headers=h)
    assert (
        api.get(f"/fhir/Flag/lp-{child.hex}", headers=h).json()["author"]["reference"]
        == f"Practitioner/{yusuf}"
    )
    outcome(
        api.put(
            f"/fhir/CareTeam/{ct['id']}", headers={**h, "If-Match": f'W/"{ct["meta"]["versionId"]}"'}, json=ct
        ),
        412,
        "conflict",
    )
    # the LP cannot leave the TAC without a hand-over (the domain's rule, answered as business-rule)
    without_lp = {
        **r.json(),
        "participant": [
            p for p in r.json()["participant"] if p["member"]["reference"] != f"Practitioner/{yusuf}"
        ],
    }
    outcome(api.put(f"/fhir/CareTeam/{ct['id']}", headers=h, json=without_lp), 422, "business-rule")
    # complete, then close (closing ends the TAC and the LP role)
    current = api.get(f"/fhir/Flag/{flag['id']}", headers=h).json()
    done = _moved(current, "caf-completed", {"url": S.EXT_CAF_OUTCOME, "valueCode": "multi_agency_response"})
    r = api.put(f"/fhir/Flag/{flag['id']}", headers=h, json=done)
    assert r.status_code == 200 and r.json()["code"]["coding"][0]["code"] == "caf-completed", r.text
    back = _moved(r.json(), "caf-in-progress")
    outcome(api.put(f"/fhir/Flag/{flag['id']}", headers=h, json=back), 409, "conflict")
    closing = _moved(r.json(), "caf-closed", {"url": S.EXT_CHANGE_REASON, "valueString": "needs met"})
    r = api.put(f"/fhir/Flag/{flag['id']}", headers=h, json=closing)
    assert r.status_code == 200 and valid(r.json())["status"] == "inactive", r.text
    outcome(api.get(f"/fhir/CareTeam/{ct['id']}", headers=h), 404, "not-found")
    # consent withdrawn
    withdrawn = {
        **consent,
        "status": "inactive",
        "extension": [{"url": S.EXT_CHANGE_REASON, "valueString": "family moved"}],
    }
    r = api.put(f"/fhir/Consent/{consent['id']}", headers=h, json=withdrawn)
    assert r.status_code == 200 and valid(r.json())["status"] == "inactive", r.text
    outcome(api.put(f"/fhir/Consent/{consent['id']}", headers=h, json=consent), 409, "conflict")
    changed = {**withdrawn, "category": _consent(child, "information_sharing")["category"]}
    outcome(api.put(f"/fhir/Consent/{consent['id']}", headers=h, json=changed), 422, "business-rule")
    actions = audit_actions(engine)
    for action in (
        "caf.signal",
        "consent.record",
        "caf.start",
        "caf.complete",
        "caf.close",
        "consent.withdraw",
    ):
        assert action in actions


def test_a_failed_transaction_changes_nothing_and_a_good_one_signals_with_consent(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _writer(state, engine)
    tables = ("consent", "assessment", "lead_professional_assignment")
    before = [count(engine, t) for t in tables]
    audits = len(audit_actions(engine))
    # a consent, then a second CAF for a child who has one open: all refused, nothing kept
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": _consent(world.child), "request": {"method": "POST", "url": "Consent"}},
            {"resource": _signal(world.child, world.hv), "request": {"method": "POST", "url": "Flag"}},
        ],
    }
    said = outcome(api.post("/fhir", headers=h, json=bad), 409, "conflict")
    assert said.startswith("Entry 1:") and "Sam Carter" in said
    assert [count(engine, t) for t in tables] == before
    assert "consent.record" not in audit_actions(engine)[audits:]
    # the same for a new child goes through, atomically
    child = _new_child(engine)
    good = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:c1",
                "resource": _consent(child),
                "request": {"method": "POST", "url": "Consent"},
            },
            {"resource": _signal(child, world.hv), "request": {"method": "POST", "url": "Flag"}},
        ],
    }
    r = api.post("/fhir/", headers=h, json=good, follow_redirects=False)  # the base with its slash
    assert r.status_code == 200, r.text
    body = valid(r.json())
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "201 Created"]
    assert [e["resource"]["resourceType"] for e in body["entry"]] == ["Consent", "Flag"]
    assert [count(engine, t) for t in tables] == [before[0] + 1, before[1] + 1, before[2] + 1]
    # in a batch the refused entry fails on its own
    batch = {**bad, "type": "batch"}
    r = api.post("/fhir", headers=h, json=batch)
    statuses = [e["response"]["status"] for e in valid(r.json())["entry"]]
    assert statuses == ["201 Created", "409"]
    assert r.json()["entry"][1]["response"]["outcome"]["issue"][0]["code"] == "conflict"


def test_practitioner_role_is_versioned(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _writer(state, engine)
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"display": "Nia Patel"},
        "organization": {"reference": f"Organization/{world.trust}"},
        "code": [{"text": "school nurse"}],
        "telecom": [{"system": "phone", "value": "07700 900555"}],
    }
    r = api.post("/fhir/PractitionerRole", headers=h, json=role)
    assert r.status_code == 201 and r.headers["etag"] == 'W/"1"', r.text
    created = valid(r.json())
    assert created["meta"]["versionId"] == "1"
    assert r.headers["location"].endswith(f"/fhir/PractitionerRole/{created['id']}")
    url = f"/fhir/PractitionerRole/{created['id']}"
    # an update that changes nothing keeps the version
    assert api.put(url, headers={**h, "If-Match": 'W/"1"'}, json=created).headers["etag"] == 'W/"1"'
    moved = {**created, "telecom": [{"system": "phone", "value": "07700 900999", "use": "work"}]}
    r = api.put(url, headers={**h, "If-Match": 'W/"1"'}, json=moved)
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"', r.text
    assert api.get(url, headers=h).headers["etag"] == 'W/"2"'
    stale = {**created, "telecom": [{"system": "phone", "value": "07700 900111", "use": "work"}]}
    outcome(api.put(url, headers={**h, "If-Match": 'W/"1"'}, json=stale), 412, "conflict")
    assert api.get(url, headers=h).json()["telecom"][0]["value"] == "07700 900999"
    # meta.versionId in the body is not If-Match (R4: the server ignores it): without If-Match the
    # update is made, whatever version the body names.
    r = api.put(url, headers=h, json=stale)
    assert r.status_code == 200 and r.headers["etag"] == 'W/"3"', r.text
    # An update whose body has no id, or another id, is 400 (not 412), and changes nothing.
    no_id = {k: v for k, v in moved.items() if k != "id"}
    for body, code in ((no_id, "required"), ({**moved, "id": str(uuid.uuid4())}, "invalid")):
        outcome(api.put(url, headers={**h, "If-Match": 'W/"3"'}, json=body), 400, code)
    assert api.get(url, headers=h).headers["etag"] == 'W/"3"'


def test_a_refused_scope_names_the_scope_that_would_allow_it(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    from tests.interop.test_fhir_api import _episode

    read_only = {
        **system_headers(state, engine, subject="ro", scopes=("system/EpisodeOfCare.rs", "system/Flag.rs")),
        "Content-Type": FHIR,
    }
    # refused by the route's policy: no write scope at all
    said = outcome(api.post("/fhir/EpisodeOfCare", headers=read_only, json=_episode(world)), 403, "forbidden")
    assert "system/EpisodeOfCare.c or system/EpisodeOfCare.write" in said
    assert "system/*" not in said and len(said) < 300, said
    said = outcome(
        api.post("/fhir/Flag", headers=read_only, json=_signal(world.child, world.hv)), 403, "forbidden"
    )
    assert "system/Flag.c" in said and len(said) < 300
    # refused inside a Bundle: the entry's type and letter
    writer = {
        **system_headers(state, engine, subject="ep", scopes=("system/EpisodeOfCare.cru",)),
        "Content-Type": FHIR,
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": _signal(world.child, world.hv), "request": {"method": "POST", "url": "Flag"}}],
    }
    said = outcome(api.post("/fhir", headers=writer, json=bundle), 403, "forbidden")
    assert "system/Flag.c or system/Flag.write" in said and len(said) < 300
    # an _include of a type the token cannot read
    patient_only = system_headers(state, engine, subject="po", scopes=("system/Patient.rs",))
    said = outcome(
        api.get(f"/fhir/Patient?_id={world.child}&_revinclude=EpisodeOfCare:patient", headers=patient_only),
        403,
        "forbidden",
    )
    assert "system/EpisodeOfCare.r" in said


def test_fhir_reads_searches_and_match_count_towards_trawling(
    api: TestClient, engine: Engine, state: AuthState, world: World, app: Any
) -> None:
    from search.indexer import drain

    state.limiter = SubjectLimiter(
        state.limiter.store, per_minute=1000, trawl_window_seconds=3600, trawl_distinct=4
    )
    noah = _new_child(engine)
    drain(engine, app.state.search_backend, wait=True)
    h = {**system_headers(state, engine, subject="trawler"), "Content-Type": FHIR}

    def alerts() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM audit_event WHERE action = 'alert.trawling'")
                ).scalar_one()
            )

    # two distinct children: a read, a search by NHS number
    assert api.get(f"/fhir/Patient/{world.child}", headers=h).status_code == 200
    found = api.get(f"/fhir/Patient?identifier={S.NHS_NUMBER}|{world.shielded_nhs}", headers=h)
    assert found.status_code == 200 and found.json()["total"] == 1
    assert alerts() == 0
    # $match shows two more (both Noah Brooks): four distinct children, no repeats
    match = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "resource",
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": "Brook", "given": ["Noah"]}],
                    "birthDate": (date.today() - timedelta(days=365 * 8)).isoformat(),
                },
            }
        ],
    }
    with unit_of_work(engine) as s:
        make_child(s, names=[{"given": "Noah", "family": "Brook"}])
    drain(engine, app.state.search_backend, wait=True)
    r = api.post("/fhir/Patient/$match", headers=h, json=match)
    assert r.status_code == 200 and {e["resource"]["id"] for e in r.json()["entry"]} >= {str(noah)}, r.text
    assert r.json()["total"] == 2
    assert alerts() == 1
    with engine.connect() as conn:
        who = conn.execute(
            sa.text("SELECT actor_subject FROM audit_event WHERE action = 'alert.trawling'")
        ).scalar_one()
    assert who == "trawler"


HOOK = "https://ehr.example.nhs.uk/fhir/childindex-hook"


def _subscription(criteria: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "tell the health visiting team about CAFs",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": HOOK, "payload": FHIR},
        **extra,
    }


def test_subscriptions_are_managed_over_fhir_and_delivered_in_the_background(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    import json

    import httpx
    import respx

    from interop import notify

    scopes = (*WRITE_SCOPES, "system/Subscription.crds")
    h = {**system_headers(state, engine, subject="trust-sub", scopes=scopes), "Content-Type": FHIR}
    other = {**system_headers(state, engine, subject="other", scopes=scopes), "Content-Type": FHIR}
    assert "Subscription" in {r["type"] for r in api.get("/fhir/metadata").json()["rest"][0]["resource"]}
    # criteria this server cannot deliver are refused, naming what it can
    said = outcome(
        api.post("/fhir/Subscription", headers=h, json=_subscription("EpisodeOfCare?status=active")),
        422,
        "not-supported",
    )
    assert "caf-signalled" in said
    outcome(
        api.post("/fhir/Subscription", headers=h, json=_subscription("Flag?code=caf-expired")),
        422,
        "not-supported",
    )
    outcome(
        api.post(
            "/fhir/Subscription",
            headers=h,
            json={
                **_subscription("Flag?code=caf-signalled"),
                "channel": {"type": "email", "endpoint": "mailto:x@y"},
            },
        ),
        422,
        "not-supported",
    )
    bad_endpoint = _subscription("Flag?code=caf-signalled")
    bad_endpoint["channel"] = {**bad_endpoint["channel"], "endpoint": "http://ehr.example.nhs.uk/hook"}
    outcome(api.post("/fhir/Subscription", headers=h, json=bad_endpoint), 400, "invalid")
    # shielded-record events need audit.read as well
    outcome(
        api.post(
            "/fhir/Subscription", headers=h, json=_subscription("AuditEvent?subtype=shielded-record-viewed")
        ),
        403,
        "forbidden",
    )
    # no Subscription scope: the refusal names it
    said = outcome(
        api.post(
            "/fhir/Subscription",
            headers={**system_headers(state, engine), "Content-Type": FHIR},
            json=_subscription("Flag?code=caf-signalled"),
        ),
        403,
        "forbidden",
    )
    assert "system/Subscription.c" in said
    secret = {"extension": [{"url": S.EXT_SIGNING_SECRET, "valueString": "hook-secret"}]}
    r = api.post(
        "/fhir/Subscription",
        headers=h,
        json=_subscription(
            "Flag?code=caf-signalled,caf-in-progress,caf-closed,lead-professional-in-place", **secret
        ),
    )
    assert r.status_code == 201, r.text
    sub = valid(r.json())
    assert sub["status"] == "active" and "extension" not in sub  # the secret is never shown
    assert r.headers["location"].endswith(f"/fhir/Subscription/{sub['id']}")
    assert valid(api.get(f"/fhir/Subscription/{sub['id']}", headers=h).json())["criteria"] == sub["criteria"]
    outcome(api.get(f"/fhir/Subscription/{sub['id']}", headers=other), 404, "not-found")  # only your own
    listed = valid(api.get("/fhir/Subscription", headers=h).json())
    assert [e["resource"]["id"] for e in listed["entry"]] == [sub["id"]]
    assert "subscription.create" in audit_actions(engine)
    # a CAF signalled over FHIR is delivered by the worker, not by the request
    child = _new_child(engine)
    assert api.post("/fhir/Flag", headers=h, json=_signal(child, world.hv)).status_code == 201
    assert count(engine, "notification") == 0
    assert notify.fan_out(engine) >= 1
    with respx.mock() as mock:
        route = mock.post(HOOK).respond(200)
        with httpx.Client() as client:
            notify.deliver_due(engine, client, base_url="http://testserver/fhir")
    bodies = [json.loads(c.request.content) for c in route.calls]
    mine = [b for b in bodies if b["entry"][0]["request"]["url"] == f"Patient/{child}"]
    assert len(mine) == 1
    bundle = valid(mine[0])
    assert bundle["type"] == "history" and bundle["meta"]["tag"][0]["code"] == "caf-signalled"
    assert bundle["entry"][1]["request"]["url"].startswith("Flag/caf-")
    assert "Noah" not in route.calls[0].request.content.decode()  # ids only, never names
    # delete: 204, then gone, and nothing more is queued for it
    assert api.delete(f"/fhir/Subscription/{sub['id']}", headers=other).status_code == 404
    assert api.delete(f"/fhir/Subscription/{sub['id']}", headers=h).status_code == 204
    outcome(api.get(f"/fhir/Subscription/{sub['id']}", headers=h), 404, "not-found")
    queued = count(engine, "notification")
    other_child = _new_child(engine)
    assert api.post("/fhir/Flag", headers=h, json=_signal(other_child, world.hv)).status_code == 201
    notify.fan_out(engine)
    assert count(engine, "notification") == queued


def test_reads_inside_a_bundle_count_towards_the_rate_limit(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = _writer(state, engine)
    state.limiter = SubjectLimiter(
        state.limiter.store, per_minute=3, trawl_window_seconds=3600, trawl_distinct=10_000
    )
    read = {"request": {"method": "GET", "url": f"Patient/{world.child}"}}
    two = {"resourceType": "Bundle", "type": "batch", "entry": [read, read]}
    r = api.post("/fhir", headers=h, json=two)
    assert r.status_code == 200 and [e["response"]["status"] for e in r.json()["entry"]] == ["200", "200"]
    # two reads counted: a third is the limit, a fourth over it, whether in a Bundle or not
    assert api.get(f"/fhir/Patient/{world.child}", headers=h).status_code == 200
    refused = api.post("/fhir", headers=h, json=two)
    assert refused.status_code == 429 and refused.headers["Retry-After"]


def test_a_reference_to_another_server_is_never_taken_for_a_local_resource(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """`http://other.example/fhir/Patient/<id>` names a patient held elsewhere: refused (400) and
    nothing written, alone or in a transaction; this server's own absolute URL is as good as
    `Patient/<id>`."""
    h = _writer(state, engine)
    child = _new_child(engine)
    before = count(engine, "consent")
    foreign = _consent(child)
    foreign["patient"] = {"reference": f"http://other.example/fhir/Patient/{child}"}
    said = outcome(api.post("/fhir/Consent", headers=h, json=foreign), 400, "invalid")
    assert "another server" in said
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": foreign, "request": {"method": "POST", "url": "Consent"}}],
    }
    outcome(api.post("/fhir", headers=h, json=bundle), 400, "invalid")
    assert count(engine, "consent") == before
    own = _consent(child)
    own["patient"] = {"reference": f"http://testserver/fhir/Patient/{child}"}
    r = api.post("/fhir/Consent", headers=h, json=own)
    assert r.status_code == 201, r.text
    assert r.json()["patient"]["reference"] == f"Patient/{child}"
    assert count(engine, "consent") == before + 1


@pytest.mark.parametrize(
    "reference", ["abc", "Patient/", "/", "urn:uuid:nowhere", "Patient/not-a-uuid", "Flag/x"]
)
def test_a_malformed_or_unresolved_reference_is_a_4xx_naming_the_element(
    api: TestClient, engine: Engine, state: AuthState, world: World, reference: str
) -> None:
    """A reference without a '/' (or an urn:uuid: no entry of the transaction carries) answered 500
    (IndexError in mapping.ref_id) and reset the connection; now 400 (or 404 for an id that is no id
    of ours) naming Consent.patient, alone or in a transaction, and nothing is written."""
    h = _writer(state, engine)
    child = _new_child(engine)
    before = count(engine, "consent")
    bad = _consent(child)
    bad["patient"] = {"reference": reference}
    r = api.post("/fhir/Consent", headers=h, json=bad)
    assert r.status_code in (400, 404, 422), r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["expression"] == ["Consent.patient"], r.text
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": bad, "request": {"method": "POST", "url": "Consent"}}],
    }
    r = api.post("/fhir", headers=h, json=bundle)
    assert r.status_code in (400, 404, 422) and r.json()["resourceType"] == "OperationOutcome", r.text
    assert count(engine, "consent") == before
