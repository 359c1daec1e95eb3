"""Connected systems without the database: `childindex clients ...` and /api/v1/clients register a
client and its grant in one step, list, show, rotate keys or secret and switch it off; audited;
errors a person can act on."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from auth.deps import AuthState
from auth.grants import ROLE_SCOPES
from childindex.cli import app as cli
from directory.db import unit_of_work
from directory.models import Role
from tests.conftest import count
from tests.fixtures.auth_builders import bearer, make_grant, token_for

runner = CliRunner()
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SYSTEM_SCOPES = ("system/Patient.rs", "system/Flag.cu", "directory.search")


def _key() -> RSAKey:
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    return key


def _jwks(key: RSAKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False)]}


def _jwt_token(api: TestClient, key: RSAKey, client_id: str, scope: str = "directory.search") -> Any:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": "http://testserver/oauth/token",
        "jti": uuid.uuid4().hex,
        "exp": now + 240,
    }
    signed = jwt.encode({"alg": "RS384", "kid": key.kid}, claims, key, algorithms=["RS384"])
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION,
        "client_assertion": signed,
    }
    return api.post("/oauth/token", data=form)


def _secret_token(api: TestClient, client_id: str, secret: str) -> Any:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "directory.search"},
        headers={"Authorization": f"Basic {basic}"},
    )


def _audit(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT action, detail FROM audit_event ORDER BY seq")).all()
    return [(r[0], str(r[1])) for r in rows]


@pytest.fixture
def cli_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The CLI on the test database, run by operator alice; rita holds a grant to be a contact."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    with unit_of_work(engine) as s:
        make_grant(s, "rita", role=Role.PRACTITIONER)
    return monkeypatch


def _register(*extra: str, client_id: str = "trust-epr", scopes: str = " ".join(SYSTEM_SCOPES)) -> Any:
    args = ["clients", "register", client_id, "--name", "Trust EPR", "--scopes", scopes]
    args += ["--contact", "rita", "--ods", "RX1", "--reason", "go-live", *extra]
    return runner.invoke(cli, args)


def _approve(output: str, monkeypatch: pytest.MonkeyPatch) -> None:
    found = re.search(r"grants approve ([0-9a-f-]{36})", output)
    assert found, output
    monkeypatch.setattr("getpass.getuser", lambda: "bob")
    r = runner.invoke(cli, ["grants", "approve", found.group(1), "--reason", "checked"])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr("getpass.getuser", lambda: "alice")


def test_cli_registers_rotates_and_disables_a_key_client(
    cli_env: pytest.MonkeyPatch, api: TestClient, engine: Engine, tmp_path: Path
) -> None:
    old, new = _key(), _key()
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps(_jwks(old)))
    r = _register("--jwks-file", str(jwks))
    assert r.exit_code == 0, r.output
    assert "Registered trust-epr" in r.output and "pending" in r.output and str(old.kid) in r.output
    _approve(r.output, cli_env)
    listed = runner.invoke(cli, ["clients", "list"])
    assert listed.exit_code == 0 and "trust-epr" in listed.output and "active" in listed.output
    assert "RX1" in listed.output and "rita" in listed.output
    first = _jwt_token(api, old, "trust-epr")
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    # rotate: the old key no longer gets a token, the new one does; issued tokens live out their minutes
    jwks.write_text(json.dumps(_jwks(new)))
    r = runner.invoke(cli, ["clients", "rotate", "trust-epr", "--jwks-file", str(jwks)])
    assert r.exit_code == 0 and "Rotated the keys" in r.output, r.output
    assert _jwt_token(api, old, "trust-epr").status_code == 401
    assert _jwt_token(api, new, "trust-epr").status_code == 200
    assert api.get("/api/v1/localities", headers=bearer(token)).status_code == 200
    # disable: no new token, and the one already issued is refused at its next use
    r = runner.invoke(cli, ["clients", "disable", "trust-epr", "--reason", "contract ended"])
    assert r.exit_code == 0 and "switched off" in r.output, r.output
    assert _jwt_token(api, new, "trust-epr").status_code == 401
    refused = api.get("/api/v1/localities", headers=bearer(token))
    assert refused.status_code == 403 and "switched off" in refused.text
    shown = runner.invoke(cli, ["clients", "show", "trust-epr"])
    assert shown.exit_code == 0 and "switched off" in shown.output and str(new.kid) in shown.output
    actions = [a for a, _ in _audit(engine)]
    for done in ("client.register", "grant.create", "grant.approve", "client.update", "client.disable"):
        assert done in actions, done


def test_cli_secret_is_shown_once_and_rotated(
    cli_env: pytest.MonkeyPatch, api: TestClient, engine: Engine
) -> None:
    r = _register("--secret", scopes="directory.search")
    assert r.exit_code == 0, r.output
    secret = r.output.split("shown this once (keep it in the system's secret store):")[1].split()[0]
    _approve(r.output, cli_env)
    assert _secret_token(api, "trust-epr", secret).status_code == 200
    assert secret not in runner.invoke(cli, ["clients", "show", "trust-epr"]).output
    r = runner.invoke(cli, ["clients", "rotate", "trust-epr"])
    assert r.exit_code == 0, r.output
    fresh = r.output.split("Its new secret, shown this once:")[1].split()[0]
    assert _secret_token(api, "trust-epr", secret).status_code == 401
    assert _secret_token(api, "trust-epr", fresh).status_code == 200
    # neither secret reaches the audit log
    details = " ".join(d for _, d in _audit(engine))
    assert secret not in details and fresh not in details
    assert any(a == "client.rotate" and "secret" in d for a, d in _audit(engine))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--secret",), "Give keys"),  # with --jwks-url below: both
        ((), "either a JWKS URL or the public keys"),
        (("--jwks-url", "http://keys.example/jwks"), "must use https"),
    ],
)
def test_cli_errors_say_what_to_fix(
    cli_env: pytest.MonkeyPatch, engine: Engine, args: Any, said: str
) -> None:
    extra = (*args, "--jwks-url", "https://keys.example/jwks") if args == ("--secret",) else args
    r = _register(*extra)
    assert r.exit_code == 1 and said in r.output, r.output
    assert count(engine, "oauth_client") == 0 and count(engine, "access_grant") == 1  # rita's only


def test_cli_refuses_unknown_scopes_bad_keys_duplicates_and_a_contact_without_a_grant(
    cli_env: pytest.MonkeyPatch, engine: Engine, tmp_path: Path
) -> None:
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps(_jwks(_key())))
    r = _register("--jwks-file", str(jwks), scopes="system/Patient.rs system/Flag.uc system/Teapot.rs")
    assert r.exit_code == 1 and "unknown scopes: system/Flag.uc, system/Teapot.rs" in r.output
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [_key().as_dict(private=True)]}))
    r = _register("--jwks-file", str(private))
    assert r.exit_code == 1 and "private" in r.output, r.output
    r = _register("--jwks-file", str(tmp_path / "missing.json"))
    assert r.exit_code == 1 and "Cannot read the JWKS file" in r.output
    r = runner.invoke(
        cli,
        ["clients", "register", "x-epr", "--name", "X", "--scopes", "directory.search", "--contact", "nobody"]
        + ["--ods", "RX1", "--reason", "r", "--secret"],
    )
    assert r.exit_code == 1 and "nobody holds no current grant" in r.output, r.output
    # nothing half-written: the client is not left behind without its grant
    assert count(engine, "oauth_client") == 0
    assert _register("--jwks-file", str(jwks)).exit_code == 0
    r = _register("--jwks-file", str(jwks))
    assert r.exit_code == 1 and "already registered" in r.output
    assert count(engine, "oauth_client") == 1
    r = _register("--jwks-file", str(jwks), "--ods", "not an ods code!", client_id="other-epr")
    assert r.exit_code == 1 and "ODS code" in r.output


# --------------------------------------------------------------------------- /api/v1/clients


def _admin(engine: Engine, state: AuthState, *, extra: tuple[str, ...] = SYSTEM_SCOPES) -> dict[str, str]:
    """Ada, a directory admin whose grant holds the scopes she may grant (the grants' own rule)."""
    scopes = (*ROLE_SCOPES[Role.DIRECTORY_ADMIN], *extra)
    with unit_of_work(engine) as s:
        make_grant(s, "ada", role=Role.DIRECTORY_ADMIN, scopes=scopes)
        make_grant(s, "rita", role=Role.PRACTITIONER)
    return bearer(token_for(state, "ada", role=Role.DIRECTORY_ADMIN, scopes=scopes), purpose=None)


def _body(key: RSAKey, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": "trust-epr",
        "name": "Trust EPR",
        "jwks": _jwks(key),
        "scopes": list(SYSTEM_SCOPES),
        "organisation": "RX1",
        "responsible": "rita",
        "reason": "go-live",
    }
    body.update(over)
    return body


def test_api_registers_reads_rotates_and_disables(api: TestClient, engine: Engine, state: AuthState) -> None:
    h = _admin(engine, state)
    key = _key()
    r = api.post("/api/v1/clients", headers=h, json=_body(key))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["grants"][0]["status"] == "pending" and made["grants"][0]["organisation"] == "RX1"
    assert made["secret"] is None and made["key_ids"] == [key.kid] and "approve" in made["next_step"]
    assert made["registered_by"] == "ada"
    assert [c["client_id"] for c in api.get("/api/v1/clients", headers=h).json()] == ["trust-epr"]
    assert api.get("/api/v1/clients/trust-epr", headers=h).json()["grants"][0]["responsible"] == "rita"
    missing = api.get("/api/v1/clients/nobody-epr", headers=h)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )
    # a secret client: its secret in the answer once, a new one on rotation
    r = api.post(
        "/api/v1/clients",
        headers=h,
        json=_body(key, client_id="lab", jwks=None, auth_method="client_secret_basic"),
    )
    assert r.status_code == 201 and len(r.json()["secret"]) > 30, r.text
    assert r.json()["secret"] not in api.get("/api/v1/clients/lab", headers=h).text
    rotated = api.post("/api/v1/clients/lab/rotate", headers=h, json={})
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (None, r.json()["secret"])
    new = _key()
    rotated = api.post("/api/v1/clients/trust-epr/rotate", headers=h, json={"jwks": _jwks(new)})
    assert rotated.status_code == 200 and rotated.json()["key_ids"] == [new.kid]
    r = api.post("/api/v1/clients/trust-epr/disable", headers=h, json={"reason": "contract ended"})
    assert r.status_code == 200 and r.json()["active"] is False


def _problem(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return json.dumps(r.json())


def test_api_errors_a_person_can_act_on(api: TestClient, engine: Engine, state: AuthState) -> None:
    h = _admin(engine, state)
    key = _key()
    said = _problem(api.post("/api/v1/clients", headers=h, json=_body(key, scopes=["system/Flag.uc"])), 422)
    assert "unknown scopes: system/Flag.uc" in said
    bad = {"keys": [{"kty": "RSA", "kid": "k1", "n": "abc"}]}
    assert "keys cannot be read" in _problem(
        api.post("/api/v1/clients", headers=h, json=_body(key, jwks=bad)), 422
    )
    assert api.post("/api/v1/clients", headers=h, json=_body(key)).status_code == 201
    assert "already registered" in _problem(api.post("/api/v1/clients", headers=h, json=_body(key)), 409)
    # an admin grants no scope she does not hold herself (the grants' rule), and nothing is left behind
    wide = _body(key, client_id="wide-epr", scopes=["system/Consent.cu"])
    assert "scopes you do not hold" in _problem(api.post("/api/v1/clients", headers=h, json=wide), 403)
    assert api.get("/api/v1/clients/wide-epr", headers=h).status_code == 404
    # a system client never administers access
    admin_scope = _body(key, client_id="boss-epr", scopes=["grants.admin"])
    assert "cannot administer access" in _problem(
        api.post("/api/v1/clients", headers=h, json=admin_scope), 422
    )
    assert _problem(api.post("/api/v1/clients/nobody/disable", headers=h, json={"reason": "x"}), 404)
    jwt_rotate = api.post("/api/v1/clients/trust-epr/rotate", headers=h, json={})
    assert "Give the new public keys" in _problem(jwt_rotate, 422)


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.DATA_MANAGER, Role.AUDITOR])
def test_only_directory_admins_manage_clients(
    api: TestClient, engine: Engine, state: AuthState, role: Role
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "pat", role=role)
    h = bearer(token_for(state, "pat", role=role), purpose=None)
    for method, path in (
        ("get", "/api/v1/clients"),
        ("post", "/api/v1/clients"),
        ("post", "/api/v1/clients/x/disable"),
    ):
        r = api.request(method, path, headers=h, json=_body(_key()) if method == "post" else None)
        assert r.status_code == 403, (path, r.text)
    assert count(engine, "oauth_client") == 0


def test_fifty_registrations_of_one_id_at_once_make_one_client(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    h = _admin(engine, state)
    body = _body(_key())
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: api.post("/api/v1/clients", headers=h, json=body).status_code, range(50))
        )
    assert statuses.count(201) == 1 and set(statuses) <= {201, 409}, statuses
    assert count(engine, "oauth_client") == 1
    with engine.connect() as c:
        grants = c.execute(
            sa.text("SELECT count(*) FROM access_grant WHERE subject = 'trust-epr'")
        ).scalar_one()
    assert grants == 1
