"""Deny by default: every route declares a policy or is public; refusals are audited."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import CurrentActor
from auth.policy import PUBLIC, Policy, all_routes, declared_policy
from childindex.app import create_app
from childindex.settings import Settings
from directory.http.deps import current_actor
from tests.conftest import count


def _uses_current_actor(route: APIRoute) -> bool:
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if dep.call is current_actor:
            return True
        stack.extend(dep.dependencies)
    return False


def undeclared(app: FastAPI) -> list[str]:
    """Routes with no policy, or with a policy but never asking who is calling."""
    problems = []
    for ctx in all_routes(app):
        route = ctx.original_route
        policy = declared_policy(route)
        if policy is None:
            problems.append(f"{ctx.path} ({getattr(route, 'name', '?')}): no policy")
        elif isinstance(policy, Policy) and isinstance(route, APIRoute) and not _uses_current_actor(route):
            problems.append(f"{ctx.path}: has a policy but does not depend on current_actor")
    return problems


def test_every_route_has_a_policy_or_is_public() -> None:
    app = create_app(Settings(environment="production", database_url="sqlite://"))
    assert undeclared(app) == []
    public = {ctx.path for ctx in all_routes(app) if declared_policy(ctx.original_route) == PUBLIC}
    assert {"/healthz", "/oauth/token", "/.well-known/oauth-authorization-server"} <= public
    assert not any(p.startswith("/api/") for p in public)


def test_a_route_added_without_a_policy_fails_the_check(engine: Engine) -> None:
    app = create_app(Settings(environment="production", database_url="sqlite://"))
    extra = APIRouter()

    @extra.get("/api/v1/forgotten")
    def forgotten(actor: CurrentActor) -> dict[str, str]:
        """A route nobody wrote a policy for."""
        return {"who": actor.subject}

    app.include_router(extra)
    assert any("forgotten" in p for p in undeclared(app))
    # And at run time it is closed even to a caller the dev header would describe.
    dev = create_app(Settings(environment="development", database_url="sqlite://"), engine=engine)
    dev.include_router(extra)
    with TestClient(dev, raise_server_exceptions=False) as client:
        r = client.get("/api/v1/forgotten", headers={"X-Dev-Actor": "subject=a; role=directory_admin"})
        assert r.status_code == 403 and r.json()["type"].endswith("no-policy")
    assert count(engine, "audit_event") == 1
