"""The conformance cases of what a CapabilityStatement says of a resource type beyond its interactions:
conditionalCreate (If-None-Exist), versioning 'versioned-update' (If-Match, 412 when stale) and
readHistory (vread answers an earlier version as it was). fhirpy sends the headers, set on a client of
its own (`extra_headers`), unmodified."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, OperationOutcome

from interop import systems as S
from tests.interop.conformance_cases import (
    Case,
    create,
    model,
    new_role,
    new_team,
    read_json,
    started_caf,
)
from tests.interop.conformance_server import Conf
from tests.interop.test_fhir_api import _episode
from tests.interop.test_fhir_writes import _consent, _moved, _signal

Change = Callable[[dict[str, Any], int], dict[str, Any]]  # (resource as read, n) -> changed the n-th way


def with_headers(c: Conf, **headers: str) -> SyncFHIRClient:
    """The trust's fhirpy client with these request headers too."""
    return SyncFHIRClient(
        c.base,
        authorization=c.fhir.authorization,
        extra_headers={**(c.fhir.extra_headers or {}), **headers},
        requests_config=c.fhir.requests_config,
    )


def conditional_create(kind: str, made: Callable[[Conf], tuple[str, dict[str, Any]]]) -> Case:
    """POST with If-None-Exist naming an existing resource: 200 with it, nothing new created."""

    def case(c: Conf) -> None:
        patient, body = made(c)
        existing = create(c, body)
        criteria = f"patient={patient}&_id={existing['id']}"
        again = with_headers(c, **{"If-None-Exist": criteria}).execute(kind, method="post", data=body)
        assert again["id"] == existing["id"], again
        found = c.fhir.resources(kind).search(patient=patient).fetch_raw()
        assert [e["resource"]["id"] for e in found.get("entry", [])].count(existing["id"]) == 1

    return case


def twenty_at_once(c: Conf) -> None:
    """Twenty of the same conditional create at once (a retrying EPR, a double-click): one involvement
    is made; every other answer is that one (200) or a conflict naming it (409), never a 5xx."""
    patient, body = _new_episode(c)
    client = with_headers(
        c, **{"If-None-Exist": f"{patient.replace('Patient/', 'patient=Patient/')}&status=active"}
    )

    def post(_: int) -> str:
        try:
            return str(client.execute("EpisodeOfCare", method="post", data=body)["id"])
        except OperationOutcome as refused:
            assert refused.resource["issue"][0]["code"] == "conflict", refused.resource
            return "conflict"

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(post, range(20)))
    made = {a for a in answers if a != "conflict"}
    found = c.fhir.resources("EpisodeOfCare").search(patient=patient).fetch_raw()
    assert [e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"] == list(made), (
        answers
    )


def _conditional_episode(c: Conf) -> None:
    conditional_create("EpisodeOfCare", _new_episode)(c)
    twenty_at_once(c)


def _new_episode(c: Conf) -> tuple[str, dict[str, Any]]:
    child = c.new_child()
    return f"Patient/{child}", _episode(c.world, patient={"reference": f"Patient/{child}"})


def _new_flag(c: Conf) -> tuple[str, dict[str, Any]]:
    child = c.new_child()
    return f"Patient/{child}", _signal(child, c.world.hv)


def _new_consent(c: Conf) -> tuple[str, dict[str, Any]]:
    child = c.new_child()
    return f"Patient/{child}", _consent(child)


def _new_team(c: Conf) -> tuple[str, dict[str, Any]]:
    child, _consent_made, _flag = started_caf(c)
    return f"Patient/{child}", new_team(c, child)


def versioned_update(kind: str, target: Callable[[Conf], str], change: Change) -> Case:
    """PUT with If-Match of the version read: a new version; again with that (now stale) version: 412,
    and the resource keeps the first change."""

    def case(c: Conf) -> None:
        rid = target(c)
        current = read_json(c, kind, rid)
        version = current["meta"]["versionId"]
        matching = with_headers(c, **{"If-Match": f'W/"{version}"'})
        done = matching.execute(f"{kind}/{rid}", method="put", data=change(current, 1))
        assert done["meta"]["versionId"] != version, done
        # fhirpy raises MultipleResourcesFound for any 412 (its conditional operations' meaning)
        with pytest.raises(MultipleResourcesFound) as stale:
            matching.execute(f"{kind}/{rid}", method="put", data=change(done, 2))
        said = json.loads(str(stale.value))
        assert said["resourceType"] == "OperationOutcome" and said["issue"][0]["code"] == "conflict", said
        assert read_json(c, kind, rid)["meta"]["versionId"] == done["meta"]["versionId"]

    return case


def _level(res: dict[str, Any], n: int) -> dict[str, Any]:
    level = {"url": S.EXT_LEVEL_OF_NEED, "valueCoding": {"system": S.LEVEL_OF_NEED, "code": str(2 + n)}}
    return {**res, "extension": [e for e in res["extension"] if e["url"] != S.EXT_LEVEL_OF_NEED] + [level]}


def _phone(res: dict[str, Any], n: int) -> dict[str, Any]:
    return {**res, "telecom": [{"system": "phone", "value": f"07700 90099{n}", "use": "work"}]}


def _review(res: dict[str, Any], n: int) -> dict[str, Any]:
    review = {"url": S.EXT_NEXT_REVIEW, "valueDate": (date.today() + timedelta(days=50 + n)).isoformat()}
    return {
        **res,
        "extension": [e for e in res.get("extension", []) if e["url"] != S.EXT_NEXT_REVIEW] + [review],
    }


def _gender(res: dict[str, Any], n: int) -> dict[str, Any]:
    return {**res, "gender": ("male", "other")[n - 1]}


def _caf_moves(res: dict[str, Any], n: int) -> dict[str, Any]:
    outcome = {"url": S.EXT_CAF_OUTCOME, "valueCode": "needs_met_in_service"}
    return _moved(res, "caf-completed", outcome) if n == 1 else _moved(res, "caf-closed")


def _own_flag(c: Conf) -> str:
    return str(started_caf(c)[2]["id"])


def _own_team(c: Conf) -> str:
    child, _consent_made, _flag = started_caf(c)
    return str(create(c, new_team(c, child))["id"])


def read_history(kind: str, target: Callable[[Conf], str], change: Change) -> Case:
    """After an update, vread of the earlier version answers it as it was, not as it is now."""

    def case(c: Conf) -> None:
        rid = target(c)
        before = read_json(c, kind, rid)
        after = model(kind)(change(before, 1)).update(c.server)
        assert after["meta"]["versionId"] != before["meta"]["versionId"], after
        old = (
            model(kind).read_from(f"{kind}/{rid}/_history/{before['meta']['versionId']}", c.server).as_json()
        )
        assert change(old, 1) != old and old["meta"]["versionId"] == before["meta"]["versionId"], old

    return case


def _fresh_child(c: Conf) -> str:
    return str(c.new_child())


def _fresh_episode(c: Conf) -> str:
    return str(create(c, _new_episode(c)[1])["id"])


VERSIONS: dict[tuple[str, str], Case] = {
    ("EpisodeOfCare", "conditional-create"): _conditional_episode,
    ("Flag", "conditional-create"): conditional_create("Flag", _new_flag),
    ("Consent", "conditional-create"): conditional_create("Consent", _new_consent),
    ("CareTeam", "conditional-create"): conditional_create("CareTeam", _new_team),
    ("Patient", "versioned-update"): versioned_update("Patient", _fresh_child, _gender),
    ("EpisodeOfCare", "versioned-update"): versioned_update("EpisodeOfCare", _fresh_episode, _level),
    ("PractitionerRole", "versioned-update"): versioned_update(
        "PractitionerRole", lambda c: str(create(c, new_role(c))["id"]), _phone
    ),
    ("Flag", "versioned-update"): versioned_update("Flag", _own_flag, _caf_moves),
    ("CareTeam", "versioned-update"): versioned_update("CareTeam", _own_team, _review),
    ("Patient", "readHistory"): read_history("Patient", _fresh_child, _gender),
    ("EpisodeOfCare", "readHistory"): read_history("EpisodeOfCare", _fresh_episode, _level),
}
