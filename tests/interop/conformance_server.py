"""The conformance suite's server and clients: the app served by uvicorn on loopback (one server per
database for the whole module), a trust's system registered with `childindex clients register` and
approved by a second operator, and its token got as SMART Backend Services says (private_key_jwt),
from the token endpoint the client discovers at /fhir/.well-known/smart-configuration."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from fhirclient.client import FHIRClient
from fhirpy import SyncFHIRClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from auth.models import SubjectKind
from childindex.app import create_app
from childindex.cli import app as cli
from childindex.settings import Settings
from directory.db import make_engine, unit_of_work
from directory.models import Role
from tests.conftest import _truncate_all
from tests.fixtures.auth_builders import make_grant, token_for
from tests.fixtures.builders import make_child
from tests.interop.conftest import World, build_world
from tests.interop.r4_check import Recorder

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ID = "demoshire-epr"
PURPOSE = {"X-Purpose-Of-Use": "direct-care"}


def free_port() -> int:
    """A port nobody listens on, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(kind: str, sqlite_template: Path, folder: Path, postgres: Engine | None) -> Iterator[Engine]:
    """A clean database for the module: a copy of the migrated SQLite file, or PostgreSQL emptied."""
    if kind == "sqlite":
        shutil.copy(sqlite_template, folder / "conformance.db")
        engine = make_engine(f"sqlite:///{folder / 'conformance.db'}")
        yield engine
        engine.dispose()
    else:
        assert postgres is not None
        _truncate_all(postgres)
        yield postgres


@contextmanager
def serving(engine: Engine, port: int) -> Iterator[tuple[str, Any]]:
    """The production-mode app, issuer = its own loopback URL, served by uvicorn in a thread."""
    root = f"http://127.0.0.1:{port}"
    settings = Settings(
        environment="production",
        database_url="sqlite://",
        issuer=root,
        secret_key="test-secret-key",
        search_rate_per_minute=100_000,
        trawl_distinct_children=100_000,
        fhir_max_bundle_entries=20,
        indexer_interval_seconds=0,
    )
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.025)
    assert server.started, "uvicorn did not start"
    try:
        yield root, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def register(engine: Engine, folder: Path, key: RSAKey, scopes: list[str]) -> None:
    """`childindex clients register` by operator alice, `grants approve` by operator bob."""
    runner = CliRunner()
    jwks = folder / "trust.jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", "250")
        mp.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        mp.setattr("getpass.getuser", lambda: "alice")
        with unit_of_work(engine) as s:  # the trust's contact, a person with a grant of their own
            make_grant(s, "rita", role=Role.PRACTITIONER)
        args = ["clients", "register", CLIENT_ID, "--name", "Demoshire Community Health EPR"]
        args += ["--jwks-file", str(jwks), "--scopes", " ".join(scopes), "--contact", "rita"]
        said = runner.invoke(cli, [*args, "--ods", "rnu", "--reason", "EPR go-live"])
        assert said.exit_code == 0, said.output
        found = re.search(r"grants approve ([0-9a-f-]{36})", said.output)
        assert found, said.output
        mp.setattr("getpass.getuser", lambda: "bob")
        said = runner.invoke(cli, ["grants", "approve", found.group(1), "--reason", "checked the DPIA"])
        assert said.exit_code == 0, said.output


def assertion(key: RSAKey, audience: str) -> str:
    """A private_key_jwt client assertion (SMART Backend Services: RS384, 5 minutes at most)."""
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": audience, "jti": uuid.uuid4().hex, "exp": now + 240}
    return jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=["RS384"])


def smart_client(base: str, key: RSAKey, scopes: list[str], recorder: Recorder) -> FHIRClient:
    """fhirclient, unmodified, as a backend service: discovery, then the token with private_key_jwt."""
    smart = requests.get(f"{base}/.well-known/smart-configuration", timeout=10)
    assert smart.status_code == 200, smart.text
    config = smart.json()
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert "RS384" in config["token_endpoint_auth_signing_alg_values_supported"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    endpoint = config["token_endpoint"]
    settings = {
        "app_id": CLIENT_ID,
        "api_base": base,
        "scope": " ".join(scopes),
        "jwt_token": assertion(key, endpoint),
    }
    client = FHIRClient(settings=settings)
    client.wants_patient = False  # a backend service asks for no launch context
    client.server.session.hooks["response"].append(recorder.hook)
    client.server.session.headers.update(PURPOSE)
    assert not client.prepare()  # reads the CapabilityStatement (strict R4 models): no token yet
    # the CapabilityStatement's oauth-uris (what fhirclient uses) agree with the smart-configuration
    assert client.server.auth._token_uri == endpoint
    client.authorize()
    assert client.ready, "no access token"
    return client


@dataclass
class Conf:
    """What a case needs: the two clients (one token), an auditor's client, the database, the world."""

    base: str
    smart: FHIRClient
    fhir: SyncFHIRClient
    auditor: SyncFHIRClient
    engine: Engine
    world: World
    recorder: Recorder
    app: Any  # the served app (its search backend: the matching index is fed in the background)
    made: dict[str, Any] = field(default_factory=dict)  # what cases build once (conformance_cases.made)

    @property
    def server(self) -> Any:
        """fhirclient's server object (what its models read from and write to)."""
        return self.smart.server

    def new_child(self, family: str = "Brook") -> uuid.UUID:
        """A child of its own for a case that writes (one open CAF per child)."""
        with unit_of_work(self.engine) as s:
            return make_child(s, names=[{"given": "Noah", "family": family}])


def fhirpy_client(base: str, token: str, recorder: Recorder, purpose: str = "direct-care") -> SyncFHIRClient:
    """fhirpy, unmodified, with a bearer token; its answers go through the recorder."""
    return SyncFHIRClient(
        base,
        authorization=f"Bearer {token}",
        extra_headers={"X-Purpose-Of-Use": purpose},
        requests_config={"hooks": {"response": [recorder.hook]}, "timeout": 30},
    )


def auditor_token(state: Any, engine: Engine) -> str:
    """AuditEvent is for auditors (a person with the auditor role), not for systems."""
    scopes = ("user/AuditEvent.rs",)
    with unit_of_work(engine) as s:
        make_grant(s, "aud", role=Role.AUDITOR, scopes=scopes)
    return token_for(state, "aud", kind=SubjectKind.USER, role=Role.AUDITOR, scopes=scopes)


def build(engine: Engine, folder: Path, root: str, app: Any, scopes: list[str]) -> Conf:
    """The world, the registered system and its clients."""
    world = build_world(engine)
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    register(engine, folder, key, scopes)
    recorder = Recorder()
    base = f"{root}/fhir"
    smart = smart_client(base, key, scopes, recorder)
    fhir = fhirpy_client(base, smart.server.auth.access_token, recorder)
    auditor = fhirpy_client(base, auditor_token(app.state.auth, engine), recorder, purpose="audit")
    return Conf(base, smart, fhir, auditor, engine, world, recorder, app)
