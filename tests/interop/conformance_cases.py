"""How the conformance suite exercises each thing the CapabilityStatement advertises (test_conformance).

`INTERACTIONS` (here) and `SEARCHES`, `INCLUDES`, `OPERATIONS` (conformance_searches, which joins
them into `CASES`) map (resource type or 'system', what) to a function of the running server's
`Conf`. `what` is an interaction code ('read', 'vread', 'search-type', 'history-instance',
'history-type', 'create', 'update', 'patch', 'delete', 'transaction', 'batch', 'history-system'),
'search:<param>', '$<operation>', '_include:<Type:param>' or '_revinclude:<Type:param>'.

Each case uses fhirclient (its R4 models: reads, creates, updates, deletes, searches) or fhirpy
(searches with parameters, history, operations, Bundles), unmodified, and asserts what the answer
must hold, so that a case can fail. To add one: write the function and its line in one of the
tables (docs/conformance.md, "Adding an interaction")."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from fhirclient.server import FHIRNotFoundException
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound
from fhirpy.base.searchset import Raw

from interop import systems as S
from tests.interop.conformance_server import Conf
from tests.interop.test_fhir_api import _episode
from tests.interop.test_fhir_writes import _consent, _moved, _signal, _subscription, _team

Case = Callable[[Conf], None]
Ref = Callable[[Conf], str]  # the id of the resource a case works on


def model(kind: str) -> Any:
    """fhirclient's R4 model class of a resource type."""
    return getattr(importlib.import_module(f"fhirclient.models.{kind.lower()}"), kind)


def create(c: Conf, body: dict[str, Any]) -> dict[str, Any]:
    """Create with fhirclient: the body goes through its strict R4 model first; the created resource."""
    made = model(body["resourceType"])(body).create(c.server)
    assert made and made["resourceType"] == body["resourceType"] and made["id"], made
    return dict(made)


def update(c: Conf, body: dict[str, Any]) -> dict[str, Any]:
    """Update with fhirclient (a PUT of its strict R4 model; no If-Match: fhirclient sends none)."""
    done = model(body["resourceType"])(body).update(c.server)
    assert done and done["id"] == body["id"], done
    return dict(done)


def read_json(c: Conf, kind: str, rid: str) -> dict[str, Any]:
    """Read with fhirclient; the resource as JSON."""
    return dict(model(kind).read(rid, c.server).as_json())


def bundle(c: Conf, kind: str, params: dict[str, str], client: str = "fhir") -> dict[str, Any]:
    """A search with fhirpy (raw parameters, names as the server spells them): the searchset."""
    found: dict[str, Any] = getattr(c, client).resources(kind).search(Raw(**params)).fetch_raw()
    assert found["type"] == "searchset", found
    return found


def matches(found: dict[str, Any], mode: str = "match") -> list[str]:
    """'Type/id' of the entries of a searchset with this search mode."""
    entries = found.get("entry", [])
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in entries
        if e["search"]["mode"] == mode
    ]


def made(c: Conf, name: str, build: Callable[[Conf], Any]) -> Any:
    """Something a case needs, built once per server."""
    if name not in c.made:
        c.made[name] = build(c)
    return c.made[name]


# --------------------------------------------------------------------------- what the cases stand on


def full_child(c: Conf) -> dict[str, str]:
    """A child with a consent, a CAF started with it, a TAC and an involvement, all written over FHIR."""

    def build(c: Conf) -> dict[str, str]:
        child, consent, flag = started_caf(c, "Fuller")
        team = create(c, new_team(c, child))
        episode = create(c, _episode(c.world, patient={"reference": f"Patient/{child}"}))
        return {
            "Patient": str(child),
            "Consent": consent["id"],
            "Flag": flag["id"],
            "CareTeam": team["id"],
            "CarePlan": team["id"],  # the TAC's plan
            "EpisodeOfCare": episode["id"],
        }

    result: dict[str, str] = made(c, "full", build)
    return result


def related(c: Conf) -> str:
    """The world child's mother, found by the patient parameter."""
    found = bundle(c, "RelatedPerson", {"patient": f"Patient/{c.world.child}"})
    ids = matches(found)
    assert ids, found
    return ids[0].split("/")[1]


def audit_event(c: Conf) -> str:
    """An AuditEvent about the world child (its reads are audited), found by an auditor."""
    read_json(c, "Patient", str(c.world.child))
    found = bundle(c, "AuditEvent", {"patient": f"Patient/{c.world.child}"}, client="auditor")
    assert found["total"] >= 1, found
    return str(found["entry"][0]["resource"]["id"])


def subscription(c: Conf) -> str:
    """A rest-hook Subscription of the trust's system."""
    return str(made(c, "subscription", lambda c: create(c, _subscription("Flag?code=caf-signalled")))["id"])


IDS: dict[str, Ref] = {
    "Patient": lambda c: str(c.world.child),
    "EpisodeOfCare": lambda c: str(c.world.involvement),
    "Flag": lambda c: full_child(c)["Flag"],
    "CareTeam": lambda c: full_child(c)["CareTeam"],
    "CarePlan": lambda c: full_child(c)["CareTeam"],  # a TAC's plan has its TAC's id
    "Consent": lambda c: full_child(c)["Consent"],
    "RelatedPerson": related,
    "Practitioner": lambda c: str(c.world.hv),
    "PractitionerRole": lambda c: str(c.world.hv),
    "Organization": lambda c: str(c.world.trust),
    "HealthcareService": lambda c: str(c.world.hv_service),
    "Location": lambda c: str(c.world.locality),
    "AuditEvent": audit_event,
    "Subscription": subscription,
}


# --------------------------------------------------------------------------- interactions


def read(kind: str) -> Case:
    """read, with fhirclient (the AuditEvent, an auditor's, with fhirpy)."""

    def case(c: Conf) -> None:
        rid = IDS[kind](c)
        if kind == "AuditEvent":
            res = c.auditor.reference(kind, rid).to_resource()
            assert res["id"] == rid
            with pytest.raises(ResourceNotFound):  # R4: an id the server does not hold is 404
                c.auditor.reference(kind, "999999999").to_resource()
            return
        assert read_json(c, kind, rid)["id"] == rid
        with pytest.raises(FHIRNotFoundException):
            read_json(c, kind, str(uuid.uuid4()))

    return case


def vread(kind: str) -> Case:
    """vread of the version read, with fhirclient; the same resource comes back."""

    def case(c: Conf) -> None:
        current = read_json(c, kind, IDS[kind](c))
        version = current["meta"]["versionId"]
        res = model(kind).read_from(f"{kind}/{current['id']}/_history/{version}", c.server).as_json()
        assert res["id"] == current["id"] and res["meta"]["versionId"] == version
        with pytest.raises(FHIRNotFoundException):  # a version it never had
            model(kind).read_from(f"{kind}/{current['id']}/_history/{int(version) + 1000}", c.server)

    return case


def history_instance(kind: str) -> Case:
    """An instance's _history, with fhirpy: a history Bundle of its versions, newest first."""

    def case(c: Conf) -> None:
        rid = IDS[kind](c)
        found = c.fhir.execute(f"{kind}/{rid}/_history", method="get")
        assert found["type"] == "history" and found["total"] >= 1, found
        assert {e["resource"]["id"] for e in found["entry"]} == {rid}

    return case


def history_type(kind: str) -> Case:
    """A type's _history since yesterday, with fhirpy: the world's resource of that type is in it."""

    def case(c: Conf) -> None:
        since = (date.today() - timedelta(days=1)).isoformat() + "T00:00:00Z"
        found = c.fhir.execute(f"{kind}/_history", method="get", params={"_since": since, "_count": "100"})
        assert found["type"] == "history", found
        every = [e["resource"]["id"] for e in found.get("entry", [])]
        assert IDS[kind](c) in every, found
        # two at a time, following the next links with fhirclient (its strict Bundle model): the same
        page = model("Bundle").read_from(f"{kind}/_history?_since={since}&_count=2", c.server)
        paged = []
        while True:
            paged += [e.resource.id for e in page.entry or []]
            after = [link.url for link in page.link or [] if link.relation == "next"]
            if not after:
                break
            page = model("Bundle").read_from(after[0], c.server)
        assert sorted(paged) == sorted(every), (paged, every)

    return case


def search_type(kind: str, params: Callable[[Conf], dict[str, str]]) -> Case:
    """search-type with fhirclient's FHIRSearch (its strict R4 Bundle model): the expected one is found."""

    def case(c: Conf) -> None:
        if kind == "AuditEvent":  # an auditor's: fhirpy holds that token
            assert IDS[kind](c) in [m.split("/")[1] for m in matches(bundle(c, kind, params(c), "auditor"))]
            unknown_parameters_are_ignored_unless_strict(c, kind, params(c), "auditor")
            return
        found = model(kind).where(params(c)).perform_resources_iter(c.server)
        assert IDS[kind](c) in {r.id for r in found}
        unknown_parameters_are_ignored_unless_strict(c, kind, params(c), "fhir")
        if kind in CATALOGUE:
            pages_add_up(c, kind)

    return case


CATALOGUE = ("Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Location")


def pages_add_up(c: Conf, kind: str) -> None:
    """The whole catalogue type one per page, following the next links with fhirclient's FHIRSearch,
    is what one page of 100 holds: no resource lost or repeated between pages."""
    every = matches(bundle(c, kind, {"_count": "100"}))
    assert 0 < len(every) < 100, every  # (the world has one Location, several of the others)
    paged = [f"{kind}/{r.id}" for r in model(kind).where({"_count": "1"}).perform_resources_iter(c.server)]
    assert paged == every, (paged, every)


SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def result_parameters(
    c: Conf, kind: str, params: dict[str, str], client: SyncFHIRClient, plain: list[str]
) -> None:
    """fhirpy's count(), _summary=count (a total, no entries) and _elements (each entry tagged
    SUBSETTED, with the element asked for and the ones R4 requires), as R4 search describes them.
    (A total may grow meanwhile: the auditor's searches are audited too.)"""
    if kind in ("Subscription", "Group"):  # their search takes no parameters: these are ignored, and reported
        return
    assert client.resources(kind).search(Raw(**params)).count() >= len(plain)
    counted = client.resources(kind).search(Raw(**params, _summary="count")).fetch_raw()
    assert counted["total"] >= len(plain) and not matches(counted), counted
    first = client.resources(kind).search(Raw(**params)).fetch_raw()["entry"][0]["resource"]
    element = next(k for k in first if k not in ("resourceType", "id", "meta", "extension"))
    subset = client.resources(kind).search(Raw(**params, _elements=element)).fetch_raw()
    for e in subset["entry"]:
        if e["search"]["mode"] == "match":
            assert element in e["resource"] and SUBSETTED in e["resource"]["meta"]["tag"], e["resource"]


def unknown_parameters_are_ignored_unless_strict(
    c: Conf, kind: str, params: dict[str, str], client: str
) -> None:
    """R4: a parameter the server does not know is ignored (named in an outcome entry, left out of the
    self link) unless the client sent Prefer: handling=strict, which gets 400."""
    plain = matches(bundle(c, kind, params, client))
    ignoring = bundle(c, kind, {**params, "x-colour": "blue"}, client)
    assert matches(ignoring) == plain, ignoring
    warnings = [e["resource"] for e in ignoring["entry"] if e["search"]["mode"] == "outcome"]
    assert warnings and "x-colour" in warnings[0]["issue"][0]["diagnostics"], ignoring
    assert "x-colour" not in next(x["url"] for x in ignoring["link"] if x["relation"] == "self")
    used: SyncFHIRClient = getattr(c, client)
    result_parameters(c, kind, params, used, plain)
    strict = SyncFHIRClient(
        c.base,
        authorization=used.authorization,
        extra_headers={**(used.extra_headers or {}), "Prefer": "handling=strict"},
        requests_config=used.requests_config,
    )
    with pytest.raises(OperationOutcome) as refused:
        strict.resources(kind).search(Raw(**params, **{"x-colour": "blue"})).fetch_raw()
    assert refused.value.resource["issue"][0]["code"] == "not-supported", refused.value.resource


def create_case(body: Callable[[Conf], dict[str, Any]]) -> Case:
    """create with fhirclient; the resource read back is the one created."""

    def case(c: Conf) -> None:
        sent = body(c)
        done = create(c, sent)
        assert read_json(c, sent["resourceType"], done["id"])["id"] == done["id"]

    return case


def new_episode(c: Conf) -> dict[str, Any]:
    return _episode(c.world, patient={"reference": f"Patient/{c.new_child()}"})


def new_role(c: Conf) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "practitioner": {"display": "Nia Patel"},
        "organization": {"reference": f"Organization/{c.world.trust}"},
        "code": [{"text": "school nurse"}],
    }


def update_patient(c: Conf) -> None:
    """A child's gender changed by the trust's system (fhirclient: read, change, PUT)."""
    rid = str(c.new_child())
    current = read_json(c, "Patient", rid)
    done = update(c, {**current, "gender": "male"})
    assert done["gender"] == "male" and done["meta"]["versionId"] != current["meta"]["versionId"]


def update_episode(c: Conf) -> None:
    """An involvement's level of need raised."""
    current = read_json(c, "EpisodeOfCare", full_child(c)["EpisodeOfCare"])
    level = {"url": S.EXT_LEVEL_OF_NEED, "valueCoding": {"system": S.LEVEL_OF_NEED, "code": "3"}}
    ext = [e for e in current["extension"] if e["url"] != S.EXT_LEVEL_OF_NEED] + [level]
    done = update(c, {**current, "extension": ext})
    assert done["meta"]["versionId"] != current["meta"]["versionId"], done


def started_caf(c: Conf, family: str = "Brook") -> tuple[uuid.UUID, dict[str, Any], dict[str, Any]]:
    """A new child's CAF signalled, then started with the family's consent: (child, consent, Flag)."""
    child = c.new_child(family)
    consent = create(c, _consent(child))
    flag = create(c, _signal(child, c.world.hv))
    ext = {"url": S.EXT_CAF_CONSENT, "valueReference": {"reference": f"Consent/{consent['id']}"}}
    done = update(c, _moved(flag, "caf-in-progress", ext))
    assert done["code"]["coding"][0]["code"] == "caf-in-progress", done
    return child, consent, done


def update_flag(c: Conf) -> None:
    """A CAF moved on with PUT (signalled -> in progress, the Flag's code changes)."""
    started_caf(c)


def new_team(c: Conf, child: uuid.UUID) -> dict[str, Any]:
    """The TAC of a child whose CAF is started: the health visitor leads, with the SENCO."""
    review = {"url": S.EXT_NEXT_REVIEW, "valueDate": (date.today() + timedelta(days=42)).isoformat()}
    members = [(c.world.hv, "health visitor"), (c.world.senco, "SENCO")]
    return _team(child, members, c.world.hv, extension=[review])


def create_team(c: Conf) -> None:
    """A TAC formed for a started CAF."""
    child, _consent_made, _flag = started_caf(c)
    done = create(c, new_team(c, child))
    assert done["subject"]["reference"] == f"Patient/{child}", done


def update_consent(c: Conf) -> None:
    """A consent withdrawn."""
    consent = create(c, _consent(c.new_child()))
    reason = [{"url": S.EXT_CHANGE_REASON, "valueString": "family moved"}]
    done = update(c, {**consent, "status": "inactive", "extension": reason})
    assert done["status"] == "inactive", done


def update_team(c: Conf) -> None:
    """The TAC's next review moved."""
    current = read_json(c, "CareTeam", full_child(c)["CareTeam"])
    review = {"url": S.EXT_NEXT_REVIEW, "valueDate": (date.today() + timedelta(days=60)).isoformat()}
    ext = [e for e in current.get("extension", []) if e["url"] != S.EXT_NEXT_REVIEW] + [review]
    done = update(c, {**current, "extension": ext})
    assert any(e.get("valueDate") == review["valueDate"] for e in done["extension"]), done


def update_role(c: Conf) -> None:
    """A practitioner role's telephone changed: a new version."""
    current = create(c, new_role(c))
    done = update(c, {**current, "telecom": [{"system": "phone", "value": "07700 900999", "use": "work"}]})
    assert done["meta"]["versionId"] == "2", done


def delete_subscription(c: Conf) -> None:
    """A Subscription ended with fhirclient's delete; reading it again is 404."""
    rid = create(c, _subscription("Flag?code=caf-closed"))["id"]
    model("Subscription")(read_json(c, "Subscription", rid)).delete(c.server)
    try:
        read_json(c, "Subscription", rid)
    except FHIRNotFoundException:
        return
    raise AssertionError("a deleted Subscription is still read")


# --------------------------------------------------------------------------- the table

SEARCH_TYPE: dict[str, Callable[[Conf], dict[str, str]]] = {
    "Patient": lambda c: {"identifier": f"{S.NHS_NUMBER}|{c.world.nhs}"},
    "RelatedPerson": lambda c: {"patient": f"Patient/{c.world.child}"},
    "AuditEvent": lambda c: {"patient": f"Patient/{c.world.child}"},
    "Subscription": lambda c: {},  # a client's own, all of them
    "EpisodeOfCare": lambda c: {"patient": f"Patient/{c.world.child}"},
    # the child's resources are searched one child at a time (too-costly otherwise)
    **{
        k: (lambda c: {"patient": f"Patient/{full_child(c)['Patient']}"})
        for k in ("Flag", "CareTeam", "Consent", "CarePlan")
    },
}


def _search_type_params(kind: str) -> Callable[[Conf], dict[str, str]]:
    return SEARCH_TYPE.get(kind, lambda c: {"_id": IDS[kind](c)})


INTERACTIONS: dict[tuple[str, str], Case] = {
    ("Patient", "update"): update_patient,
    ("EpisodeOfCare", "create"): create_case(new_episode),
    ("EpisodeOfCare", "update"): update_episode,
    ("Flag", "create"): create_case(lambda c: _signal(c.new_child(), c.world.hv)),
    ("Flag", "update"): update_flag,
    ("Consent", "create"): create_case(lambda c: _consent(c.new_child())),
    ("Consent", "update"): update_consent,
    ("CareTeam", "create"): create_team,
    ("CareTeam", "update"): update_team,
    ("PractitionerRole", "create"): create_case(new_role),
    ("PractitionerRole", "update"): update_role,
    ("Subscription", "create"): create_case(lambda c: _subscription("Flag?code=caf-in-progress")),
    ("Subscription", "delete"): delete_subscription,
}
for _kind in IDS:
    INTERACTIONS[(_kind, "read")] = read(_kind)
    INTERACTIONS[(_kind, "search-type")] = search_type(_kind, _search_type_params(_kind))
for _kind in ("Patient", "EpisodeOfCare"):
    INTERACTIONS[(_kind, "vread")] = vread(_kind)
    INTERACTIONS[(_kind, "history-instance")] = history_instance(_kind)
for _kind in ("Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Location"):
    INTERACTIONS[(_kind, "history-type")] = history_type(_kind)
