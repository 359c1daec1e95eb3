"""Contract: an independent FHIR client library (fhirpy) drives the server over real HTTP (uvicorn)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory.db import unit_of_work
from interop import systems as S
from tests.fixtures.builders import make_child
from tests.interop.conftest import World, system_headers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def base_url(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 in a thread; its FHIR base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.025)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/fhir"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def fhir(base_url: str, state: AuthState, engine: Engine, world: World) -> SyncFHIRClient:
    """A fhirpy client with a trust system's token."""
    headers = system_headers(state, engine)
    return SyncFHIRClient(
        base_url,
        authorization=headers.pop("Authorization"),
        extra_headers={"X-Purpose-Of-Use": headers["X-Purpose-Of-Use"]},
    )


def test_search_with_includes(fhir: SyncFHIRClient, world: World) -> None:
    bundle: dict[str, Any] = (
        fhir.resources("Patient")
        .search(identifier=f"{S.NHS_NUMBER}|{world.nhs}")
        .revinclude("EpisodeOfCare", "patient")
        .revinclude("Flag", "patient")
        .include("Patient", "general-practitioner")
        .fetch_raw()
    )
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == ["EpisodeOfCare", "Flag", "Flag", "Organization", "Patient"]
    patient = fhir.resources("Patient").search(_id=str(world.child)).first()
    assert patient is not None and patient["birthDate"]
    episodes = (
        fhir.resources("EpisodeOfCare").search(patient=f"Patient/{world.child}", status="active").fetch()
    )
    assert [e["id"] for e in episodes] == [str(world.involvement)]


def test_paging_follows_next_links(fhir: SyncFHIRClient, engine: Engine, world: World) -> None:
    with unit_of_work(engine) as s:
        for i in range(4):
            make_child(s, names=[{"given": f"Page{i}", "family": "Pager"}])
    dob = fhir.resources("Patient").search(_id=str(world.child)).first()["birthDate"]
    found = fhir.resources("Patient").search(family="pager", birthdate=dob[:4]).limit(2).fetch_all()
    assert len(found) == 4 and len({p["id"] for p in found}) == 4


def test_transaction_and_an_error_as_operation_outcome(fhir: SyncFHIRClient, world: World) -> None:
    episode = {
        "resourceType": "EpisodeOfCare",
        "extension": [
            {
                "url": S.EXT_HEALTHCARE_SERVICE,
                "valueReference": {"reference": f"HealthcareService/{world.school_nursing}"},
            },
            {"url": S.EXT_INVOLVEMENT_ROLE, "valueString": "school nurse"},
        ],
        "status": "active",
        "patient": {"reference": f"Patient/{world.child}"},
        "period": {"start": (date.today() - timedelta(days=1)).isoformat()},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": episode, "request": {"method": "POST", "url": "EpisodeOfCare"}}],
    }
    response = fhir.execute("", method="post", data=bundle)
    assert response["type"] == "transaction-response"
    assert response["entry"][0]["response"]["status"].startswith("201")
    created = response["entry"][0]["resource"]["id"]
    assert fhir.reference("EpisodeOfCare", created).to_resource()["status"] == "active"
    with pytest.raises(OperationOutcome) as err:
        fhir.execute("", method="post", data=bundle)  # the same involvement again: a conflict
    assert err.value.resource["issue"][0]["code"] == "conflict"
    with pytest.raises(OperationOutcome) as err:
        fhir.resources("Patient").search(gender="female").fetch()
    assert err.value.resource["issue"][0]["code"] == "too-costly"
