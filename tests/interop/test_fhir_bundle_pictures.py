"""A Bundle builds each child's picture once, and again only after an entry changes that child."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory import service
from directory.db import unit_of_work
from directory.models import Organisation
from interop import systems as S
from tests.fixtures.builders import make_practitioner
from tests.interop.conftest import World
from tests.interop.test_fhir_api import valid
from tests.interop.test_fhir_writes import _consent, _moved, _new_child, _signal, _writer


def _unversioned(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource as a client re-sends it without If-Match (no meta: no version to check)."""
    return {k: v for k, v in resource.items() if k != "meta"}


def test_a_bundle_builds_a_childs_picture_once_and_after_each_change(
    api: TestClient, engine: Engine, state: AuthState, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _writer(state, engine)
    child = _new_child(engine)
    with unit_of_work(engine) as s:
        nurse = make_practitioner(
            s, s.get(Organisation, world.trust), name="Nia Patel", role="school nurse"
        ).id
    r = api.post("/fhir/Flag", headers=h, json=_signal(child, world.hv))
    assert r.status_code == 201, r.text
    caf = _unversioned(r.json())
    lp = _unversioned(api.get(f"/fhir/Flag/lp-{child.hex}", headers=h).json())
    consent = api.post("/fhir/Consent", headers=h, json=_consent(child, "information_sharing")).json()

    builds: list[Any] = []
    real = service.build_card

    def counted(*args: Any, **kwargs: Any) -> Any:
        builds.append(kwargs.get("child"))
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "build_card", counted)
    start = _moved(
        caf,
        "caf-in-progress",
        {"url": S.EXT_CAF_CONSENT, "valueReference": {"reference": "urn:uuid:caf-consent"}},
    )
    hand_over = {
        **lp,
        "author": {"reference": f"Practitioner/{nurse}"},
        "extension": [{"url": S.EXT_CHANGE_REASON, "valueString": "the nurse sees the family weekly"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            # changes the child: built once, after the change
            {
                "fullUrl": "urn:uuid:caf-consent",
                "resource": _consent(child),
                "request": {"method": "POST", "url": "Consent"},
            },
            # checks what the last entry left (no build), changes the child, then shows the result
            {"resource": start, "request": {"method": "PUT", "url": f"Flag/{caf['id']}"}},
            # asks the nurse to take the Lead Professional role: the picture stays as it was (no build)
            {"resource": hand_over, "request": {"method": "PUT", "url": f"Flag/{lp['id']}"}},
            # change nothing: no build at all
            {"resource": consent, "request": {"method": "PUT", "url": f"Consent/{consent['id']}"}},
            {
                "resource": _moved(start, "caf-in-progress", *start["extension"])
                | {"author": hand_over["author"]},
                "request": {"method": "PUT", "url": f"Flag/{caf['id']}"},
            },
        ],
    }
    r = api.post("/fhir", headers=h, json=bundle)
    assert r.status_code == 200, r.text
    entries = valid(r.json())["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", *["200 OK"] * 4]
    assert len(builds) == 2, f"{len(builds)} card builds for a 5-entry bundle that changes the child twice"
    asked = entries[2]["response"]["outcome"]["issue"][0]  # the hand-over waits for the nurse to accept
    assert asked["severity"] == "information" and "requested" in asked["diagnostics"]

    # what the bundle answered is what a fresh read shows (nothing came from a stale picture)
    monkeypatch.undo()
    for entry in entries[2:]:
        res = entry["resource"]
        assert api.get(f"/fhir/{res['resourceType']}/{res['id']}", headers=h).json() == res
    assert entries[4]["resource"]["code"]["coding"][0]["code"] == "caf-in-progress"
    assert entries[4]["resource"]["author"]["reference"] == f"Practitioner/{world.hv}"  # until accepted
