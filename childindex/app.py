"""create_app(): the one place that wires settings, storage, auth, search, interop, api and web."""

from __future__ import annotations

import functools
import gc
import logging
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.engine import Engine
from sqlalchemy.orm import configure_mappers
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.wiring import install as install_auth
from childindex import keys
from childindex.api import router as api_router
from childindex.api_pds import router as pds_router
from childindex.api_records import router as lifecycle_router
from childindex.details_api import router as details_router
from childindex.guard import InputGuard, Refusal
from childindex.inbox_api import router as inbox_router
from childindex.logs import REQUEST_ID
from childindex.metrics import install as install_metrics
from childindex.metrics import worker_stopped
from childindex.mine_api import router as mine_router
from childindex.openapi import install as install_openapi
from childindex.panel_api import install_front_door
from childindex.panel_api import router as panel_router
from childindex.plan_api import router as plan_router
from childindex.readiness import Readiness
from childindex.records_api import router as records_router
from childindex.requests_api import router as requests_router
from childindex.reviews_api import router as match_reviews_router
from childindex.search_route import install_lean_search
from childindex.settings import Settings, practice_of
from childindex.web.wiring import install as install_web
from childindex.worklist_api import router as worklist_router
from directory import audit
from directory.db import Limits, make_engine
from directory.http import problems
from interop.wiring import install_fhir
from search.api import router as search_router
from search.embedded import EmbeddedBackend
from search.indexer import BackgroundIndexer
from search.matching import MatchingEngine
from search.port import AsyncReads, SearchBackend

_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-]{8,64}$")
NO_OTEL: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}
"""FastAPI's own OpenTelemetry telemetry, off whatever the environment says: once a process has an
OpenTelemetry provider (an auto-instrumentation, `FASTAPI_OTEL_AUTO_CONFIGURE`), it would record
each request's body and validation errors with their input values for the provider's processors
and log exceptions with their messages: a child's name and date of birth leaving the process by a
way no one chose. The service's metrics are its own (/metrics) and its logs carry no child data
(docs/operations.md). Off, it is also one check fewer on every request (two looks at the
environment each; about 1.4% of a search's CPU)."""


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the ASGI app for the given settings (and, in tests, an existing engine)."""
    settings = settings or Settings()
    keys.install(settings)  # (before anything else: in production, no key files, no start)
    engine = engine or make_engine(settings.database_url, limits=serving_limits(settings))
    backend = build_search_backend(settings, engine)
    indexer = BackgroundIndexer(engine, backend, interval=settings.indexer_interval_seconds or 0.5)

    lifespan = _lifespan(settings, backend, indexer)

    app = FastAPI(
        lifespan=lifespan,
        title="childindex",
        version="0.1.0",
        summary="Who is already working with this child, is a CAF open, who is the Lead Professional?",
        description="The practitioner's API. Every read and change is audited; errors are RFC 9457 "
        "problem+json.",
        telemetry=NO_OTEL,
    )
    app.state.settings = settings
    app.state.practice = practice_of(settings)
    app.state.engine = engine
    # every search's and card read's audit event goes through it (with --workers, the node's writer)
    audit.install_writer(
        engine, node_writer=settings.audit_writer_socket, linger=settings.audit_commit_linger_seconds
    )
    app.state.search_backend = backend
    key = settings.audit_fingerprint_key
    app.state.search_engine = MatchingEngine(backend, fingerprint_key=key.encode() if key else None)
    app.state.indexer = indexer
    problems.install(app)
    problems.install_database_handlers(app)

    _guard_input(app, settings)  # inside RequestHeaders: its refusals carry the request id too
    app.add_middleware(
        RequestHeaders, keepalive_requests=settings.keepalive_requests, routes=app.router.routes
    )

    install_metrics(app, settings)  # /metrics, and the request timer outside everything else
    _health_routes(app, backend)
    install_auth(app, settings, engine)
    app.include_router(search_router)  # before /children/{child_id}, which would swallow /search
    app.include_router(api_router)
    app.include_router(requests_router)  # hand-overs by acceptance, asks to join, invitations
    app.include_router(details_router)  # PATCH /children/{id}, /children/{id}/history
    app.include_router(match_reviews_router)  # feed rows held for review (childindex/reviews_api.py)
    app.include_router(plan_router)  # a TAC's plan: actions and reviews (childindex/plan_api.py)
    app.include_router(records_router)  # merges and subject access (childindex/records_api.py)
    app.include_router(mine_router)  # a practitioner's own children and CAFs (childindex/mine_api.py)
    app.include_router(worklist_router)  # the locality delivery team's worklist (childindex/worklist_api.py)
    app.include_router(inbox_router)  # notices to people (childindex/inbox_api.py)
    app.include_router(lifecycle_router)  # adoption, death, moving away, life-cycle dates
    app.include_router(pds_router)  # a demographics trace and its confirmation (childindex/api_pds.py)
    app.include_router(panel_router)  # the panel, step up and step down (childindex/panel_api.py)
    install_front_door(app, settings, engine)  # delivers step-ups to social care (interop/front_door.py)
    install_fhir(app, settings, engine)  # after auth: it wraps the error handlers for /fhir
    install_web(app, settings)  # the pages under / (after the API: its routes come first)
    install_openapi(app)  # every route's errors, once all are in
    install_lean_search(app)  # POST searches ahead of every router (childindex/search_route.py)
    logging.getLogger("childindex").setLevel(settings.log_level.upper())
    return app


def _lifespan(
    settings: Settings, backend: SearchBackend, indexer: BackgroundIndexer
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: thread limit, search backend, resident index, indexer, heap."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Requests run in a thread pool. CPU-bound searches in forty threads only fight over the
        # GIL (measured: more CPU per search, and fewer searches a second, than with a handful).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        backend.ensure_ready()
        if settings.search_resident and isinstance(backend, EmbeddedBackend):
            backend.start_resident()  # loads in the background; searches use SQL until then
        if settings.indexer_interval_seconds > 0:
            indexer.start()
        try:
            with settled_heap():
                yield
        finally:
            indexer.stop()
            if isinstance(backend, EmbeddedBackend):
                backend.stop_resident()
            if isinstance(backend, AsyncReads):
                await backend.aclose()  # (its connections on this loop)
            worker_stopped()  # (its live gauges stop counting in a multiprocess scrape)

    return lifespan


def _health_routes(app: FastAPI, backend: SearchBackend) -> None:
    """/healthz (liveness) and /readyz (readiness), on the event loop."""

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (on its event loop: however busy its request threads are,
        a probe never queues behind them, so load alone does not get the process restarted)."""
        return {"status": "ok"}

    readiness = Readiness(
        app.state.engine,
        backend,
        resident=app.state.settings.search_resident,
        timeout=app.state.settings.readiness_timeout_seconds,
    )
    app.state.readiness = readiness

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"description": "Not ready: what failed", "content": {"application/json": {}}}},
    )
    async def readyz(response: Response) -> dict[str, object]:
        """Readiness: 200 once the database answers with the code's schema and the search index is
        loaded (embedded: this process's resident copy; Elasticsearch: the node has its index); else 503
        naming what is wrong (childindex/readiness.py). Checked at most once a second."""
        answer = await readiness.answer()
        if not answer.ready:
            response.status_code = 503
            response.headers["Retry-After"] = "5"
        return answer.body()


def serving_limits(settings: Settings) -> Limits:
    """How long a serving process's requests wait for a lock or a connection, and how its pools are
    sized for its request threads (see `directory.db.Limits` and `pool_sizes`)."""
    return Limits(
        request_threads=settings.request_threads,
        lock_timeout=settings.database_lock_timeout_seconds,
        statement_timeout=settings.database_statement_timeout_seconds,
        idle_in_transaction_timeout=settings.database_idle_in_transaction_seconds,
    )


def _guard_input(app: FastAPI, settings: Settings) -> None:
    """Refuse what no route can handle safely before routing (childindex.guard), each refusal in
    the error format of its surface."""
    from auth import server as oauth
    from auth.errors import OAuthError
    from childindex.web.deps import render
    from childindex.web.session import is_page
    from interop.outcome import error_response, for_http

    def fhir(_: Request, r: Refusal) -> Response:
        return error_response(for_http(r.status, r.message))

    def oauth_error(_: Request, r: Refusal) -> Response:
        return oauth.oauth_error_response(OAuthError("invalid_request", r.message, status=r.status))

    def api_or_page(request: Request, r: Refusal) -> Response:
        if is_page(request.url.path):
            return render(request, "message.html", title=r.title, message=r.message, status_code=r.status)
        return problems.problem(r.status, r.title, r.message, code=r.code, request=request)

    limit = settings.max_body_bytes
    app.add_middleware(
        InputGuard,
        max_json_depth=settings.max_json_depth,
        max_body_bytes=limit,
        surfaces=[
            ("/fhir", settings.fhir_max_body_bytes, fhir),
            ("/oauth", limit, oauth_error),
            ("/.well-known", limit, oauth_error),
        ],
        default=api_or_page,
    )


COLLECT_AFTER = (100_000, 10, 10)
"""When the cyclic collector runs while the app serves (`gc.set_threshold`): a young collection
once 100,000 more objects have been made than freed, not 700 (Python's default).

A request's objects are freed by their reference counts as soon as it is answered (under uvicorn a
search leaves almost no cycles: nine objects in a second of 32 clients flat out), but the default
collects the young generation whenever 700 more have been made than freed, several times within
every search; each walks the objects of every request in flight, then ages them into the older
generations, which are walked in turn. Measured at 1,000,000 children, 32 clients flat out, per
worker in about 35 s: 14,600 young collections (0.83 s), 1,330 middle ones (0.62 s) and 121 full
ones (0.41 s, up to 24 ms each, the event loop stopped meanwhile), some 6% of the worker's time;
with this threshold 2-3 young collections (0.04-0.09 s, up to 35 ms each) and no other. Cycles
still made (an exception's traceback, say) wait for the next collection: some 100,000 objects. See
docs/performance.md, "Issue #21, third round: the cyclic collector"."""


@contextmanager
def settled_heap() -> Iterator[None]:
    """Keep the objects every request needs (modules, routes, models, mappers) out of the cyclic
    garbage collector's way once the app has started.

    A full collection walks every tracked object; in a server process that is some 150,000 of
    them, nearly all made at startup and never freed, and it ran about once a second under load
    (objects of requests in flight outlive two young collections). Measured at 1,000,000
    children with 16 clients: each took 120-150 ms, stopping the event loop for every search in
    the process, a tenth of its CPU in all, and set the p99. Frozen, they are skipped: a full
    collection then took about 20 ms on average (25-65 ms at most), 3% of the time. Frozen
    objects are still freed when nothing refers to them; only cycles among them wait for
    `gc.unfreeze()` at shutdown. (No collection first: it took 0.1 s per app start in the tests,
    and the little cyclic garbage of a start can wait for the unfreeze too.) Then the collector
    runs only as often as COLLECT_AFTER says. Both are undone on leaving, so that another app in
    the process (as in tests) may collect what this one made, under the process's own thresholds.

    `childindex serve --workers N` holds its supervising process (the node's audit writer and the
    background jobs) the same way: unfrozen, a full collection there walked everything it had made
    at startup, 165 ms during which no worker's audit event was acknowledged (measured at
    1,000,000 children flat out).
    """
    configure_mappers()  # (lazily on the first query otherwise: thousands of objects after the freeze)
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(*COLLECT_AFTER)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


_ALWAYS = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))
_OURS = {b"x-request-id", b"connection", *(name for name, _ in _ALWAYS)}


class RequestHeaders:
    """Gives each request an id (the caller's X-Request-ID if well-formed) and every answer the
    headers it always carries. Plain ASGI: `@app.middleware("http")` costs a task and a stream
    per request, measurable on the search path.

    It also ends about one kept-alive connection in `keepalive_requests` (Connection: close, at
    random, so no state per connection): the client reconnects, and the worker process whose
    event loop is free first accepts it. Connections so drift from a busy worker to an idle one
    instead of staying wherever a burst of connects left them.

    A 405 answer gets an `Allow` header naming every method the path takes (`routes`): the router
    names only those of the first route it tried, and the pages' error page dropped it.
    """

    def __init__(
        self, app: ASGIApp, *, keepalive_requests: int = 0, routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.close_chance = 1 / keepalive_requests if keepalive_requests > 0 else 0.0
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        REQUEST_ID.set(request_id)  # (the log lines written meanwhile carry it: childindex/logs.py)
        extra = [(b"x-request-id", request_id.encode()), *_ALWAYS]
        if self.close_chance and random.random() < self.close_chance:
            extra.append((b"connection", b"close"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                if message["status"] == 405:
                    kept = _with_allow(kept, self.routes, scope)
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_allow(
    headers: list[tuple[bytes, bytes]], routes: Sequence[BaseRoute], scope: Scope
) -> list[tuple[bytes, bytes]]:
    """The headers of a 405 with `Allow` naming the methods of every route at the request's path."""
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        if route.methods and route.path and _path_regex(route.path).match(scope["path"]):
            methods |= route.methods
    if not methods:
        return headers  # (a mount, such as /static, names its own)
    allow = ", ".join(sorted(methods)).encode()
    return [(k, v) for k, v in headers if k.lower() != b"allow"] + [(b"allow", allow)]


@functools.cache
def _path_regex(path: str) -> re.Pattern[str]:
    return compile_path(path)[0]


def build_search_backend(settings: Settings, engine: Engine) -> SearchBackend:
    """The configured search backend: embedded in the directory's database, or Elasticsearch."""
    if settings.search_backend == "elasticsearch":
        from childindex.es_access import elasticsearch_access
        from search.elasticsearch import ElasticsearchBackend

        if not settings.elasticsearch_url:
            raise ValueError("CHILDINDEX_ELASTICSEARCH_URL is required for the elasticsearch backend")
        access = elasticsearch_access(settings)
        return ElasticsearchBackend.from_url(
            settings.elasticsearch_url, access=access, alias=settings.elasticsearch_alias
        )
    return EmbeddedBackend(engine)
