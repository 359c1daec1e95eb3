"""FastAPI dependencies: the request's unit of work and the acting user."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, Protocol, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import audit
from directory.errors import DomainError
from directory.http.config import practice
from directory.models import Actor, Purpose, Role

log = logging.getLogger("childindex.api")
DEV_ACTOR_HEADER = "X-Dev-Actor"
PURPOSE_HEADER = "X-Purpose-Of-Use"
T = TypeVar("T")


def get_engine(request: Request) -> Engine:
    """The database engine wired by create_app."""
    return request.app.state.engine  # type: ignore[no-any-return]


def _target(request: Request) -> tuple[str | None, str | None]:
    params = request.path_params
    if "child_id" in params:
        return "child", str(params["child_id"])
    for key in ("caf_id", "tac_id", "involvement_id", "consent_id"):
        if key in params:
            return key.removesuffix("_id"), str(params[key])
    return None, None


class _Unit:
    """A request's transaction. It ends (commits, or rolls back and audits the refusal) in the
    thread that did the request's work: see `UnitOfWorkRoute`."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.session = Session(get_engine(request), expire_on_commit=False)
        self.ended = False

    def end(self, exc: BaseException | None) -> None:
        """Commit when `exc` is None, else roll back (auditing a domain refusal); in this thread."""
        if self.ended:
            return
        self.ended = True
        session = self.session
        if exc is None:
            if session.in_transaction():  # (adding an object begins one) else there is nothing to do
                try:
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
            return
        session.rollback()
        if isinstance(exc, DomainError):
            audit_refusal(self.request, exc)


@contextmanager
def request_transaction(request: Request) -> Iterator[Session]:
    """One transaction per request, in the calling thread: commit on success, roll back and audit
    the refusal on error."""
    unit = _Unit(request)
    try:
        yield unit.session
    except BaseException as exc:
        unit.end(exc)
        raise
    else:
        unit.end(None)
    finally:
        unit.session.close()


def audit_refusal(request: Request, exc: DomainError) -> None:
    """Audit, in a transaction of its own, that the acting user was refused (nothing when no one
    was known yet: an unknown caller's refusal is audited by the auth layer)."""
    event = refusal_event(request, exc)
    if event is not None:
        audit.append_alone(get_engine(request), **event)


def refusal_event(request: Request, exc: DomainError) -> dict[str, Any] | None:
    """The audit event of the acting user's refusal (None when no one was known yet)."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        return None
    route = request.scope.get("route")
    target_type, target_id = _target(request)
    return {
        "actor": actor,
        "action": f"refused.{getattr(route, 'name', 'request')}",
        "outcome": "refused",
        "target_type": target_type,
        "target_id": target_id,
        "detail": {"error": exc.code},
    }


_UNIT: ContextVar[_Unit | None] = ContextVar("childindex_unit_of_work", default=None)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's transaction (see `_Unit`), opened on the event loop.

    Opening a Session does no I/O. The transaction begins in the thread that runs the endpoint
    and, on a `UnitOfWorkRoute`, ends there too, before that thread is handed back. It must not
    end in another thread taken from the same pool: a request holding SQLite's write lock or
    PostgreSQL's row locks would then wait for a thread while the threads wait for its locks (a
    burst of writes to one child stalled every thread so until the locks timed out). What is left
    here (an endpoint that is not a `UnitOfWorkRoute`'s, or a dependency that failed after the
    transaction began) ends on a thread set aside for it, never on one a request may hold.
    """
    unit = _Unit(request)
    _UNIT.set(unit)  # the endpoint's thread runs in a copy of this context, so it finds the unit
    try:
        yield unit.session
    except Exception as exc:
        if not unit.ended and (unit.session.in_transaction() or isinstance(exc, DomainError)):
            await _aside(unit.end, exc)
        raise
    except BaseException as exc:  # cancelled: roll back where we stand
        unit.end(exc)
        raise
    else:
        if not unit.ended and unit.session.in_transaction():
            await _aside(unit.end, None)
    finally:
        _UNIT.set(None)
        if unit.session.in_transaction():  # (read after the end, e.g. while serialising)
            await _aside(unit.session.rollback)
        unit.session.close()


async def _aside(call: Callable[..., Any], *args: Any) -> Any:
    """Run `call` in a worker thread that no request's limit holds back (as FastAPI ends a sync
    dependency): it ends a transaction that may hold locks other requests' threads wait for."""
    with anyio.CancelScope(shield=True):
        return await anyio.to_thread.run_sync(call, *args, limiter=anyio.CapacityLimiter(1))


class UnitOfWorkRoute(APIRoute):
    """A route whose sync endpoint ends the request's transaction (see `get_session`) itself, in
    its own thread, before that thread goes back to the pool: commits where it began."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = ending_its_unit(endpoint)
        super().__init__(path, endpoint, **kwargs)


def ending_its_unit(endpoint: Callable[..., T]) -> Callable[..., T]:
    """`endpoint`, ending the request's unit of work (if it has one) in the thread it runs in."""

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> T:
        unit = _UNIT.get()
        try:
            result = endpoint(*args, **kwargs)
        except BaseException as exc:
            if unit is not None:
                unit.end(exc)
            raise
        if unit is not None:
            unit.end(None)
        return result

    return run


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_DEV_FIELD = re.compile(r"^[A-Za-z0-9_.@:\- ]{1,200}$")


def parse_dev_actor(header: str, purpose: str | None, request_id: str | None) -> Actor:
    """Read 'subject=alice; role=practitioner; org=X; practitioner=<uuid>; localities=CITY NORTH' from
    the dev header."""
    fields: dict[str, Any] = {}
    for part in header.split(";"):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not _DEV_FIELD.match(value):
            raise HTTPException(400, f"{DEV_ACTOR_HEADER}: the value of '{key}' is not acceptable")
        fields[key] = value
    if "subject" not in fields or "role" not in fields:
        raise HTTPException(400, f"{DEV_ACTOR_HEADER} needs at least subject=... and role=...")
    try:
        role = Role(fields["role"])
    except ValueError:
        raise HTTPException(
            400, f"{DEV_ACTOR_HEADER}: unknown role; use one of {', '.join(r.value for r in Role)}"
        ) from None
    practitioner_id = None
    if "practitioner" in fields:
        try:
            practitioner_id = uuid.UUID(fields["practitioner"])
        except ValueError:
            raise HTTPException(400, f"{DEV_ACTOR_HEADER}: practitioner must be a uuid") from None
    return Actor(
        subject=fields["subject"],
        role=role,
        organisation=fields.get("org"),
        display_name=fields.get("name"),
        client_id="dev-header",
        purpose=parse_purpose(purpose),
        request_id=request_id,
        practitioner_id=practitioner_id,
        shield_override_reason=fields.get("override"),
        localities=tuple(c for c in fields.get("localities", "").split() if c),
    )


def parse_purpose(value: str | None) -> Purpose | None:
    """A purpose of use from its code, or a 400 listing the codes."""
    if value is None or value == "":
        return None
    try:
        return Purpose(value)
    except ValueError:
        raise HTTPException(
            400, f"Unknown purpose of use; use one of {', '.join(p.value for p in Purpose)}"
        ) from None


class ActorResolver(Protocol):
    """What auth/ installs as `app.state.actor_resolver`."""

    def resolve(self, request: Request) -> Actor:
        """Who is calling, resolved (and a refusal audited) in the calling thread."""
        ...

    async def aresolve(self, request: Request) -> Actor:
        """The same from the event loop."""
        ...

    async def alooked(self, request: Request, actor: Actor, child_ids: Iterable[uuid.UUID]) -> None:
        """Count the children a read showed towards trawling detection (and alert)."""
        ...


def _dev_actor(request: Request) -> Actor:
    """Until OAuth is wired, the development-only header; refused otherwise."""
    header = request.headers.get(DEV_ACTOR_HEADER)
    if not practice(request).development:
        raise HTTPException(
            401,
            "Sign-in is required: the development actor header is refused outside development mode.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if header is None:
        raise HTTPException(
            401,
            f"Say who you are: send the {DEV_ACTOR_HEADER} header (development mode).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return parse_dev_actor(header, request.headers.get(PURPOSE_HEADER), request.state.request_id)


async def current_actor(request: Request) -> Actor:
    """Who is acting: every protected route depends on this (async: no thread hop per request)."""
    resolver: ActorResolver | None = getattr(request.app.state, "actor_resolver", None)
    actor = await resolver.aresolve(request) if resolver is not None else _dev_actor(request)
    request.state.actor = actor
    return actor


def actor_of(request: Request) -> Actor:
    """`current_actor` for sync code (the pages' handlers)."""
    resolver: ActorResolver | None = getattr(request.app.state, "actor_resolver", None)
    actor = resolver.resolve(request) if resolver is not None else _dev_actor(request)
    request.state.actor = actor
    return actor


async def count_looks(request: Request, actor: Actor, child_ids: Iterable[uuid.UUID]) -> None:
    """Count the children a read showed (each hit of a search is a look) towards trawling detection."""
    resolver: ActorResolver | None = getattr(request.app.state, "actor_resolver", None)
    if resolver is not None:
        await resolver.alooked(request, actor, child_ids)


CurrentActor = Annotated[Actor, Depends(current_actor)]
