"""Dates are bounded wherever one is accepted (issue #16, finding 8): 1900-01-01 to 2199-12-31."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from directory.models import ChildCreate, ConsentCreate, InvolvementCreate, NameIn, TacConvene
from tests.conftest import count
from tests.fixtures.builders import make_child

DEV = {"X-Dev-Actor": "subject=alice; role=practitioner; org=Test", "X-Purpose-Of-Use": "considering-caf"}


@pytest.mark.parametrize("given_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_consent_given_at_the_ends_of_time_is_422_not_500(
    client: TestClient, engine: Engine, given_at: str
) -> None:
    """Was: 500 (OverflowError while storing it: 0001-01-01T00:00:00+14:00 is before the first year
    Python holds, once in UTC); the other end was refused only as 'in the future'."""
    with unit_of_work(engine) as s:
        child = make_child(s)
    before = count(engine, "consent")
    body = {
        "scope": "caf",
        "given_by_kind": "parent_carer",
        "given_by_name": "Jane Smith",
        "given_at": given_at,
    }
    r = client.post(f"/api/v1/children/{child}/consents", json=body, headers=DEV)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0] == {
        "field": "given_at",
        "message": "Value error, dates must fall between 1900-01-01 and 2199-12-31",
    }
    assert count(engine, "consent") == before


@pytest.mark.parametrize("field", ["birth_date", "birth_date_from", "birth_date_to"])
def test_search_dates_outside_the_range_are_refused(client: TestClient, field: str) -> None:
    """Was: searched as given (0001-01-01, 9999-12-31), one step from an overflow in date arithmetic."""
    for value in ("0001-01-01", "9999-12-31"):
        r = client.post("/api/v1/children/search", json={"family": "Smith", field: value}, headers=DEV)
        assert r.status_code == 422, r.text
        assert "between 1900-01-01 and 2199-12-31" in r.json()["detail"]


def test_every_date_of_every_input_model_is_bounded() -> None:
    """One rule for all inputs (directory.bounds), so a new date field is bounded without a word."""
    from directory.bounds import bounded

    too_late = {"until": date(2200, 1, 1)}
    with pytest.raises(ValueError, match="between 1900-01-01 and 2199-12-31"):
        NameIn(given="A", family="B", **too_late)
    with pytest.raises(ValueError, match="between"):
        TacConvene(next_review_date=date(1899, 12, 31))
    with pytest.raises(ValueError, match="between"):
        ChildCreate(names=[NameIn(given="A", family="B")], date_of_birth=date(1, 1, 1))
    with pytest.raises(ValueError, match="between"):
        ConsentCreate(
            scope="caf", given_by_kind="parent_carer", given_by_name="J", given_at=datetime(9999, 12, 31)
        )
    InvolvementCreate(
        service_id="00000000-0000-0000-0000-000000000001",
        role="x",
        level_of_need=1,
        start_date=date(2199, 12, 31),
    )
    assert bounded("not a date") == "not a date" and bounded(date(1900, 1, 1)) == date(1900, 1, 1)
