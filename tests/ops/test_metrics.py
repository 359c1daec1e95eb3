"""/metrics: who may scrape, and each metric moving after a search, a card read and an index update
(the real app, on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.limits import limit_store
from auth.policy import SCRAPER, all_routes, declared_policy
from auth.ratelimit import SubjectLimiter
from childindex.app import create_app
from childindex.settings import Settings
from directory.db import unit_of_work
from directory.models import Notification, Subscription
from search.indexer import drain
from tests.directory.test_api import new_child, who
from tests.ops.scrape import samples, value

TOKEN = "scrape-token-0123456789abcdef"
CARD = "/api/v1/children/{child_id}"


def _settings(**extra: object) -> Settings:
    return Settings(environment="development", database_url="sqlite://", indexer_interval_seconds=0, **extra)  # type: ignore[arg-type]


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def scraped(engine: Engine, token_file: Path) -> Iterator[TestClient]:
    app = create_app(_settings(metrics_token_file=str(token_file)), engine=engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def test_the_route_is_in_the_policy_matrix_as_the_scrapers(scraped: TestClient) -> None:
    route = next(r for r in all_routes(scraped.app) if r.path == "/metrics")
    assert declared_policy(route.original_route) == SCRAPER


def test_unconfigured_it_is_not_there(engine: Engine) -> None:
    with TestClient(create_app(_settings(), engine=engine)) as c:
        assert c.get("/metrics").status_code == 404
        assert c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_a_scraper_needs_the_token(scraped: TestClient) -> None:
    assert scraped.get("/metrics").status_code == 401
    assert scraped.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status_code == 401
    assert scraped.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    # A person's development header is not a scrape token either.
    assert scraped.get("/metrics", headers=who(role="directory_admin")).status_code == 401
    assert scraped.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_networks_and_token_are_both_needed_when_both_are_set(engine: Engine, token_file: Path) -> None:
    app = create_app(_settings(metrics_token_file=str(token_file), metrics_allow="10.0.0.0/8"), engine=engine)
    with TestClient(app, client=("10.1.2.3", 5000)) as inside:
        assert inside.get("/metrics").status_code == 401
        assert inside.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    with TestClient(app, client=("192.0.2.7", 5000)) as outside:
        r = outside.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403
        # X-Forwarded-For is believed only from a trusted proxy (none here).
        r = outside.get(
            "/metrics", headers={"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "10.0.0.1"}
        )
        assert r.status_code == 403


def test_a_short_token_stops_the_start(engine: Engine, tmp_path: Path) -> None:
    short = tmp_path / "short.token"
    short.write_text("abc")
    with pytest.raises(ValueError, match="at least 16"):
        create_app(_settings(metrics_token_file=str(short)), engine=engine)


def test_each_metric_moves_after_a_search_a_card_read_and_an_index_update(
    scraped: TestClient, engine: Engine
) -> None:
    before = scrape(scraped)
    child = new_child(scraped)  # (an outbox row: the index is behind until it is applied)
    behind = scrape(scraped)
    assert value(behind, "childindex_index_pending_changes") >= 1
    assert value(behind, "childindex_index_lag_seconds") > 0

    drain(engine, scraped.app.state.search_backend, wait=True)  # type: ignore[attr-defined]
    indexed = scrape(scraped)
    assert value(indexed, "childindex_index_pending_changes") == 0
    assert value(indexed, "childindex_index_lag_seconds") == 0

    body = scraped.get(f"/api/v1/children/{child}", headers=who()).json()
    found = scraped.post(
        "/api/v1/children/search",
        headers=who(),
        json={"given": "Amelia", "family": "Khan", "birth_date": body["date_of_birth"]},
    )
    assert found.status_code == 200 and found.json()["hits"], found.text
    none = scraped.post(
        "/api/v1/children/search",
        headers=who(),
        json={"given": "Nobody", "family": "Zzyzx", "birth_date": "2015-01-01"},
    )
    assert none.status_code == 200 and not none.json()["hits"]
    refused = scraped.post("/api/v1/children/search", headers=who(), json={"given": "Amelia"})
    assert refused.status_code == 422
    after = scrape(scraped)

    for outcome in ("found", "none", "refused"):
        assert value(after, "childindex_searches_total", outcome=outcome) == (
            value(before, "childindex_searches_total", outcome=outcome) + 1
        ), outcome
    card = {"route": CARD, "method": "GET", "status": "2xx"}
    assert value(after, "childindex_http_request_duration_seconds_count", **card) == (
        value(before, "childindex_http_request_duration_seconds_count", **card) + 1
    )
    search = {"route": "/api/v1/children/search", "method": "POST", "status": "4xx"}  # (the refusal)
    assert value(after, "childindex_http_request_duration_seconds_count", **search) >= 1
    # Each answered search's audit event went through the group commit (a card read's is written
    # in its own unit of work).
    assert value(after, "childindex_audit_events_committed_total") >= (
        value(before, "childindex_audit_events_committed_total") + 2
    )
    assert value(after, "childindex_audit_commit_seconds_count") > value(
        before, "childindex_audit_commit_seconds_count"
    )
    assert ("childindex_audit_queue_depth", frozenset()) in after

    # No child's data in any label or value name: ids, names, dates, postcodes.
    text = scraped.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for secret in (child, child.replace("-", ""), "Amelia", "Khan", body["date_of_birth"], "OX4", "ox4"):
        assert secret not in text


def test_refusals_alerts_and_the_notification_queue_move(scraped: TestClient, engine: Engine) -> None:
    before = scrape(scraped)
    limits = SubjectLimiter(
        limit_store(engine), per_minute=2, trawl_window_seconds=3600, trawl_distinct=50, burst_distinct=3
    )
    refused = 0
    for _ in range(3):
        try:
            limits.hit("pat-metrics")
        except Exception:
            refused += 1
    assert refused == 1
    opener = SubjectLimiter(
        limit_store(engine), per_minute=100, trawl_window_seconds=3600, trawl_distinct=50, burst_distinct=3
    )
    alerts = [opener.hit("opener", uuid.uuid4()) for _ in range(3)]
    assert [a.rule for a in alerts if a] == ["burst"]

    with unit_of_work(engine) as s:
        sub = Subscription(owner="sys", endpoint="https://example.invalid/hook", events="caf.signalled")
        s.add(sub)
        s.flush()
        s.add(Notification(subscription_id=sub.id, audit_seq=1, event="x", payload="{}", attempts=2))
        s.add(Notification(subscription_id=sub.id, audit_seq=2, event="x", payload="{}", status="dead"))
    after = scrape(scraped)
    assert (
        value(after, "childindex_rate_limit_refusals_total")
        == value(before, "childindex_rate_limit_refusals_total") + 1
    )
    assert value(after, "childindex_trawl_alerts_total", rule="burst") == (
        value(before, "childindex_trawl_alerts_total", rule="burst") + 1
    )
    assert value(after, "childindex_notifications", status="pending") == 1
    assert value(after, "childindex_notifications", status="dead") == 1
    assert value(after, "childindex_notifications_retrying") == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM notification")).scalar_one() == 2


def test_fhir_patient_searches_are_counted_by_outcome_as_the_api_s_are(
    scraped: TestClient, engine: Engine
) -> None:
    child = new_child(scraped)
    born = scraped.get(f"/api/v1/children/{child}", headers=who()).json()["date_of_birth"]
    before = scrape(scraped)
    found = scraped.get(f"/fhir/Patient?family=Khan&birthdate={born}", headers=who("system"))
    assert found.status_code == 200 and found.json()["total"] == 1, found.text
    none = scraped.get("/fhir/Patient?family=Zzyzx&birthdate=2015-01-01", headers=who("system"))
    assert none.status_code == 200 and none.json()["total"] == 0, none.text
    too_little = scraped.get("/fhir/Patient?gender=female", headers=who("system"))
    assert too_little.status_code == 400, too_little.text
    no_purpose = {k: v for k, v in who("system").items() if k != "X-Purpose-Of-Use"}
    unsaid = scraped.get(f"/fhir/Patient?family=Khan&birthdate={born}", headers=no_purpose)
    assert unsaid.status_code in (400, 403), unsaid.text
    after = scrape(scraped)
    moved = {
        outcome: value(after, "childindex_searches_total", outcome=outcome)
        - value(before, "childindex_searches_total", outcome=outcome)
        for outcome in ("found", "none", "refused", "too-many")
    }
    assert moved == {"found": 1, "none": 1, "refused": 2, "too-many": 0}
