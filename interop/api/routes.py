"""The /fhir routes: one set per resource type, plus metadata, $match, history, Subscription and the
Bundle endpoint. Each is named (`fhir_read_Patient`, ...) so auth/policy.py can hold its policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter, Depends, Request, Response

from auth.policy import FHIR_CATALOGUE_TYPES, FHIR_CHILD_TYPES
from directory.errors import NotFound
from directory.http.config import practice
from directory.http.deps import UnitOfWorkRoute
from directory.http.lanes import in_search_lane
from interop import openapi as doc
from interop.api.bundle import run_bundle
from interop.api.child_history import add_child_history_routes
from interop.api.context import Body, CtxDep, Items, etag, if_match, json_only
from interop.api.history import history_bundle, history_entries, visible_involvement
from interop.api.match import match_patients
from interop.api.patient_history import patient_history_bundle, patient_history_entries
from interop.api.read import read_resource
from interop.api.search import run_search
from interop.api.subscription import add_subscription_routes
from interop.api.sync_history import add_sync_history_routes
from interop.api.writes import CREATE, UPDATE, Written, check_type
from interop.api.writes.patient import update_patient
from interop.capability import capability_statement
from interop.outcome import FhirError, FhirJSONResponse, fhir_json
from search.matching import MatchingEngine


def build_router(before_reads: Sequence[Callable[[APIRouter], None]] = ()) -> APIRouter:
    """The /fhir routes, one set per resource type (named so auth/policy.py can hold their policies)."""
    router = APIRouter(
        prefix="/fhir",
        tags=["fhir"],
        route_class=UnitOfWorkRoute,
        default_response_class=FhirJSONResponse,
        dependencies=[Depends(json_only)],  # before anything else: JSON is all this server answers in
    )
    _add_metadata(router)
    add_sync_history_routes(router)  # before the reads, which would take '_history' for an id
    add_child_history_routes(router)
    for add in before_reads:  # (the Bulk Data routes: '$export' would be taken for an id)
        add(router)
    for kind in (*FHIR_CHILD_TYPES, *FHIR_CATALOGUE_TYPES, "AuditEvent"):
        _add_type_routes(router, kind)
    _add_match(router)
    _add_history(router)
    _add_patient_routes(router)
    add_subscription_routes(router)
    _add_bundle(router)
    return router


def _add_metadata(router: APIRouter) -> None:
    @router.get("/metadata", name="fhir_metadata", openapi_extra=doc.answers("The CapabilityStatement"))
    def metadata(request: Request) -> Response:
        """The CapabilityStatement: what this server implements, and how to get a token."""
        return fhir_json(
            capability_statement(
                base=str(request.base_url).rstrip("/") + "/fhir", issuer=practice(request).issuer.rstrip("/")
            )
        )


def _matcher(request: Request) -> MatchingEngine:
    return request.app.state.search_engine  # type: ignore[no-any-return]


def _add_match(router: APIRouter) -> None:
    @router.post(
        "/Patient/$match",
        name="fhir_match_Patient",
        openapi_extra=doc.operation("Parameters", description="A searchset Bundle"),
    )
    async def patient_match(ctx: CtxDep, body: Body, request: Request) -> Response:
        """Patient/$match: ranked candidates with scores and the match-grade extension (audited).
        In the search lane: a node that stops answering holds none of the shared threads."""
        return fhir_json(await in_search_lane(match_patients, ctx, body, _matcher(request)))


def _add_history(router: APIRouter) -> None:
    @router.get(
        "/EpisodeOfCare/{rid}/_history",
        name="fhir_history_EpisodeOfCare",
        openapi_extra=doc.answers("A history Bundle"),
    )
    def episode_history(rid: str, ctx: CtxDep) -> Response:
        """Every version of an involvement, newest first."""
        return fhir_json(history_bundle(ctx, rid))

    @router.get(
        "/EpisodeOfCare/{rid}/_history/{vid}",
        name="fhir_vread_EpisodeOfCare",
        openapi_extra=doc.answers("That version of the EpisodeOfCare"),
    )
    def episode_vread(rid: str, vid: str, ctx: CtxDep) -> Response:
        """One version of an involvement."""
        inv = visible_involvement(ctx, rid)
        entries = history_entries(
            ctx, inv, int(vid) if vid.isascii() and vid.isdigit() and len(vid) <= 9 else -1
        )
        if not entries:
            raise FhirError(404, "not-found", f"EpisodeOfCare/{rid} has no version {vid}.")
        res = entries[0]["resource"]
        return fhir_json(res, headers=etag(res))


def _add_patient_routes(router: APIRouter) -> None:
    """PUT Patient (a connected system changes a child's details), its _history and vread."""

    @router.put("/Patient/{rid}", name="fhir_update_Patient", openapi_extra=doc.update("Patient"))
    def patient_update(rid: str, ctx: CtxDep, body: Body) -> Response:
        """Change a child's details; send If-Match with the version you read (412 when it moved on)."""
        check_type("Patient", body)
        w = update_patient(ctx, rid, body, expected=if_match(ctx.request.headers.get("if-match")))
        return _written_response(ctx.request, ctx.base, w)

    @router.get(
        "/Patient/{rid}/_history", name="fhir_history_Patient", openapi_extra=doc.answers("A history Bundle")
    )
    def patient_history(rid: str, ctx: CtxDep) -> Response:
        """Every version of a child's record, newest first (what you may see of each)."""
        return fhir_json(patient_history_bundle(ctx, rid))

    @router.get(
        "/Patient/{rid}/_history/{vid}",
        name="fhir_vread_Patient",
        openapi_extra=doc.answers("That version of the Patient"),
    )
    def patient_vread(rid: str, vid: str, ctx: CtxDep) -> Response:
        """One version of a child's record."""
        number = int(vid) if vid.isascii() and vid.isdigit() and len(vid) <= 9 else None
        if number is None:
            raise FhirError(404, "not-found", f"Patient/{rid} has no version {vid}.")
        try:
            entries = patient_history_entries(ctx, rid, number)
        except NotFound:
            raise FhirError(404, "not-found", f"Patient/{rid} has no version {vid}.") from None
        res = entries[0]["resource"]
        return fhir_json(res, headers=etag(res))


def _add_bundle(router: APIRouter) -> None:
    @router.post(
        "", name="fhir_bundle", openapi_extra=doc.operation("Bundle", description="The response Bundle")
    )
    @router.post(
        "/", name="fhir_bundle", include_in_schema=False
    )  # the base with its slash: answered, not redirected
    def bundle(ctx: CtxDep, body: Body, request: Request) -> Response:
        """A transaction (atomic: all or nothing) or batch Bundle of creates, updates and reads."""
        limit = int(getattr(request.app.state, "fhir_max_bundle_entries", 100))
        return fhir_json(run_bundle(ctx, body, limit))


def _add_type_routes(router: APIRouter, kind: str) -> None:
    """Read and search (GET and POST _search) for every type; create and update for those written."""

    def read(rid: str, ctx: CtxDep) -> Response:
        res = read_resource(ctx, kind, rid)
        return fhir_json(res, headers=etag(res))

    read.__doc__ = f"Read one {kind}."
    router.add_api_route(
        f"/{kind}/{{rid}}", read, methods=["GET"], name=f"fhir_read_{kind}", openapi_extra=doc.read(kind)
    )

    def search(ctx: CtxDep, items: Items) -> Response:
        return fhir_json(run_search(ctx, kind, items))

    search.__doc__ = f"Search {kind}; unknown parameters are ignored unless 'Prefer: handling=strict'."
    router.add_api_route(
        f"/{kind}",
        search,
        methods=["GET"],
        name=f"fhir_search_{kind}",
        openapi_extra=doc.search(kind, post=False),
    )
    router.add_api_route(
        f"/{kind}/_search",
        search,
        methods=["POST"],
        name=f"fhir_search_post_{kind}",
        openapi_extra=doc.search(kind, post=True),
    )
    if kind in CREATE:
        _add_write_routes(router, kind)


def _add_write_routes(router: APIRouter, kind: str) -> None:
    """POST (create, conditionally with If-None-Exist) and PUT (update, with If-Match)."""

    def create(ctx: CtxDep, body: Body) -> Response:
        check_type(kind, body)
        w = CREATE[kind](ctx, body, if_none_exist=ctx.request.headers.get("if-none-exist"))
        return _written_response(ctx.request, ctx.base, w)

    create.__doc__ = f"Create a {kind} (conditionally, with If-None-Exist)."
    router.add_api_route(
        f"/{kind}", create, methods=["POST"], name=f"fhir_create_{kind}", openapi_extra=doc.create(kind)
    )

    def update(rid: str, ctx: CtxDep, body: Body) -> Response:
        check_type(kind, body)
        w = UPDATE[kind](ctx, rid, body, expected=if_match(ctx.request.headers.get("if-match")))
        return _written_response(ctx.request, ctx.base, w)

    update.__doc__ = f"Update a {kind}; send If-Match with the version you read (412 when it moved on)."
    router.add_api_route(
        f"/{kind}/{{rid}}",
        update,
        methods=["PUT"],
        name=f"fhir_update_{kind}",
        openapi_extra=doc.update(kind),
    )


def _written_response(request: Request, base: str, w: Written) -> Response:
    headers = w.headers(base)
    if "return=minimal" in request.headers.get("prefer", ""):
        return Response(status_code=w.status, headers=headers)
    if "return=operationoutcome" in request.headers.get("prefer", "").lower() and w.note is not None:
        return fhir_json(w.note, w.status, headers)  # e.g. a Lead Professional hand-over asked, not done
    return fhir_json(w.resource, w.status, headers)
