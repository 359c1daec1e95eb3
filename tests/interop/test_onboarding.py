"""A health system connects without help: registered with one command (`childindex clients register`),
approved by a second operator, it gets a token with private_key_jwt as SMART Backend Services says,
discovers everything from /fhir/.well-known/smart-configuration, and uses every scope the
CapabilityStatement and the smart-configuration advertise. No database edits for the client."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from auth.scopes import is_known
from childindex.cli import app as cli
from directory.db import unit_of_work
from directory.models import Role
from interop import systems as S
from tests.fixtures.auth_builders import make_grant
from tests.fixtures.builders import make_child
from tests.interop.conftest import FHIR, World
from tests.interop.test_fhir_api import _episode, valid
from tests.interop.test_fhir_writes import _consent, _moved, _signal, _subscription, _team

runner = CliRunner()
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_LETTERS = (("c", "create"), ("r", "read"), ("u", "update"), ("d", "delete"), ("s", "search-type"))


def advertised_scopes(capability: dict[str, Any], smart: dict[str, Any]) -> list[str]:
    """The system scopes a connected system may ask for: for each resource the CapabilityStatement
    lists, one scope for its reads and one for its writes (SMART v2 letters in cruds order), and every
    system scope the smart-configuration names."""
    out: set[str] = set()
    for res in capability["rest"][0]["resource"]:
        codes = {i["code"] for i in res["interaction"]}
        letters = "".join(letter for letter, code in _LETTERS if code in codes)
        reads, writes = "".join(x for x in letters if x in "rs"), "".join(x for x in letters if x in "cud")
        out.update(f"system/{res['type']}.{part}" for part in (reads, writes) if part)
    out.update(s for s in smart["scopes_supported"] if s.startswith("system/"))
    return sorted(out)


def test_every_advertised_scope_is_known_and_nothing_else_is(api: TestClient) -> None:
    smart = api.get("/fhir/.well-known/smart-configuration").json()
    scopes = advertised_scopes(api.get("/fhir/metadata").json(), smart)
    for named in ("system/Flag.cu", "system/Consent.cu", "system/CareTeam.cu", "system/Subscription.crds"):
        assert named in scopes
    assert [s for s in scopes if not is_known(s)] == []
    assert all(is_known(s) for s in smart["scopes_supported"])
    # what no route serves stays unknown: a permission the type lacks, letters out of order, a type
    # the server does not have, a wildcard
    for bad in ("system/Practitioner.c", "system/Flag.uc", "system/Observation.rs", "system/*.rs", "Flag.cu"):
        assert not is_known(bad), bad


# --------------------------------------------------------------------------- the whole journey


def _assertion(key: RSAKey, client_id: str, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "jti": uuid.uuid4().hex, "exp": now + 240}
    return jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=["RS384"])


class Trust:
    """The trust's system as its engineer would drive it: discovery first, then tokens per scope."""

    def __init__(self, api: TestClient, key: RSAKey, client_id: str) -> None:
        self.api, self.key, self.client_id = api, key, client_id
        smart = api.get("/fhir/.well-known/smart-configuration")
        assert smart.status_code == 200, smart.text
        self.smart = smart.json()
        assert "private_key_jwt" in self.smart["token_endpoint_auth_methods_supported"]
        assert "RS384" in self.smart["token_endpoint_auth_signing_alg_values_supported"]
        assert "client-confidential-asymmetric" in self.smart["capabilities"]

    def token(self, scope: str) -> tuple[int, dict[str, Any]]:
        endpoint = self.smart["token_endpoint"]
        r = self.api.post(
            endpoint.removeprefix("http://testserver"),
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": ASSERTION,
                "client_assertion": _assertion(self.key, self.client_id, endpoint),
            },
        )
        return r.status_code, r.json()

    def headers(self, scope: str) -> dict[str, str]:
        status, body = self.token(scope)
        assert status == 200, body
        assert body["scope"] == scope  # granted exactly, not refused as unknown
        return {
            "Authorization": f"Bearer {body['access_token']}",
            "Accept": FHIR,
            "Content-Type": FHIR,
            "X-Purpose-Of-Use": "direct-care",
        }


def _register(tmp_path: Path, key: RSAKey, client_id: str, scopes: list[str]) -> str:
    """`childindex clients register` as operator alice, `grants approve` as operator bob: the grant id."""
    jwks = tmp_path / "trust.jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    r = runner.invoke(
        cli,
        [
            "clients",
            "register",
            client_id,
            "--name",
            "Demoshire Community Health EPR",
            "--jwks-file",
            str(jwks),
            "--scopes",
            " ".join(scopes),
            "--contact",
            "rita",
            "--ods",
            "rnu",
            "--reason",
            "EPR go-live",
        ],
    )
    assert r.exit_code == 0, r.output
    found = re.search(r"grants approve ([0-9a-f-]{36})", r.output)
    assert found, r.output
    return found.group(1)


@pytest.fixture
def cli_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The CLI on the test database, run by the login user alice (the operator)."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    with unit_of_work(engine) as s:  # the trust's contact: a person with a current grant of their own
        make_grant(s, "rita", role=Role.PRACTITIONER)
    return monkeypatch


Use = Callable[[TestClient, "Trust", dict[str, str]], tuple[int, str]]


def test_a_system_registered_with_one_command_uses_every_advertised_scope(
    api: TestClient, engine: Engine, world: World, tmp_path: Path, cli_env: pytest.MonkeyPatch
) -> None:
    scopes = advertised_scopes(
        api.get("/fhir/metadata").json(), api.get("/fhir/.well-known/smart-configuration").json()
    )
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    grant_id = _register(tmp_path, key, "demoshire-epr", scopes)
    trust = Trust(api, key, "demoshire-epr")
    # until a second operator approves its grant, the system gets no token, and is told why
    status, body = trust.token("system/Patient.rs")
    assert status == 400 and "second administrator" in body["error_description"], body
    said = runner.invoke(cli, ["grants", "approve", grant_id, "--reason", "checked the DPIA"])
    assert said.exit_code == 1 and "another administrator" in said.output  # not alice, who registered it
    cli_env.setattr("getpass.getuser", lambda: "bob")
    said = runner.invoke(cli, ["grants", "approve", grant_id, "--reason", "checked the DPIA"])
    assert said.exit_code == 0, said.output

    child = _child(engine)
    uses = _uses(world, child)
    used = []
    for scope in sorted(scopes, key=_order):
        resource, letters = scope.removeprefix("system/").split(".")
        action = uses.get((resource, letters))
        assert action is not None, f"{scope} is advertised but this test does not use it: add it"
        status, text = action(api, trust, trust.headers(scope))
        if resource == "AuditEvent":  # for auditors: a system is refused by its role, not its scope
            assert status == 403 and "Your role (system) may not" in text, text
        else:
            assert status in (200, 201, 204), f"{scope}: {text}"
        used.append(scope)
    assert "system/Flag.cu" in used and "system/Subscription.crds" in used


def _child(engine: Engine) -> uuid.UUID:
    with unit_of_work(engine) as s:
        return make_child(s, names=[{"given": "Noah", "family": "Brook"}])


def _order(scope: str) -> tuple[int, str]:
    """Consent before the CAF that needs it, the CAF before the TAC that needs it started."""
    ranks = {"system/Consent.cu": 0, "system/Flag.cu": 1, "system/CareTeam.cu": 2}
    return ranks.get(scope, 3), scope


def _answer(r: Any) -> tuple[int, str]:
    return r.status_code, r.text


def _uses(world: World, child: uuid.UUID) -> dict[tuple[str, str], Use]:
    """One request per advertised scope (for each write scope a real write)."""
    made: dict[str, Any] = {}

    def search(path: str) -> Use:
        return lambda api, _t, h: _answer(api.get(path, headers=h))

    def consent(api: TestClient, _t: Trust, h: dict[str, str]) -> tuple[int, str]:
        r = api.post("/fhir/Consent", headers=h, json=_consent(child))
        made["consent"] = r.json().get("id")
        return _answer(r)

    def caf(api: TestClient, _t: Trust, h: dict[str, str]) -> tuple[int, str]:
        r = api.post("/fhir/Flag", headers=h, json=_signal(child, world.hv))
        if r.status_code != 201:
            return _answer(r)
        flag = valid(r.json())
        ref = {"url": S.EXT_CAF_CONSENT, "valueReference": {"reference": f"Consent/{made['consent']}"}}
        started = _moved(flag, "caf-in-progress", ref)
        return _answer(api.put(f"/fhir/Flag/{flag['id']}", headers={**h, "If-Match": 'W/"1"'}, json=started))

    def tac(api: TestClient, _t: Trust, h: dict[str, str]) -> tuple[int, str]:
        review = {"url": S.EXT_NEXT_REVIEW, "valueDate": (date.today() + timedelta(days=42)).isoformat()}
        team = _team(
            child, [(world.hv, "health visitor"), (world.senco, "SENCO")], world.hv, extension=[review]
        )
        return _answer(api.post("/fhir/CareTeam", headers=h, json=team))

    def patient_put(api: TestClient, trust: Trust, h: dict[str, str]) -> tuple[int, str]:
        current = api.get(f"/fhir/Patient/{child}", headers=trust.headers("system/Patient.rs")).json()
        current["gender"] = "male"
        version = current["meta"]["versionId"]
        return _answer(
            api.put(f"/fhir/Patient/{child}", headers={**h, "If-Match": f'W/"{version}"'}, json=current)
        )

    def episode(api: TestClient, _t: Trust, h: dict[str, str]) -> tuple[int, str]:
        on = child if "episode" in made else world.child  # one involvement per child and service
        made["episode"] = on
        body = _episode(world, patient={"reference": f"Patient/{on}"})
        return _answer(api.post("/fhir/EpisodeOfCare", headers=h, json=body))

    def role(api: TestClient, _t: Trust, h: dict[str, str]) -> tuple[int, str]:
        body = {
            "resourceType": "PractitionerRole",
            "practitioner": {"display": "Nia Patel"},
            "organization": {"reference": f"Organization/{world.trust}"},
            "code": [{"text": "school nurse"}],
        }
        return _answer(api.post("/fhir/PractitionerRole", headers=h, json=body))

    def subscribe(api: TestClient, _t: Trust, h: dict[str, str]) -> tuple[int, str]:
        r = api.post("/fhir/Subscription", headers=h, json=_subscription("Flag?code=caf-signalled"))
        if r.status_code != 201:
            return _answer(r)
        return _answer(api.delete(f"/fhir/Subscription/{r.json()['id']}", headers=h))  # and ends it

    patient = f"patient=Patient/{world.child}"
    uses: dict[tuple[str, str], Use] = {
        ("Patient", "rs"): search(f"/fhir/Patient?identifier={S.NHS_NUMBER}|{world.nhs}"),
        ("Patient", "u"): patient_put,
        ("AuditEvent", "rs"): search(f"/fhir/AuditEvent?{patient}"),
        ("Subscription", "rs"): search("/fhir/Subscription"),
        ("Subscription", "cd"): subscribe,
        ("Subscription", "crds"): subscribe,
        ("Consent", "cu"): consent,
        ("Flag", "cu"): caf,
        ("CareTeam", "cu"): tac,
        ("EpisodeOfCare", "cu"): episode,
        ("EpisodeOfCare", "cru"): episode,
        ("PractitionerRole", "cu"): role,
        ("PractitionerRole", "cru"): role,
    }
    for kind in ("EpisodeOfCare", "Flag", "CareTeam", "Consent", "RelatedPerson", "CarePlan"):
        uses[(kind, "rs")] = search(f"/fhir/{kind}?{patient}")
    for kind in ("Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Location"):
        uses[(kind, "rs")] = search(f"/fhir/{kind}?_count=1")
    uses[("Group", "rs")] = search("/fhir/Group")  # a locality's children, for Group-level export
    return uses
