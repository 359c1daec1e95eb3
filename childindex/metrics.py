"""Prometheus metrics at /metrics (docs/operations.md lists them and what to alert on).

- Request latency by route TEMPLATE (`/api/v1/children/{child_id}`, never the path: a path holds
  a child's id), method and status class, from a plain ASGI middleware.
- What the layers below report through `directory.observe` (searches by outcome, audit queue depth
  and commit latency, rate-limit refusals, trawling alerts): `_Listener` counts it.
- What is true of the whole service, whichever node does the work, read from the database at
  scrape time (`DatabaseCollector`): index lag (age of the oldest unapplied outbox row), the
  notification and e-mail queues and their dead letters.

With `serve --workers N` each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR (made
afresh by the supervisor, `prepare_multiprocess`), and a scrape of any worker sums them all.

No label holds a child's data: route templates, methods, status classes and fixed codes only.

Access (every route is denied unless a policy allows it; auth/policy.py SCRAPER): a scraper
sends `Authorization: Bearer <the token in CHILDINDEX_METRICS_TOKEN_FILE>` (compared in constant
time) and/or comes from a CHILDINDEX_METRICS_ALLOW network; when both are set it needs both. With
neither set the route answers 404, as if it did not exist: nothing to tell an unconfigured
deployment's visitors, and a probe cannot tell it apart from a path that was never there.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import anyio.to_thread
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.source import Network, parse_proxies, request_source
from childindex.metrics_files import MULTIPROC_ENV
from childindex.settings import Settings
from directory import observe
from directory.models import utcnow

_OWN = CollectorRegistry(auto_describe=True)  # this process's metrics (single-process mode)

REQUEST_SECONDS = Histogram(
    "childindex_http_request_duration_seconds",
    "Time to answer a request, by route template, method and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=_OWN,
)
SEARCHES = Counter(
    "childindex_searches", "Searches by outcome: found, none, too-many, refused.", ["outcome"], registry=_OWN
)
RATE_LIMITED = Counter(
    "childindex_rate_limit_refusals", "Requests refused (429) by the per-subject rate limit.", registry=_OWN
)
TRAWL_ALERTS = Counter(
    "childindex_trawl_alerts", "Trawling alerts raised, by rule (window, burst).", ["rule"], registry=_OWN
)
AUDIT_QUEUE = Gauge(
    "childindex_audit_queue_depth",
    "Audit events waiting for the group commit (summed over worker processes).",
    registry=_OWN,
    multiprocess_mode="livesum",
)
AUDIT_COMMIT_SECONDS = Histogram(
    "childindex_audit_commit_seconds",
    "Time of one audit group commit's transaction (a batch of events).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
    registry=_OWN,
)
AUDIT_EVENTS = Counter(
    "childindex_audit_events_committed", "Audit events made durable by the group commit.", registry=_OWN
)


class _Listener(observe.Observer):
    """Counts what the layers below report (directory/observe.py)."""

    def audit_queued(self, depth: int) -> None:
        AUDIT_QUEUE.set(depth)

    def audit_committed(self, events: int, seconds: float) -> None:
        AUDIT_COMMIT_SECONDS.observe(seconds)
        AUDIT_EVENTS.inc(events)

    def count(self, name: str, code: str) -> None:
        if name == "search":
            SEARCHES.labels(code).inc()
        elif name == "rate_limit":
            RATE_LIMITED.inc()
        elif name == "trawl_alert":
            TRAWL_ALERTS.labels(code).inc()


class RequestMetrics:
    """Times each HTTP request and counts it under its route's template (plain ASGI: cheap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = scope.get("route")
            method = scope["method"] if scope["method"] in _METHODS else "other"
            key = (getattr(route, "path", None) or "unmatched", method, status // 100)  # (never the raw path)
            series = _SERIES.get(key)
            if series is None:
                series = _SERIES[key] = REQUEST_SECONDS.labels(key[0], method, f"{key[2]}xx")
            series.observe(time.perf_counter() - started)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SERIES: dict[tuple[str, str, int], Histogram] = {}  # (labels() costs a lock and checks: once per series)


class DatabaseCollector(Collector):
    """Read at scrape time, so right whichever node runs the indexer and the senders."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        from directory.models import Notification, Outbox
        from directory.models.notifications import EmailOutbox

        outbox = Outbox.__table__  # type: ignore[attr-defined]
        notes = Notification.__table__  # type: ignore[attr-defined]
        emails = EmailOutbox.__table__  # type: ignore[attr-defined]
        waiting = outbox.c.processed_at.is_(None)
        with self.engine.connect() as conn:
            oldest = conn.execute(sa.select(sa.func.min(outbox.c.created_at)).where(waiting)).scalar()
            pending = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(waiting)).scalar_one()
            by_status: dict[str, int] = {
                row[0]: row[1]
                for row in conn.execute(sa.select(notes.c.status, sa.func.count()).group_by(notes.c.status))
            }
            retrying = conn.execute(
                sa.select(sa.func.count()).where(notes.c.status == "pending", notes.c.attempts > 0)
            ).scalar_one()
            mail: dict[str, int] = {
                row[0]: row[1]
                for row in conn.execute(sa.select(emails.c.status, sa.func.count()).group_by(emails.c.status))
            }
        yield GaugeMetricFamily(
            "childindex_index_lag_seconds",
            "Age of the oldest change not yet applied to the search index (0: none waiting).",
            value=_age(oldest),
        )
        yield GaugeMetricFamily(
            "childindex_index_pending_changes",
            "Changes (outbox rows) not yet applied to the search index.",
            value=pending,
        )
        queue = GaugeMetricFamily(
            "childindex_notifications",
            "Notifications to subscribers by status (pending, dead).",
            labels=["status"],
        )
        for status in ("pending", "dead"):
            queue.add_metric([status], by_status.get(status, 0))
        yield queue
        yield GaugeMetricFamily(
            "childindex_notifications_retrying",
            "Pending notifications whose delivery failed at least once.",
            value=retrying,
        )
        mails = GaugeMetricFamily(
            "childindex_emails", "E-mails to people by status (pending, dead).", labels=["status"]
        )
        for status in ("pending", "dead"):
            mails.add_metric([status], mail.get(status, 0))
        yield mails


def _age(oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # (SQLite gives naive UTC)
        oldest = oldest.replace(tzinfo=utcnow().tzinfo)
    return max(0.0, (utcnow() - oldest).total_seconds())


# --- multiprocess mode -------------------------------------------------------------------------


def _multiprocess_dir() -> str | None:
    folder = os.environ.get(MULTIPROC_ENV)
    return folder if folder and os.path.isdir(folder) else None


def _mark_dead_workers(folder: str) -> None:
    """A worker that died (killed, crashed; the supervisor starts another) leaves its live gauges'
    files: mark it dead so the queue depth it last saw stops counting."""
    from prometheus_client import multiprocess

    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[-1])
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exposition(engine: Engine) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    folder = _multiprocess_dir()
    if folder is not None:
        from prometheus_client import multiprocess

        _mark_dead_workers(folder)
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Own())
    registry.register(DatabaseCollector(engine))
    return bytes(generate_latest(registry))


class _Own(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from _OWN.collect()


# --- the route and its access ------------------------------------------------------------------


class ScrapeAccess:
    """Who may scrape: the token holder and/or the allowed networks (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.token = _read_token(settings.metrics_token_file)
        self.networks: tuple[Network, ...] = parse_proxies(settings.metrics_allow)
        self.proxies = parse_proxies(settings.trusted_proxies)

    @property
    def configured(self) -> bool:
        return bool(self.token or self.networks)

    def refusal(self, request: Request) -> Response | None:
        """None when the request may scrape; else the answer to give."""
        if not self.configured:
            return Response(status_code=404)
        if self.networks:
            source = request_source(request, self.proxies)
            if not _within(source, self.networks):
                return Response("Not from an allowed network.\n", status_code=403, media_type="text/plain")
        if self.token:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token):
                return Response(
                    "Send the scrape token as 'Authorization: Bearer ...'.\n",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return None


def _read_token(path: str | None) -> bytes:
    if not path:
        return b""
    token = Path(path).read_text(encoding="utf-8").strip().encode()
    if len(token) < 16:
        raise ValueError("CHILDINDEX_METRICS_TOKEN_FILE: the token must be at least 16 characters")
    return token


def _within(source: str, networks: tuple[Network, ...]) -> bool:
    import ipaddress

    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in networks)


async def metrics(request: Request) -> Response:
    """The Prometheus exposition, to a scraper allowed by ScrapeAccess."""
    access: ScrapeAccess = request.app.state.metrics_access
    refused = access.refusal(request)
    if refused is not None:
        return refused
    body = await anyio.to_thread.run_sync(_exposition, request.app.state.engine)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, settings: Settings) -> None:
    """The /metrics route, the request timer (outermost: it times everything) and the listener."""
    app.state.metrics_access = ScrapeAccess(settings)
    install_listener()
    app.add_middleware(RequestMetrics)
    # A plain route, outside the API's schema and the pages alike (its policy: auth/policy.py SCRAPER).
    app.router.add_route("/metrics", metrics, methods=["GET"], name="metrics", include_in_schema=False)


def install_listener() -> None:
    """Count what the directory, search, auth and interop layers report (`directory.observe`): in
    every app, and in `serve`'s supervisor, whose audit writer commits the workers' events."""
    observe.install(_Listener())


def worker_stopped() -> None:
    """At a worker's shutdown: its live gauges stop counting."""
    folder = _multiprocess_dir()
    if folder is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), folder)  # type: ignore[no-untyped-call]
