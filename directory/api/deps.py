"""FastAPI dependencies: the request's unit of work and the acting user."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Protocol

import anyio.to_thread
from fastapi import Depends, HTTPException, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import audit
from directory.errors import DomainError
from directory.models import Actor, Purpose, Role

log = logging.getLogger("childindex.api")
DEV_ACTOR_HEADER = "X-Dev-Actor"
PURPOSE_HEADER = "X-Purpose-Of-Use"


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


@contextmanager
def request_transaction(request: Request) -> Iterator[Session]:
    """One transaction per request: commit on success, roll back and audit the refusal on error."""
    engine = get_engine(request)
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        if session.in_transaction():  # (adding an object begins one) else there is nothing to do
            session.commit()
    except DomainError as exc:
        session.rollback()
        audit_refusal(request, exc)
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def audit_refusal(request: Request, exc: DomainError) -> None:
    """Audit, in a transaction of its own, that the acting user was refused (nothing when no one
    was known yet: an unknown caller's refusal is audited by the auth layer)."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        return
    route = request.scope.get("route")
    target_type, target_id = _target(request)
    audit.append_alone(
        get_engine(request),
        actor=actor,
        action=f"refused.{getattr(route, 'name', 'request')}",
        outcome="refused",
        target_type=target_type,
        target_id=target_id,
        detail={"error": exc.code},
    )


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's transaction (see request_transaction), opened on the event loop.

    Opening a Session does no I/O, and a request that wrote nothing through it (a search: its
    audit goes through the group commit) has nothing to commit, so only a commit, a rollback or a
    refusal to audit is handed to a worker thread. A sync dependency would cost two thread hops
    per request, measurable on the search path.
    """
    transaction = request_transaction(request)
    session = transaction.__enter__()
    try:
        yield session
    except Exception as exc:
        if session.in_transaction() or isinstance(exc, DomainError):
            await anyio.to_thread.run_sync(transaction.__exit__, type(exc), exc, exc.__traceback__)
        else:
            transaction.__exit__(type(exc), exc, exc.__traceback__)
        raise
    except BaseException as exc:  # cancelled: roll back where we stand
        transaction.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if session.in_transaction():
        await anyio.to_thread.run_sync(transaction.__exit__, None, None, None)
    else:
        transaction.__exit__(None, None, None)


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
    if not request.app.state.settings.environment == "development":
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
