"""Route policies: which scopes and roles each route needs, and the check of a caller against one.
Deny by default.

Every route of the app either has a policy here (by route name), declares one with a
`RequireScope` dependency, or is explicitly public. tests/auth/test_policy.py walks
`app.routes` and fails when a route has none, so a new route cannot ship unprotected.
The resource server (auth/deps.py) finds each request's policy with `declared_policy` and
applies it with `check_policy`; this module imports nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from auth.errors import forbidden
from directory.http.deps import CurrentActor
from directory.models import Actor, Role


@dataclass(frozen=True)
class Policy:
    """Scopes (any one of them suffices) and roles (any one) a route needs."""

    scopes: frozenset[str]
    roles: frozenset[Role]
    rate_limited: bool = False  # per-subject limit and trawling detection (searches, card reads)
    # The one or few scopes to name when refusing (SMART sets hold dozens of equivalent spellings);
    # "{context}" becomes "system" or "user" after the caller's kind.
    hint: tuple[str, ...] = ()

    def scopes_to_name(self, *, system: bool) -> list[str]:
        """The scopes a refusal names: the hint (in the caller's context) or, for short sets, all of them."""
        if self.hint:
            context = "system" if system else "user"
            return [h.format(context=context) for h in self.hint]
        return sorted(self.scopes)


PUBLIC = "public"
SCRAPER = "scraper"
"""/metrics: no person's token, but the scrape token and/or networks the route itself checks
(childindex/metrics.py ScrapeAccess; unconfigured: 404). Not PUBLIC, and never a Policy."""

ALL_ROLES = frozenset(Role)
PRACTICE = frozenset(
    {
        Role.PRACTITIONER,
        Role.DESIGNATED_PRACTITIONER,
        Role.CHILD_PROTECTION,
        Role.LOCAL_DELIVERY_TEAM,
        Role.DIRECTORY_ADMIN,
        Role.SYSTEM,
    }
)
LOG_READERS = frozenset({Role.AUDITOR, Role.DIRECTORY_ADMIN, Role.DESIGNATED_PRACTITIONER})
ADMINS = frozenset({Role.DIRECTORY_ADMIN})
RECORD_KEEPERS = frozenset({Role.DIRECTORY_ADMIN, Role.DATA_MANAGER})  # merges, match reviews, subject access

_READ = Policy(frozenset({"directory.search"}), PRACTICE)
_WRITE = Policy(frozenset({"directory.write"}), PRACTICE)
_CATALOGUE = Policy(frozenset({"directory.search", "audit.read"}), ALL_ROLES)

# The policies of routes that do not declare their own (the directory's /api/v1 routes, and
# the search and FHIR routes once they land), by route name.
ROUTE_POLICIES: dict[str, Policy | str] = {
    # public: liveness, the API docs, OAuth endpoints and metadata
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "metrics": SCRAPER,  # the scraper's own token and/or networks (childindex/metrics.py)
    "openapi": PUBLIC,
    "swagger_ui_html": PUBLIC,
    "swagger_ui_redirect": PUBLIC,
    "redoc_html": PUBLIC,
    "oauth_metadata": PUBLIC,
    "smart_configuration": PUBLIC,
    "fhir_smart_configuration": PUBLIC,
    "oauth_jwks": PUBLIC,
    "oauth_token": PUBLIC,
    "oauth_authorize_form": PUBLIC,
    "oauth_authorize_submit": PUBLIC,
    "oauth_upstream_callback": PUBLIC,
    "oauth_revoke": PUBLIC,
    "oauth_introspect": PUBLIC,
    # the directory's app API
    "create_child": _WRITE,
    "read_child": Policy(frozenset({"directory.search"}), PRACTICE, rate_limited=True),
    "child_access_log": Policy(frozenset({"audit.read"}), LOG_READERS),
    "shield_child": _WRITE,
    "unshield_child": _WRITE,
    # a child's details: the domain says who may change which (permissions.require_details_change)
    "change_child": Policy(frozenset({"directory.write"}), PRACTICE | {Role.DATA_MANAGER}),
    "child_history": Policy(
        frozenset({"directory.search"}), PRACTICE | {Role.DATA_MANAGER}, rate_limited=True
    ),
    "merge_child": Policy(frozenset({"directory.write"}), RECORD_KEEPERS),
    "unmerge_child": Policy(frozenset({"directory.write"}), RECORD_KEEPERS),
    "subject_access_export": Policy(frozenset({"audit.read"}), RECORD_KEEPERS),
    "record_involvement": _WRITE,
    "end_involvement": _WRITE,
    "confirm_involvement": _WRITE,
    "record_consent": _WRITE,
    "withdraw_consent": _WRITE,
    "signal_caf": _WRITE,
    "start_caf": _WRITE,
    "complete_caf": _WRITE,
    "close_caf": _WRITE,
    "hand_over_lead": _WRITE,
    "update_tac": _WRITE,
    "convene_tac": _WRITE,
    "list_notices": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    "read_notice": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    # the inbox (childindex/inbox_api.py): notices to people, and email or the inbox only
    "list_inbox": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    "read_inbox_notice": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    "mark_inbox_read": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    "get_notice_preference": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    "set_notice_preference": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    # requests about a CAF (childindex/requests_api.py): the domain says who may ask and who answers
    "ask_to_join_tac": _WRITE,
    "invite_to_tac": _WRITE,
    "list_requests": Policy(frozenset({"directory.search", "directory.write"}), PRACTICE),
    "accept_request": _WRITE,
    "decline_request": _WRITE,
    "list_services": _CATALOGUE,
    "list_practitioners": _CATALOGUE,
    "list_localities": _CATALOGUE,
    # the locality delivery team's worklist (childindex/worklist_api.py)
    "list_worklists": Policy(frozenset({"directory.search"}), frozenset({Role.LOCAL_DELIVERY_TEAM})),
    "read_worklist": Policy(frozenset({"directory.search"}), frozenset({Role.LOCAL_DELIVERY_TEAM})),
    # a practitioner's own children and CAFs (childindex/mine_api.py)
    "read_my_work": Policy(frozenset({"directory.search"}), PRACTICE - {Role.DIRECTORY_ADMIN, Role.SYSTEM}),
    # feed rows held for review (childindex/reviews_api.py): directory admins and data managers
    "list_match_reviews": Policy(frozenset({"directory.write"}), RECORD_KEEPERS),
    "read_match_review": Policy(frozenset({"directory.write"}), RECORD_KEEPERS),
    "decide_match_review": Policy(frozenset({"directory.write"}), RECORD_KEEPERS),
    # search: the same checks as a card read
    "search_children": Policy(frozenset({"directory.search"}), PRACTICE, rate_limited=True),
    "search_children_get": Policy(frozenset({"directory.search"}), PRACTICE, rate_limited=True),
    # the pages (childindex/web): these are public; every other page declares RequireScope
    "static": PUBLIC,
    "web_home": PUBLIC,
    "web_signin_start": PUBLIC,
    "web_signin_callback": PUBLIC,
    "web_signout": PUBLIC,  # checks the session's CSRF token; works even when the grant has lapsed
    "web_accessibility": PUBLIC,
    "web_enrol_form": PUBLIC,  # a new person's one-time enrolment link: the sealed token is the key
    "web_enrol": PUBLIC,
}
# "You were signed out because ..." and the time-out warning's calls (childindex/web/signed_out.py):
# they read or renew only the caller's own sealed session; "stay signed in" checks the grant as a page does.
ROUTE_POLICIES.update({"web_signed_out": PUBLIC, "web_session_left": PUBLIC, "web_session_keep": PUBLIC})


# --- the FHIR surface (/fhir): SMART v2 scopes per resource type and interaction ---------------

FHIR_CHILD_TYPES = ("Patient", "EpisodeOfCare", "Flag", "CareTeam", "Consent", "RelatedPerson", "CarePlan")
FHIR_CATALOGUE_TYPES = ("Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Location")
FHIR_WRITE_TYPES = ("EpisodeOfCare", "PractitionerRole", "Flag", "Consent", "CareTeam")
FHIR_HISTORY_TYPES = ("EpisodeOfCare", "Patient")
_LETTERS = "cruds"
_V1 = {"c": "write", "u": "write", "d": "write", "r": "read", "s": "read"}


def smart_scopes(resource: str, letter: str) -> frozenset[str]:
    """Every SMART scope (v2 'system/Patient.rs' in any letter set, wildcard, v1) granting `letter`."""
    sets = []
    for mask in range(1, 32):
        perms = "".join(ch for i, ch in enumerate(_LETTERS) if mask & (1 << i))
        if letter in perms:
            sets.append(perms)
    out: set[str] = set()
    for context in ("system", "user"):
        for kind in (resource, "*"):
            out.update(f"{context}/{kind}.{perms}" for perms in sets)
            out.update({f"{context}/{kind}.{_V1[letter]}", f"{context}/{kind}.*"})
    return frozenset(out)


def smart_hint(resource: str, letter: str) -> tuple[str, ...]:
    """The narrowest v2 scope granting `letter` on `resource`, and its v1 spelling."""
    return (f"{{context}}/{resource}.{letter}", f"{{context}}/{resource}.{_V1[letter]}")


def _smart(resource: str, letter: str, roles: frozenset[Role], *, rate_limited: bool = False) -> Policy:
    return Policy(smart_scopes(resource, letter), roles, rate_limited, smart_hint(resource, letter))


def _fhir_policies() -> dict[str, Policy | str]:
    out: dict[str, Policy | str] = {"fhir_metadata": PUBLIC}
    for kind in FHIR_CHILD_TYPES + FHIR_CATALOGUE_TYPES + ("AuditEvent",):
        roles = LOG_READERS if kind == "AuditEvent" else PRACTICE if kind in FHIR_CHILD_TYPES else ALL_ROLES
        # reads of a child's record share the card's per-subject limit and trawling detection
        limited = kind in FHIR_CHILD_TYPES
        out[f"fhir_read_{kind}"] = _smart(kind, "r", roles, rate_limited=limited)
        out[f"fhir_search_{kind}"] = _smart(kind, "s", roles, rate_limited=limited)
        out[f"fhir_search_post_{kind}"] = _smart(kind, "s", roles, rate_limited=limited)
    for kind in FHIR_WRITE_TYPES:
        out[f"fhir_create_{kind}"] = _smart(kind, "c", PRACTICE)
        out[f"fhir_update_{kind}"] = _smart(kind, "u", PRACTICE)
    for kind in FHIR_HISTORY_TYPES:
        history = _smart(kind, "r", PRACTICE if kind in FHIR_CHILD_TYPES else ALL_ROLES, rate_limited=True)
        out[f"fhir_history_{kind}"] = history
        out[f"fhir_vread_{kind}"] = history
    out["fhir_match_Patient"] = _smart("Patient", "s", PRACTICE, rate_limited=True)
    # a child's details change over FHIR from connected systems (people use the app API or the pages)
    out["fhir_update_Patient"] = _smart("Patient", "u", frozenset({Role.SYSTEM}))
    # rest-hook subscriptions: connected systems (and admins, local delivery teams) manage their own
    subscribers = frozenset({Role.SYSTEM, Role.DIRECTORY_ADMIN, Role.LOCAL_DELIVERY_TEAM})
    out["fhir_create_Subscription"] = _smart("Subscription", "c", subscribers)
    out["fhir_read_Subscription"] = _smart("Subscription", "r", subscribers)
    out["fhir_search_Subscription"] = _smart("Subscription", "s", subscribers)
    out["fhir_delete_Subscription"] = _smart("Subscription", "d", subscribers)
    # a Bundle needs some write scope; each entry is then checked against its own type's scope
    out["fhir_bundle"] = Policy(
        frozenset().union(*(smart_scopes(k, c) for k in FHIR_WRITE_TYPES for c in "cu")),
        PRACTICE,
        hint=tuple(f"{{context}}/{k}.cu" for k in FHIR_WRITE_TYPES),
    )
    return out


ROUTE_POLICIES.update(_fhir_policies())


# --- records outside the ordinary: archived, sealed, and their life cycle (issue #22) ------------
# Which record each role may then read is directory/visibility.py's rule: an archived record data
# managers and auditors, a sealed one the adoption team; to everyone else it does not exist.
RECORD_READERS = PRACTICE | {Role.DATA_MANAGER, Role.AUDITOR, Role.ADOPTION_OFFICER}
"""Who may open a child's card (the API and the pages)."""
RECORD_FINDERS = PRACTICE | {Role.DATA_MANAGER, Role.ADOPTION_OFFICER}
"""Who may search for a child (the API and the pages)."""
ADOPTION_TEAM = frozenset({Role.ADOPTION_OFFICER})
ROUTE_POLICIES.update(
    {
        "read_child": Policy(frozenset({"directory.search"}), RECORD_READERS, rate_limited=True),
        # a record's history is read by whoever may read the record (visibility decides which)
        "child_history": Policy(frozenset({"directory.search"}), RECORD_READERS, rate_limited=True),
        "search_children": Policy(frozenset({"directory.search"}), RECORD_FINDERS, rate_limited=True),
        "search_children_get": Policy(frozenset({"directory.search"}), RECORD_FINDERS, rate_limited=True),
        "adopt_child": Policy(frozenset({"directory.write"}), ADOPTION_TEAM),
        "read_adoption": Policy(frozenset({"directory.search"}), ADOPTION_TEAM),
        "record_death": Policy(frozenset({"directory.write"}), ADMINS),
        "record_move_away": Policy(frozenset({"directory.write"}), ADMINS),
        "read_lifecycle": Policy(
            frozenset({"directory.search", "audit.read"}),
            frozenset({Role.DIRECTORY_ADMIN, Role.DATA_MANAGER, Role.AUDITOR}),
        ),
    }
)


def check_policy(policy: Policy | str | None, *, role: Role, scopes: frozenset[str] | None) -> None:
    """Refuse (403) unless the role and, for token callers, one of the scopes fit the policy."""
    if policy == PUBLIC:
        return
    if policy is None or isinstance(policy, str):
        raise forbidden("no-policy", "This route has no access policy, so it is closed to everyone.")
    if role not in policy.roles:
        raise forbidden(
            "role-not-allowed",
            f"Your role ({role.value}) may not do this; it needs "
            f"one of: {', '.join(sorted(r.value for r in policy.roles))}.",
        )
    if scopes is not None and not (scopes & policy.scopes):
        named = policy.scopes_to_name(system=role == Role.SYSTEM)
        raise forbidden(
            "insufficient-scope",
            f"Your access token lacks the scope this needs: {' or '.join(named)}"
            f"{' (or a wider one granting the same)' if policy.hint else ''}. Ask for it when you "
            "request a token, or ask your administrator to add it to your grant.",
        )


class RequireScope:
    """A dependency that declares and enforces a route's scopes (any of) and roles."""

    def __init__(
        self,
        *scopes: str,
        roles: frozenset[Role] | set[Role] | None = None,
        rate_limited: bool = False,
    ) -> None:
        self.policy = Policy(
            frozenset(scopes),
            frozenset(roles) if roles else frozenset(Role),
            rate_limited=rate_limited,
        )

    async def __call__(self, request: Request, actor: CurrentActor) -> Actor:
        """Return the actor once the resolver has applied this policy (checked again here)."""
        check_policy(self.policy, role=actor.role, scopes=getattr(request.state, "scopes", None))
        return actor

    def __repr__(self) -> str:
        return f"RequireScope({', '.join(sorted(self.policy.scopes))})"


def declared_policy(route: Any) -> Policy | str | None:
    """The route's policy: from a RequireScope dependency, else from ROUTE_POLICIES, else None."""
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        dep = stack.pop()
        call = getattr(dep, "call", None)
        if isinstance(call, RequireScope):
            return call.policy
        stack.extend(getattr(dep, "dependencies", []))
    return ROUTE_POLICIES.get(getattr(route, "name", ""))


def all_routes(app: Any) -> list[Any]:
    """Every route of the app, included routers flattened (each with its effective path)."""
    from fastapi.routing import iter_route_contexts

    return list(iter_route_contexts(app.routes))


# --- the review queue of held feed rows: the adoption team sees the rows held beside a sealed record
# (and only those: directory/importer/reviews.py RESTRICTED), the record keepers every other row.
MATCH_REVIEWERS = RECORD_KEEPERS | ADOPTION_TEAM
ROUTE_POLICIES.update(
    {
        name: Policy(frozenset({"directory.write"}), MATCH_REVIEWERS)
        for name in ("list_match_reviews", "read_match_review", "decide_match_review")
    }
)


# --- connected systems (auth/admin.py clients_router): directory administrators, as the grants admin API
ROUTE_POLICIES.update(
    {
        name: Policy(frozenset({"grants.admin"}), ADMINS)
        for name in ("list_clients", "register_client", "read_client", "rotate_client", "disable_client")
    }
)


# --- a demographics trace (issue #19): directory admins trace a record without an NHS number and
# confirm the number offered (childindex/api_pds.py; the domain checks who may change the number)
ROUTE_POLICIES.update(
    {
        "pds_trace": Policy(frozenset({"directory.write"}), ADMINS),
        "pds_trace_confirm": Policy(frozenset({"directory.write"}), ADMINS),
    }
)


# --- staying in sync with the catalogue (issue #19): type- and system-level _history -------------
# The catalogue search's own policy: a type's history is a search of what changed. The system-level
# history takes any catalogue type's search scope and answers with the types the token may search.
ROUTE_POLICIES.update(
    {f"fhir_history_type_{kind}": _smart(kind, "s", ALL_ROLES) for kind in FHIR_CATALOGUE_TYPES}
)
ROUTE_POLICIES["fhir_history_system"] = Policy(
    frozenset().union(*(smart_scopes(k, "s") for k in FHIR_CATALOGUE_TYPES)),
    ALL_ROLES,
    hint=tuple(f"{{context}}/{k}.s" for k in FHIR_CATALOGUE_TYPES),
)


# --- FHIR Bulk Data export (issue #19, interop/bulk/): connected systems holding directory.export -----
# One rule for who may export which type (the lead gates the child types' type-level _history with it).
EXPORT_SCOPE = "directory.export"
EXPORTERS = frozenset({Role.SYSTEM})
"""Only connected systems export: never a person's session (a person reads records one by one)."""


def may_export(actor: Actor, scopes: frozenset[str] | None, kind: str) -> bool:
    """Whether this caller may export (or list in bulk) resources of `kind`: a system client whose
    token carries `directory.export` and the type's own read scope (system/Patient.rs for Patient)."""
    if actor.role not in EXPORTERS or scopes is None:
        return False
    return EXPORT_SCOPE in scopes and bool(scopes & smart_scopes(kind, "r"))


_EXPORT = Policy(frozenset({EXPORT_SCOPE}), EXPORTERS)
ROUTE_POLICIES.update(
    {
        # a kick-off is one request towards the caller's rate limit (the export itself is not)
        "fhir_export_system": Policy(frozenset({EXPORT_SCOPE}), EXPORTERS, rate_limited=True),
        "fhir_export_Patient": Policy(frozenset({EXPORT_SCOPE}), EXPORTERS, rate_limited=True),
        "fhir_export_Group": Policy(frozenset({EXPORT_SCOPE}), EXPORTERS, rate_limited=True),
        "fhir_export_status": _EXPORT,
        "fhir_export_cancel": _EXPORT,
        "fhir_export_file": _EXPORT,
        # every Patient or EpisodeOfCare changed since: a read in bulk, as an export is (each page
        # counts as one request; the route checks may_export for the type: interop/api/child_history.py)
        **{
            f"fhir_history_type_{kind}": Policy(frozenset({EXPORT_SCOPE}), EXPORTERS, rate_limited=True)
            for kind in FHIR_CHILD_TYPES
        },
        # a Group is a locality's children (its members are not listed: export them)
        "fhir_read_Group": _smart("Group", "r", PRACTICE),
        "fhir_search_Group": _smart("Group", "s", PRACTICE),
    }
)


# --- the early intervention panel, step up and step down (issue #18; childindex/panel_api.py): the
# domain says who (directory/service/panel.py, step_up.py: the CAF's own rule, the locality team,
# social care)
PANEL_READERS = frozenset({Role.LOCAL_DELIVERY_TEAM, Role.DIRECTORY_ADMIN})
ROUTE_POLICIES.update(
    {
        "send_caf_to_panel": _WRITE,
        "read_caf_panel": Policy(frozenset({"directory.search"}), PRACTICE),
        "decide_caf_panel": Policy(frozenset({"directory.write"}), PANEL_READERS),
        "panel_queue": Policy(frozenset({"directory.search"}), PANEL_READERS),
        "step_up_caf": _WRITE,
        "step_down_child": Policy(frozenset({"directory.write"}), frozenset({Role.CHILD_PROTECTION})),
    }
)

# --- a TAC's plan (issue #18 item 6, childindex/plan_api.py): reads as a card read; the domain says who
# may change a plan (permissions.require_caf_change)
ROUTE_POLICIES.update(
    {
        "list_tac_actions": Policy(frozenset({"directory.search"}), PRACTICE, rate_limited=True),
        "list_tac_reviews": Policy(frozenset({"directory.search"}), PRACTICE, rate_limited=True),
        "add_tac_action": _WRITE,
        "change_tac_action": _WRITE,
        "record_tac_review": _WRITE,
    }
)
