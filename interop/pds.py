"""A client for a PDS-style FHIR R4 demographics service: verify an NHS number, refresh demographics.

Configured with a base URL and OAuth 2.0 client credentials (the token is cached until shortly
before it expires, and fetched again once on a 401). Timeouts, 429 and 5xx are retried with
back-off (honouring Retry-After); 4xx other than 401/408/429 are answered at once.

`check_child` is the directory's use of it (the `childindex pds` command): verify a child's NHS
number and, when asked, refresh the record through the domain (directory.service.apply_demographics).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
from sqlmodel import Session

from directory import audit, service
from directory import repository as drepo
from directory.errors import NotFound
from directory.identifiers import is_valid_nhs_number, normalise_nhs_number
from directory.models import Actor, Child, DeathRecord, DemographicsUpdate
from directory.service import lifecycle
from interop import systems as S

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class PdsError(Exception):
    """The demographics service could not answer; `code` says why (unavailable, refused, invalid...)."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class PdsConfig:
    """Where the service is and how to get a token for it."""

    base_url: str
    token_url: str
    client_id: str
    client_secret: str
    timeout_seconds: float = 5.0
    retries: int = 2
    backoff_seconds: float = 0.5

    @classmethod
    def from_settings(cls, settings: Any) -> PdsConfig | None:
        """The config from Settings, or None when no service is configured."""
        if not settings.pds_base_url:
            return None
        return cls(
            base_url=settings.pds_base_url.rstrip("/"),
            token_url=settings.pds_token_url or "",
            client_id=settings.pds_client_id or "",
            client_secret=settings.pds_client_secret or "",
            timeout_seconds=settings.pds_timeout_seconds,
            retries=settings.pds_retries,
        )


@dataclass(frozen=True)
class Demographics:
    """What the directory takes from a PDS Patient."""

    nhs_number: str
    version: str | None
    family: str | None
    given: list[str]
    previous_names: list[tuple[str, str]]
    birth_date: date | None
    sex: str
    address_lines: list[str]
    postcode: str | None
    gp_ods_code: str | None
    restricted: bool  # PDS marks a restricted (flagged) record: no address or GP is passed on
    deceased: bool = False
    deceased_on: date | None = None  # the day of deceasedDateTime (None: unknown, or not deceased)


@dataclass(frozen=True)
class Verification:
    """Whether an NHS number is known, and its current form when it was superseded."""

    status: str  # verified | superseded | not-found | invalid
    nhs_number: str
    current_nhs_number: str | None = None
    demographics: Demographics | None = None


def _day(value: Any) -> date | None:
    """The day of a FHIR dateTime (its first ten characters), or None when there is none or it is not one."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def demographics_from_pds(resource: dict[str, Any]) -> Demographics:
    """A PDS Patient -> Demographics (pure; withholds address and GP of a restricted record)."""
    restricted = any(s.get("code") in ("R", "V") for s in (resource.get("meta") or {}).get("security") or [])
    nhs = resource.get("id", "")
    for ident in resource.get("identifier") or []:
        if ident.get("system") == S.NHS_NUMBER:
            nhs = ident.get("value", nhs)
    family, given, previous = None, [], []
    for name in resource.get("name") or []:
        if (
            name.get("use") in ("usual", "official", None)
            and family is None
            and not (name.get("period") or {}).get("end")
        ):
            family, given = name.get("family"), list(name.get("given") or [])
        elif name.get("family"):
            previous.append(((name.get("given") or [""])[0], name["family"]))
    address_lines: list[str] = []
    postcode = None
    if not restricted:
        for a in resource.get("address") or []:
            if a.get("use") == "home" and not (a.get("period") or {}).get("end"):
                address_lines, postcode = list(a.get("line") or []), a.get("postalCode")
                break
    gp = None
    if not restricted:
        for g in resource.get("generalPractitioner") or []:
            gp = (g.get("identifier") or {}).get("value")
    birth = resource.get("birthDate")
    return Demographics(
        nhs_number=nhs,
        version=(resource.get("meta") or {}).get("versionId"),
        family=family,
        given=given,
        previous_names=previous,
        birth_date=date.fromisoformat(birth) if birth else None,
        sex=resource.get("gender", "unknown"),
        address_lines=address_lines,
        postcode=postcode,
        gp_ods_code=gp,
        restricted=restricted,
        deceased=bool(resource.get("deceasedDateTime") or resource.get("deceasedBoolean")),
        deceased_on=_day(resource.get("deceasedDateTime")),
    )


@dataclass
class PdsClient:
    """Talks to the service; give it an httpx.Client in tests (respx mocks the HTTP boundary)."""

    cfg: PdsConfig
    http: httpx.Client = field(default_factory=lambda: httpx.Client())
    sleep: Callable[[float], None] = time.sleep
    _token: str | None = None
    _token_expires: float = 0.0

    def _access_token(self, *, fresh: bool = False) -> str:
        if self._token and not fresh and time.monotonic() < self._token_expires - 30:
            return self._token
        try:
            r = self.http.post(
                self.cfg.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self.cfg.client_id, self.cfg.client_secret),
                timeout=self.cfg.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise PdsError(
                "unavailable", f"The demographics service's token endpoint did not answer: {exc}"
            ) from None
        if r.status_code != 200:
            raise PdsError(
                "refused",
                f"The demographics service refused our credentials (HTTP {r.status_code}).",
                status=r.status_code,
            )
        body = r.json()
        self._token = str(body["access_token"])
        self._token_expires = time.monotonic() + float(body.get("expires_in", 300))
        return self._token

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        attempt = 0
        refreshed = False
        while True:
            headers = {
                "Authorization": f"Bearer {self._access_token()}",
                "Accept": S.FHIR_JSON,
                "X-Request-ID": str(uuid.uuid4()),
            }
            try:
                r = self.http.get(
                    f"{self.cfg.base_url}/{path}",
                    params=params,
                    headers=headers,
                    timeout=self.cfg.timeout_seconds,
                )
            except httpx.TimeoutException:
                r = None
            except httpx.HTTPError as exc:
                raise PdsError("unavailable", f"The demographics service did not answer: {exc}") from None
            if r is not None and r.status_code == 401 and not refreshed:
                refreshed = True
                self._access_token(fresh=True)
                continue
            if r is not None and r.status_code not in RETRY_STATUSES:
                return r
            if attempt >= self.cfg.retries:
                if r is None:
                    raise PdsError("timeout", "The demographics service timed out; try again later.")
                raise PdsError(
                    "unavailable",
                    f"The demographics service is unavailable (HTTP {r.status_code}).",
                    status=r.status_code,
                )
            attempt += 1
            wait = self.cfg.backoff_seconds * 2 ** (attempt - 1)
            if r is not None and r.headers.get("Retry-After", "").isdigit():
                wait = max(wait, float(r.headers["Retry-After"]))
            self.sleep(min(wait, 30.0))

    def patient(self, nhs_number: str) -> dict[str, Any] | None:
        """The service's Patient for an NHS number, or None when it does not know it."""
        r = self._get(f"Patient/{nhs_number}")
        if r.status_code == 404:
            return None
        if r.status_code == 400:
            raise PdsError(
                "invalid", f"The demographics service refused the NHS number: {_diagnostics(r)}", status=400
            )
        if r.status_code != 200:
            raise PdsError(
                "refused",
                f"The demographics service answered HTTP {r.status_code}: {_diagnostics(r)}",
                status=r.status_code,
            )
        body: dict[str, Any] = r.json()
        return body

    def verify(self, nhs_number: str) -> Verification:
        """Check an NHS number against the service (superseded numbers name the current one)."""
        value = normalise_nhs_number(nhs_number)
        if not is_valid_nhs_number(value):
            return Verification("invalid", value)
        resource = self.patient(value)
        if resource is None:
            return Verification("not-found", value)
        demo = demographics_from_pds(resource)
        if demo.nhs_number != value:
            return Verification("superseded", value, demo.nhs_number, demo)
        return Verification("verified", value, value, demo)

    def demographics(self, nhs_number: str) -> Demographics | None:
        """Current demographics for a (verified) NHS number, or None when unknown."""
        resource = self.patient(normalise_nhs_number(nhs_number))
        return demographics_from_pds(resource) if resource is not None else None

    def trace(self, query: TraceQuery) -> Trace:
        """Search the service for a person without an NHS number (`GET /Patient?family=&given=&
        birthdate=eq…&address-postcode=&gender=&_max-results=1`): one match (its score and
        demographics), none (an empty searchset), or too many (the service's TOO_MANY_MATCHES
        OperationOutcome, or more than one entry)."""
        r = self._get("Patient", trace_params(query))
        if r.status_code == 400:
            raise PdsError(
                "invalid", f"The demographics service refused the search: {_diagnostics(r)}", status=400
            )
        try:
            body: dict[str, Any] = r.json()
        except ValueError:
            body = {}
        if _too_many(body):
            return Trace("too-many")
        if r.status_code != 200 or body.get("resourceType") != "Bundle":
            raise PdsError(
                "refused",
                f"The demographics service answered HTTP {r.status_code}: {_diagnostics(r)}",
                status=r.status_code,
            )
        entries = [
            e for e in body.get("entry") or [] if (e.get("resource") or {}).get("resourceType") == "Patient"
        ]
        if not entries:
            return Trace("none")
        if len(entries) > 1:
            return Trace("too-many")
        score = (entries[0].get("search") or {}).get("score")
        return Trace(
            "match",
            score=float(score) if isinstance(score, int | float) else None,
            demographics=demographics_from_pds(entries[0]["resource"]),
        )


@dataclass(frozen=True)
class TraceQuery:
    """What a trace searches by: a child's current official name, date of birth, postcode, sex."""

    family: str
    given: str
    birth_date: date
    postcode: str | None = None
    sex: str | None = None  # female | male | other (unknown is not sent)


@dataclass(frozen=True)
class Trace:
    """What the service found: `match` (one person: score 0-1 and demographics), `none`, `too-many`."""

    outcome: str
    score: float | None = None
    demographics: Demographics | None = None


def trace_params(query: TraceQuery) -> dict[str, str]:
    """The service's search parameters for a trace (one result asked for: more is "too many")."""
    params = {
        "family": query.family,
        "given": query.given,
        "birthdate": f"eq{query.birth_date.isoformat()}",
        "_max-results": "1",
    }
    if query.postcode:
        params["address-postcode"] = query.postcode
    if query.sex in ("female", "male", "other"):
        params["gender"] = query.sex
    return params


def _too_many(body: dict[str, Any]) -> bool:
    """Whether a body is the service's "too many matches" OperationOutcome."""
    if body.get("resourceType") != "OperationOutcome":
        return False
    for issue in body.get("issue") or []:
        codes = [c.get("code") for c in (issue.get("details") or {}).get("coding") or []]
        if issue.get("code") == "multiple-matches" or "TOO_MANY_MATCHES" in codes:
            return True
    return False


def _diagnostics(r: httpx.Response) -> str:
    try:
        issue = r.json()["issue"][0]
        details = (issue.get("details") or {}).get("coding") or [{}]
        return str(issue.get("diagnostics") or details[0].get("display") or issue.get("code"))
    except Exception:
        return r.text[:200]


def differences(
    demo: Demographics,
    *,
    family: str | None,
    given: str | None,
    birth_date: date | None,
    postcode: str | None,
) -> list[str]:
    """What the directory holds that the service says differently (names the fields, not the values)."""
    out = []
    if demo.family and family and demo.family.lower() != family.lower():
        out.append("family name")
    if demo.given and given and demo.given[0].lower() != given.lower():
        out.append("given name")
    if demo.birth_date and birth_date and demo.birth_date != birth_date:
        out.append("date of birth")
    if demo.postcode and postcode and demo.postcode.replace(" ", "") != postcode.replace(" ", ""):
        out.append("postcode")
    return out


# --------------------------------------------------------------------------- the directory's use of it


@dataclass(frozen=True)
class Checked:
    """What verifying (and maybe refreshing) one child against the service found and did."""

    child_id: uuid.UUID
    status: str  # verified | superseded | not-found | invalid | no-nhs-number
    changed: list[str]  # the fields brought up to date (names of fields, never values)
    differences: list[str]  # fields the service holds differently, left for a person to check


def child_nhs_number(session: Session, child_id: uuid.UUID) -> str | None:
    """The NHS number the directory holds for a child (NotFound when there is no such child)."""
    if session.get(Child, child_id) is None:
        raise NotFound("No child record has that id.")
    held = [i.value for i in drepo.child_identifiers(session, child_id) if i.system == "nhs"]
    return held[0] if held else None


def _update_from(demo: Demographics, *, nhs_number: str | None) -> DemographicsUpdate:
    address = demo.address_lines
    return DemographicsUpdate(
        source="pds",
        nhs_number=nhs_number,
        given=demo.given[0][:100] if demo.given else None,
        family=demo.family[:100] if demo.family else None,
        date_of_birth=demo.birth_date,
        sex=demo.sex if demo.sex in ("female", "male", "other", "unknown") else None,
        # a restricted record passes on no address (demographics_from_pds withholds it)
        address_line1=address[0][:200] if address else None,
        address_line2=address[1][:200] if len(address) > 1 else None,
        town=address[-1][:100] if len(address) > 2 else None,
        postcode=demo.postcode,
    )


def _differences_held(session: Session, child_id: uuid.UUID, demo: Demographics) -> list[str]:
    """Where the service's demographics differ from what the directory holds for the child."""
    official = next((n for n in drepo.child_names(session, child_id) if n.use == "official"), None)
    child = session.get(Child, child_id)
    current = drepo.current_address(session, child_id)
    return differences(
        demo,
        family=official.family if official else None,
        given=official.given if official else None,
        birth_date=child.date_of_birth if child else None,
        postcode=current.postcode if current else None,
    )


def check_child(
    session: Session, client: PdsClient, *, actor: Actor, child_id: uuid.UUID, refresh: bool, today: date
) -> Checked:
    """Verify a child's NHS number with the service; with `refresh`, bring the record up to date.

    A superseded number is always replaced by the current one (through the domain); demographics
    change only with `refresh`. Either way the check is audited (child.nhs-number.verify, with the
    result), and any change by the domain's own event.
    """
    nhs = child_nhs_number(session, child_id)
    if nhs is None:
        audit.append(
            session,
            actor=actor,
            action="child.nhs-number.verify",
            outcome="refused",
            target_type="child",
            target_id=child_id,
            detail={"result": "no-nhs-number"},
        )
        return Checked(child_id, "no-nhs-number", [], [])
    result = client.verify(nhs)
    audit.append(
        session,
        actor=actor,
        action="child.nhs-number.verify",
        target_type="child",
        target_id=child_id,
        detail={"result": result.status},
    )
    changed: list[str] = []
    differ: list[str] = []
    if result.demographics is not None:
        differ = _differences_held(session, child_id, result.demographics)
        superseded = result.current_nhs_number if result.status == "superseded" else None
        if refresh:
            changed = service.apply_demographics(
                session,
                actor=actor,
                child_id=child_id,
                data=_update_from(result.demographics, nhs_number=superseded),
                today=today,
            )
            differ = []
            if result.demographics.deceased:
                # A death the service reports closes the record (a date it does not give: today's).
                died = min(result.demographics.deceased_on or today, today)
                lifecycle.record_death(
                    session, actor=actor, child_id=child_id, data=DeathRecord(date_of_death=died), today=today
                )
                changed.append("died")
        elif superseded:
            changed = service.apply_demographics(
                session,
                actor=actor,
                child_id=child_id,
                data=DemographicsUpdate(source="pds", nhs_number=superseded),
                today=today,
            )
    return Checked(child_id, result.status, changed, differ)
