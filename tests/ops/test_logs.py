"""The service's log lines: JSON objects, one a line, with the request id; and over a realistic session
(a search, a card read, a validation error, an exception whose text holds a child's details) no
child's data: no name, date of birth, NHS number or postcode of the children in the directory."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry import _logs, trace
from sqlalchemy.engine import Engine

from childindex.app import create_app
from childindex.logs import JsonFormatter, TextFormatter, formatter_for, uvicorn_log_config
from childindex.settings import Settings
from search.indexer import drain
from tests.directory.test_api import who
from tests.fixtures.builders import next_nhs_number

GIVEN, FAMILY, DOB, POSTCODE = "Ottoline", "Vanderquist", "2015-07-19", "OX4 9ZQ"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    client = logging.getLogger("httpx")  # (the test's own client, not the service: as in production)
    client_level = client.level
    client.setLevel(logging.WARNING)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        client.setLevel(client_level)


def test_a_realistic_session_logs_json_lines_without_child_data(
    engine: Engine, lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(environment="development", database_url="sqlite://", indexer_interval_seconds=0)
    app = create_app(settings, engine=engine)
    nhs = next_nhs_number()
    body = {
        "names": [{"given": GIVEN, "family": FAMILY}],
        "date_of_birth": DOB,
        "sex": "female",
        "identifiers": [{"system": "nhs", "value": nhs}],
        "address": {"line1": "7 Quarry Lane", "postcode": POSTCODE},
    }
    query = {"given": GIVEN, "family": FAMILY, "birth_date": DOB}
    with TestClient(app, raise_server_exceptions=False) as client:
        made = client.post("/api/v1/children", json=body, headers=who(role="directory_admin"))
        assert made.status_code == 201, made.text
        child = made.json()["id"]
        drain(engine, app.state.search_backend, wait=True)
        assert client.post("/api/v1/children/search", json=query, headers=who()).json()["hits"]
        assert client.get("/api/v1/children/search", params=query, headers=who()).status_code == 200
        assert client.get(f"/api/v1/children/{child}", headers=who()).status_code == 200
        bad = client.post("/api/v1/children/search", json={**query, "birth_date": f"{DOB}x"}, headers=who())
        assert bad.status_code == 422

        def broken(*_: object, **__: object) -> object:
            raise RuntimeError(f"lookup failed for {GIVEN} {FAMILY} born {DOB}, NHS {nhs}, at {POSTCODE}")

        monkeypatch.setattr("search.api._answer", broken)
        failed = client.post(
            "/api/v1/children/search", json=query, headers={**who(), "X-Request-ID": "drill-req-0001"}
        )
        assert failed.status_code == 500

    text = lines.getvalue()
    records = [json.loads(line) for line in text.splitlines()]  # (every line is one JSON object)
    assert all({"time", "level", "logger", "message", "node", "pid"} <= r.keys() for r in records)
    error = next(r for r in records if r.get("exception") == "RuntimeError")
    assert error["level"] == "error" and error["request_id"] == "drill-req-0001"
    assert any("search/api.py" in frame for frame in error["stack"])  # where, not what
    for secret in (GIVEN, FAMILY, DOB, nhs, POSTCODE, POSTCODE.replace(" ", ""), "Quarry"):
        assert secret not in text, secret


def test_the_text_format_and_uvicorns_configuration() -> None:
    assert isinstance(formatter_for("json"), JsonFormatter)
    assert isinstance(formatter_for("text"), TextFormatter)
    config = uvicorn_log_config("json", "info")
    assert config["formatters"]["main"]["()"] == "childindex.logs.JsonFormatter"
    assert {"uvicorn", "uvicorn.error", "uvicorn.access", "httpx"} <= config["loggers"].keys()
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started %s", ("x",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "Started x"
    assert " INFO uvicorn.error [-] Started x" in TextFormatter().format(record)
    assert Settings().log_format == "json"  # (production's default: for the log shipper)


class _Recording(trace.TracerProvider, _logs.LoggerProvider):
    """A process-wide OpenTelemetry provider, as an auto-instrumentation would install: it notes
    every tracer and logger asked of it (FastAPI asks on each request it observes)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_tracer(self, name: str, *args: object, **kwargs: object) -> trace.Tracer:
        self.asked.append(f"tracer {name}")
        return trace.NoOpTracer()

    def get_logger(self, name: str, *args: object, **kwargs: object) -> _logs.Logger:
        self.asked.append(f"logger {name}")
        return _logs.NoOpLogger(name)


def test_fastapis_own_telemetry_is_off_even_with_a_provider_installed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI would hand each request's body and validation errors (with their input values) to a
    provider's processors and log exceptions with their messages: with a provider installed
    process-wide and `FASTAPI_OTEL_AUTO_CONFIGURE=true`, a search, a 422 and a 500 reach it not once."""
    provider = _Recording()
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(_logs, "get_logger_provider", lambda: provider)
    settings = Settings(environment="development", database_url="sqlite://", indexer_interval_seconds=0)
    app = create_app(settings, engine=engine)
    query = {"given": GIVEN, "family": FAMILY, "birth_date": DOB}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/api/v1/children/search", json=query, headers=who()).status_code == 200
        bad = client.post("/api/v1/children/search", json={**query, "birth_date": f"{DOB}x"}, headers=who())
        assert bad.status_code == 422

        def broken(*_: object, **__: object) -> object:
            raise RuntimeError(f"lookup failed for {GIVEN} {FAMILY} born {DOB}")

        monkeypatch.setattr("search.api._answer", broken)
        assert client.post("/api/v1/children/search", json=query, headers=who()).status_code == 500
    assert provider.asked == []
