"""/readyz: may this process take traffic? The database answers, its schema is the code's, and the
search index is loaded (embedded, resident copy warm) or Elasticsearch answers.

The checks run in a thread of their own (never the request threads: under load a probe must not
queue behind searches) with a time limit, and one answer serves every probe for about a second:
a storm of probes costs one round of checks a second. A failing answer names the check in plain
words, never a URL, a host or an error text (which may hold a password).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from childindex.migrations import HERE as MIGRATIONS
from search.embedded import EmbeddedBackend
from search.port import SearchBackend

CACHE_SECONDS = 1.0
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readiness")


@dataclass(frozen=True)
class Answer:
    """200 and "ready", or 503 and what is wrong (one short sentence per failed check)."""

    ready: bool
    problems: tuple[str, ...]

    def body(self) -> dict[str, object]:
        if self.ready:
            return {"status": "ready"}
        return {"status": "not ready", "problems": list(self.problems)}


def _probe_engine(engine: Engine, timeout: float) -> Engine:
    """A connection of the probe's own each round (no pool): the check asks whether the database
    answers, not whether the request threads hold every pooled connection at this moment (a busy
    process taken out of rotation for being busy would push its load onto the others). An
    in-memory SQLite database is only reachable through its own engine."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and (url.database in (None, "", ":memory:")):
        return engine
    connect_args: dict[str, object] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, math.ceil(timeout))
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


@functools.cache
def code_head() -> str | None:
    """The newest migration the code knows (read once a process: every app in it shares it)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


class Readiness:
    """The checks, and the last answer for `CACHE_SECONDS`."""

    def __init__(
        self, engine: Engine, backend: SearchBackend, *, resident: bool, timeout: float = 2.0
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.resident = resident
        self.timeout = timeout
        self.head = code_head()
        self._own = _probe_engine(engine, timeout)
        self._last: tuple[float, tuple[str, ...]] | None = None
        self._running: asyncio.Future[tuple[str, ...]] | None = None

    async def answer(self) -> Answer:
        """The checks' answer: the resident index's state now (a read of memory), the database's and
        Elasticsearch's as last checked within `CACHE_SECONDS` (one round shared by every probe)."""
        problems = list(await self._slow())
        backend = self.backend
        if isinstance(backend, EmbeddedBackend) and self.resident and not backend.warm:
            problems.append("the search index is still loading into memory")
        return Answer(not problems, tuple(problems))

    async def _slow(self) -> tuple[str, ...]:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < CACHE_SECONDS:
            return self._last[1]
        loop = asyncio.get_running_loop()
        if self._running is None or self._running.get_loop() is not loop:
            self._running = asyncio.ensure_future(self._check())
        running = self._running
        try:
            found = await asyncio.shield(running)
        finally:
            if running.done() and self._running is running:
                self._running = None
        self._last = (time.monotonic(), found)
        return found

    async def _check(self) -> tuple[str, ...]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout  # (one limit for the round, not one per check)
        jobs = [("database", loop.run_in_executor(_EXECUTOR, self._database))]
        if getattr(self.backend, "client", None) is not None:  # (Elasticsearch)
            jobs.append(("search", loop.run_in_executor(_EXECUTOR, self._elasticsearch)))
        problems: list[str] = []
        for name, job in jobs:
            try:
                problem = await asyncio.wait_for(asyncio.shield(job), max(0.0, deadline - loop.time()))
            except TimeoutError:
                problem = f"the {name} check did not finish within {self.timeout:g} seconds"
            except Exception as exc:  # the kind of error only: its text may hold a URL or a password
                problem = f"the {name} check failed ({type(exc).__name__})"
            if problem:
                problems.append(problem)
        return tuple(problems)

    def _database(self) -> str | None:
        try:
            with self._own.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                try:
                    found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
                except sa.exc.DBAPIError:
                    return "the database has no schema yet (run `childindex migrate`)"
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            return f"the database does not answer ({type(getattr(exc, 'orig', None) or exc).__name__})"
        if self.head not in found:
            return "the database's schema is not the code's (run `childindex migrate`)"
        return None

    def _elasticsearch(self) -> str | None:
        # The backend's own account (search/elasticsearch.py `outdated_reason`): unreachable, refused
        # credentials, an untrusted certificate, no index, or one of an older mapping; never a secret.
        reason = getattr(self.backend, "outdated_reason", None)
        return reason() if callable(reason) else None
