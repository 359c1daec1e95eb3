"""Tracing a child without an NHS number through the demographics service (issue #19, item 5).

respx answers at the HTTP boundary with bodies shaped as the NHS Personal Demographics Service FHIR
API's patient search answers (tests/fixtures/pds_trace/: a searchset Bundle whose entries carry
`search.score`, an empty Bundle for none, the TOO_MANY_MATCHES OperationOutcome); hand-made test data,
not captures of real patients. The routes and the command run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from childindex.app import create_app
from childindex.settings import Settings
from directory import repository as drepo
from directory import service
from directory.db import unit_of_work
from directory.errors import DomainError
from directory.models import AuditEvent, Child, ChildVersion, DeathRecord, Outbox, Purpose, Role, ShieldSet
from directory.service import lifecycle
from interop.pds import PdsClient, PdsConfig, PdsError, Trace, TraceQuery, demographics_from_pds, trace_params
from interop.pds_trace import CONFIDENT_SCORE, confirm_trace
from tests.fixtures.builders import actor, make_child

DATA = Path(__file__).parents[1] / "fixtures" / "pds_trace"
BASE = "https://pds.example.nhs.uk/personal-demographics/FHIR/R4"
TOKEN = "https://auth.example.nhs.uk/oauth2/token"
SEARCH = f"{BASE}/Patient"
TRACED = "9000000009"
ADMIN = {"X-Dev-Actor": "subject=ada; role=directory_admin; org=County", "X-Purpose-Of-Use": "administration"}
PERSONAL = ("Jane", "Smith", "Smyth", "2018-10-22", "LS1", "LS2", "Trevelyan", "Y12345")


def body(name: str) -> dict[str, Any]:
    """A recorded answer."""
    answer: dict[str, Any] = json.loads((DATA / name).read_text())
    return answer


def _token(mock: respx.MockRouter) -> None:
    mock.post(TOKEN).respond(200, json={"access_token": "tok-1", "expires_in": 599, "token_type": "Bearer"})


# --------------------------------------------------------------------------- the client


@pytest.fixture
def pds() -> PdsClient:
    client = PdsClient(PdsConfig(BASE, TOKEN, "childindex", "s3cret", retries=2), http=httpx.Client())
    client.sleep = lambda s: None
    return client


QUERY = TraceQuery(
    family="Smith", given="Jane", birth_date=date(2018, 10, 22), postcode="LS1 6AE", sex="female"
)


def test_one_match_sends_the_service_s_search_and_reads_score_and_demographics(pds: PdsClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        _token(mock)
        route = mock.get(SEARCH).respond(200, json=body("one_match.json"))
        trace = pds.trace(QUERY)
    assert trace.outcome == "match" and trace.score == 1.0
    assert trace.demographics is not None and trace.demographics.nhs_number == TRACED
    assert trace.demographics.family == "Smith" and trace.demographics.postcode == "LS1 6AE"
    params = dict(route.calls[0].request.url.params)
    assert params == {
        "family": "Smith",
        "given": "Jane",
        "birthdate": "eq2018-10-22",
        "address-postcode": "LS1 6AE",
        "gender": "female",
        "_max-results": "1",
    }


def test_unknown_sex_and_no_postcode_are_not_sent() -> None:
    q = TraceQuery(family="Smith", given="Jane", birth_date=QUERY.birth_date, sex="unknown")
    assert set(trace_params(q)) == {"family", "given", "birthdate", "_max-results"}


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [("none.json", "none"), ("too_many.json", "too-many"), ("low_score.json", "match")],
)
def test_none_too_many_and_a_low_score(pds: PdsClient, answer: str, outcome: str) -> None:
    with respx.mock() as mock:
        _token(mock)
        mock.get(SEARCH).respond(200, json=body(answer))
        trace = pds.trace(QUERY)
    assert trace.outcome == outcome
    if answer == "low_score.json":
        assert trace.score is not None and trace.score < CONFIDENT_SCORE


def test_two_entries_are_too_many(pds: PdsClient) -> None:
    two = body("one_match.json")
    two["entry"] = two["entry"] * 2
    with respx.mock() as mock:
        _token(mock)
        mock.get(SEARCH).respond(200, json=two)
        assert pds.trace(QUERY).outcome == "too-many"


def test_the_service_down_is_an_error_after_the_retries(pds: PdsClient) -> None:
    with respx.mock() as mock:
        _token(mock)
        route = mock.get(SEARCH).respond(503, json=body("unavailable.json"))
        with pytest.raises(PdsError) as caught:
            pds.trace(QUERY)
    assert caught.value.code == "unavailable" and route.call_count == 3


def test_a_refused_search_is_an_invalid_error(pds: PdsClient) -> None:
    with respx.mock() as mock:
        _token(mock)
        mock.get(SEARCH).respond(400, json=body("invalid_search.json"))
        with pytest.raises(PdsError) as caught:
            pds.trace(QUERY)
    assert caught.value.code == "invalid" and "birthdate" in caught.value.message


# --------------------------------------------------------------------------- the routes


@pytest.fixture
def api(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(
        environment="development",
        database_url="sqlite://",
        indexer_interval_seconds=0,
        pds_base_url=BASE,
        pds_token_url=TOKEN,
        pds_client_id="childindex",
        pds_client_secret="s3cret",
        pds_retries=1,
    )
    app = create_app(settings, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _untraced(engine: Engine, **overrides: Any) -> str:
    """A record of Jane Smith without an NHS number (the details the recorded answers are about)."""
    fields: dict[str, Any] = {
        "names": [{"given": "Jane", "family": "Smith"}],
        "date_of_birth": "2018-10-22",
        "identifiers": [],
        "address": {"line1": "1 Trevelyan Square", "town": "Leeds", "postcode": "LS1 6AE"},
        **overrides,
    }
    with unit_of_work(engine) as s:
        return str(make_child(s, **fields))


def _state(engine: Engine, child: str) -> tuple[int, list[str]]:
    """The record's version and the NHS numbers it holds."""
    cid = uuid.UUID(child)
    with Session(engine) as s:
        record = s.get(Child, cid)
        assert record is not None
        held = [i.value for i in drepo.child_identifiers(s, cid) if i.system == "nhs"]
        return record.version, held


def _audit(engine: Engine, action: str) -> list[tuple[str, dict[str, Any], str | None]]:
    with Session(engine) as s:
        rows = s.exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq))
        ).all()
        return [(e.outcome, json.loads(e.detail or "{}"), e.target_id) for e in rows]


def _outbox(engine: Engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(Outbox).where(Outbox.topic == "child")).all())


def _no_personal_data(engine: Engine) -> None:
    with Session(engine) as s:
        text = json.dumps([(e.action, e.detail) for e in s.exec(select(AuditEvent)).all()])
    for value in PERSONAL:
        assert value not in text, value


def _call(api: TestClient, path: str, answer: str | None, **kw: Any) -> tuple[httpx.Response, respx.Route]:
    """POST to the app while the service gives a recorded answer (None: it is down)."""
    with respx.mock(assert_all_called=False) as mock:
        _token(mock)
        if answer is None:
            route = mock.get(SEARCH).respond(503, json=body("unavailable.json"))
        else:
            route = mock.get(SEARCH).respond(200, json=body(answer))
        return api.post(path, headers=kw.pop("headers", ADMIN), **kw), route


def _trace(api: TestClient, child: str, answer: str | None, **kw: Any) -> httpx.Response:
    return _call(api, f"/api/v1/children/{child}/pds-trace", answer, **kw)[0]


def _confirm(api: TestClient, child: str, answer: str | None, nhs: str = TRACED, **kw: Any) -> httpx.Response:
    return _call(api, f"/api/v1/children/{child}/pds-trace/confirm", answer, json={"nhs_number": nhs}, **kw)[
        0
    ]


def test_a_trace_offers_the_one_match_and_writes_nothing(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    before = _state(engine, child)
    r, route = _call(api, f"/api/v1/children/{child}/pds-trace", "one_match.json")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["result"] == "match" and data["confident_score"] == CONFIDENT_SCORE
    c = data["candidate"]
    assert (c["nhs_number"], c["score"], c["confident"]) == (TRACED, 1.0, True)
    assert (c["family"], c["birth_date"], c["postcode"], c["differences"]) == (
        "Smith",
        "2018-10-22",
        "LS1 6AE",
        [],
    )
    # the record's own current details were sent
    params = dict(route.calls[0].request.url.params)
    assert (params["family"], params["birthdate"], params["address-postcode"]) == (
        "Smith",
        "eq2018-10-22",
        "LS1 6AE",
    )
    assert _state(engine, child) == before  # never writes
    assert _audit(engine, "child.nhs-number.trace") == [
        ("success", {"result": "match", "score": "confident"}, child)
    ]
    _no_personal_data(engine)


def test_a_low_score_is_offered_as_not_confident(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    r = _trace(api, child, "low_score.json")
    assert r.status_code == 200 and r.json()["result"] == "not-confident"
    c = r.json()["candidate"]
    assert c["confident"] is False and c["score"] < CONFIDENT_SCORE
    assert c["differences"] == ["family name", "postcode"]
    assert _audit(engine, "child.nhs-number.trace")[0][1] == {"result": "not-confident", "score": "low"}
    _no_personal_data(engine)


@pytest.mark.parametrize(("answer", "result"), [("none.json", "none"), ("too_many.json", "too-many")])
def test_none_and_too_many_offer_no_candidate(
    api: TestClient, engine: Engine, answer: str, result: str
) -> None:
    child = _untraced(engine)
    before = _state(engine, child)
    r = _trace(api, child, answer)
    assert r.status_code == 200 and r.json()["result"] == result and r.json()["candidate"] is None
    assert _state(engine, child) == before
    assert _audit(engine, "child.nhs-number.trace")[0][1] == {"result": result, "score": "none"}


def test_the_service_down_answers_503_and_writes_nothing(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    before = _state(engine, child)
    for r in (_trace(api, child, None), _confirm(api, child, None)):
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json" and r.headers["Retry-After"]
        assert "Nothing was changed" in r.json()["detail"]
    assert _state(engine, child) == before
    assert [(o, d) for o, d, _ in _audit(engine, "child.nhs-number.trace")] == [
        ("error", {"result": "unavailable"}),
        ("error", {"result": "unavailable"}),
    ]


def test_confirm_adds_the_number_through_the_change_rule(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    version, held = _state(engine, child)
    assert held == []
    queued = _outbox(engine)
    r = _confirm(api, child, "one_match.json", nhs="900 000 0009")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == version + 1
    assert _state(engine, child) == (version + 1, [TRACED])
    changes = _audit(engine, "child.details.change")
    assert changes[-1][1] == {"changed": "nhs number", "source": "pds"} and changes[-1][2] == child
    with Session(engine) as s:
        snap = s.exec(
            select(ChildVersion)
            .where(ChildVersion.child_id == uuid.UUID(child))
            .order_by(col(ChildVersion.version))
        ).all()[-1]
        assert (snap.version, snap.source) == (version + 1, "pds")
    assert _outbox(engine) == queued + 1  # the search index is told
    # confirming again changes nothing
    again = _confirm(api, child, "one_match.json")
    assert again.status_code == 200 and again.json()["version"] == version + 1
    # and a trace of a record that now holds a number is refused
    assert _trace(api, child, "one_match.json").status_code == 422
    _no_personal_data(engine)


def test_a_low_score_may_be_confirmed_by_the_admin(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    assert _confirm(api, child, "low_score.json").status_code == 200
    assert _state(engine, child)[1] == [TRACED]


def test_confirm_refuses_a_number_the_service_does_not_offer(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    before = _state(engine, child)
    for answer in ("one_match.json", "none.json", "too_many.json"):
        r = _confirm(api, child, answer, nhs="9000000017")
        assert r.status_code == 409, (answer, r.text)
    assert _confirm(api, child, "one_match.json", nhs="not a number").status_code == 422
    assert _state(engine, child) == before


def test_confirm_refuses_a_number_another_record_holds_naming_nothing_of_it(
    api: TestClient, engine: Engine
) -> None:
    other = _untraced(
        engine,
        names=[{"given": "Keziah", "family": "Oduya"}],
        identifiers=[{"system": "nhs", "value": TRACED}],
    )
    child = _untraced(engine)
    before = _state(engine, child)
    r = _confirm(api, child, "one_match.json")
    assert r.status_code == 409, r.text
    assert other not in r.text and other.replace("-", "") not in r.text
    assert "Keziah" not in r.text and "Oduya" not in r.text
    assert _state(engine, child) == before


def test_only_directory_admins_trace(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    for role, purpose in (
        ("practitioner", "considering-caf"),
        ("data_manager", "administration"),
        ("designated_practitioner", "considering-caf"),
        ("auditor", "audit"),
    ):
        headers = {"X-Dev-Actor": f"subject=u; role={role}; org=County", "X-Purpose-Of-Use": purpose}
        assert _trace(api, child, "one_match.json", headers=headers).status_code == 403, role
        assert _confirm(api, child, "one_match.json", headers=headers).status_code == 403, role
    assert _state(engine, child)[1] == []


def test_an_archived_record_answers_as_an_unknown_id(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    with unit_of_work(engine) as s:
        lifecycle.record_death(
            s,
            actor=actor(Role.DIRECTORY_ADMIN, purpose=Purpose.ADMINISTRATION),
            child_id=uuid.UUID(child),
            data=DeathRecord(date_of_death=date.today()),
            today=date.today(),
        )
    unknown = str(uuid.uuid4())
    for call in (_trace, _confirm):
        a, b = call(api, child, "one_match.json"), call(api, unknown, "one_match.json")
        assert a.status_code == b.status_code == 404
        ta, tb = ({k: v for k, v in r.json().items() if k != "instance"} for r in (a, b))
        assert json.dumps(ta).replace(child, "ID") == json.dumps(tb).replace(unknown, "ID")
    assert _state(engine, child)[1] == []


def test_a_shielded_child_is_traced_without_its_location(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    with unit_of_work(engine) as s:
        service.set_shield(
            s,
            actor=actor(Role.DESIGNATED_PRACTITIONER),
            child_id=uuid.UUID(child),
            data=ShieldSet(reason="fleeing violence"),
        )
    r = _trace(api, child, "low_score.json")
    assert r.status_code == 200, r.text
    c = r.json()["candidate"]
    assert (c["postcode"], c["gp_ods_code"], c["location_withheld"]) == (None, None, True)
    assert "postcode" not in c["differences"] and "LS2" not in r.text and "Y12345" not in r.text
    assert c["nhs_number"] == TRACED
    assert _confirm(api, child, "one_match.json").status_code == 200
    _no_personal_data(engine)


# --------------------------------------------------------------------------- many at once


class _Recorded:
    """A demographics client answering every trace with one recorded answer (no HTTP: threads)."""

    def __init__(self, answer: str) -> None:
        entry = body(answer)["entry"][0]
        self.answer = Trace(
            "match",
            score=float(entry["search"]["score"]),
            demographics=demographics_from_pds(entry["resource"]),
        )

    def trace(self, query: TraceQuery) -> Trace:
        return self.answer


def _confirm_at_once(engine: Engine, children: list[str], times: int) -> list[str]:
    """`times` confirmations of the traced number for each child, all at once; what each answered."""
    admin = actor(Role.DIRECTORY_ADMIN, purpose=Purpose.ADMINISTRATION)
    client: Any = _Recorded("one_match.json")
    start = threading.Barrier(len(children) * times)

    def one(child: str) -> str:
        start.wait()
        try:
            with unit_of_work(engine) as s:
                changed = confirm_trace(
                    s, client, actor=admin, child_id=uuid.UUID(child), nhs_number=TRACED, today=date.today()
                )
            return ",".join(changed) or "unchanged"
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=len(children) * times) as pool:
        return list(pool.map(one, [c for c in children for _ in range(times)]))


def test_many_confirms_of_one_record_at_once_add_the_number_once(engine: Engine) -> None:
    child = _untraced(engine)
    version = _state(engine, child)[0]
    answers = _confirm_at_once(engine, [child], 10)
    assert sorted(set(answers)) == ["nhs number", "unchanged"] and answers.count("nhs number") == 1, answers
    assert _state(engine, child) == (version + 1, [TRACED])


def test_two_records_confirming_one_number_at_once_get_it_once(engine: Engine) -> None:
    first, second = _untraced(engine), _untraced(engine)
    answers = _confirm_at_once(engine, [first, second], 5)
    assert answers.count("nhs number") == 1, answers
    assert set(answers) <= {"nhs number", "unchanged", "conflict"} and "conflict" in answers, answers
    assert sorted(_state(engine, c)[1] for c in (first, second)) == [[], [TRACED]]


def test_a_record_without_a_date_of_birth_cannot_be_traced(api: TestClient, engine: Engine) -> None:
    soon = (date.today() + timedelta(days=60)).isoformat()
    child = _untraced(engine, date_of_birth=None, expected_delivery_date=soon)
    r, route = _call(api, f"/api/v1/children/{child}/pds-trace", "one_match.json")
    assert r.status_code == 422 and "date of birth" in r.json()["detail"] and route.call_count == 0


def test_no_service_configured_answers_503(engine: Engine) -> None:
    app = create_app(
        Settings(environment="development", database_url="sqlite://", indexer_interval_seconds=0),
        engine=engine,
    )
    child = _untraced(engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post(f"/api/v1/children/{child}/pds-trace", headers=ADMIN)
    assert r.status_code == 503 and r.json()["type"].endswith("pds-not-configured")


def test_confirm_with_a_stale_if_match_is_412_and_writes_nothing(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    version = _state(engine, child)[0]
    stale = {**ADMIN, "If-Match": f'W/"{version - 1}"'}
    assert _confirm(api, child, "one_match.json", headers=stale).status_code == 412
    assert _state(engine, child) == (version, [])
    r = _confirm(api, child, "one_match.json", headers={**ADMIN, "If-Match": f'W/"{version}"'})
    assert r.status_code == 200 and r.headers["ETag"] == f'W/"{version + 1}"'


def test_a_restricted_person_passes_on_no_location(api: TestClient, engine: Engine) -> None:
    child = _untraced(engine)
    r = _trace(api, child, "restricted_match.json")
    assert r.status_code == 200 and r.json()["result"] == "match"
    c = r.json()["candidate"]
    assert (c["postcode"], c["gp_ods_code"], c["location_withheld"]) == (None, None, True)
