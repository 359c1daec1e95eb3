"""The locality overview (issue #20): plain labels, one locality at a time with a chooser, an "as at"
time, and the month-by-month CAF trend with small-number suppression, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from childindex.app import create_app
from childindex.demo.catalogue import EARLY_YEARS, GP_PRACTICE, PRIMARY, SECONDARY, SERVICE_SPECS, SPECIAL
from childindex.web import labels
from childindex.web.locality_trend import SERIES, last_months
from directory.models import Assessment, Locality
from directory.models.vocabulary import ServiceType, utcnow
from tests.web.world import World, page_client, sign_in, web_settings

ISSUER = "http://testserver"


def test_every_service_type_has_a_plain_label_and_the_catalogue_uses_only_those() -> None:
    assert set(labels.SERVICE_TYPES) == set(ServiceType)
    assert all(label and "_" not in label for label in labels.SERVICE_TYPES.values())
    used = {s.service_type for s in SERVICE_SPECS} | {
        k.service_type for k in (PRIMARY, SECONDARY, SPECIAL, EARLY_YEARS, GP_PRACTICE)
    }
    assert used <= {t.value for t in ServiceType}, used - {t.value for t in ServiceType}
    assert labels.service_type("early_help") == "Early help"
    assert labels.service_type("police_protection") == "Police protection"
    assert labels.service_type("youth_work") == "Youth work"  # not listed: humanised, never raw
    assert labels.humanise("") == "Not recorded"


def test_last_months_are_twelve_calendar_months_ending_with_this_one() -> None:
    months = last_months(datetime(2026, 2, 14, 9, 30, tzinfo=UTC))
    assert len(months) == 12
    assert months[0].start == datetime(2025, 3, 1, tzinfo=UTC)
    assert months[-1].start == datetime(2026, 2, 1, tzinfo=UTC)
    assert months[-1].end == datetime(2026, 3, 1, tzinfo=UTC)
    assert all(a.end == b.start for a, b in zip(months, months[1:], strict=False))
    assert months[-1].label == "February 2026 (so far)" and months[0].label == "March 2025"
    december = last_months(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert december[-1].end == datetime(2027, 1, 1, tzinfo=UTC)


def _cafs(engine: Engine, world: World, when: list[tuple[datetime, datetime | None]]) -> None:
    """Closed CAFs of Olivia (City locality), each started and (when given) closed at these times."""
    with Session(engine) as s:
        for started, closed in when:
            s.add(
                Assessment(
                    id=uuid.uuid4(),
                    child_id=world.children["olivia"],
                    status="closed" if closed else "withdrawn",
                    initiator_id=world.practitioners["pat"],
                    lead_practitioner_id=world.practitioners["pat"],
                    signalled_at=started - timedelta(hours=1),
                    started_at=started if closed else None,
                    closed_at=closed or started,
                )
            )
        s.commit()


def _client(engine: Engine, world: World, user: str = "lena", **settings: object) -> TestClient:
    app = create_app(web_settings(ISSUER).model_copy(update=settings), engine=engine)
    client = page_client(app, ISSUER)
    client.__enter__()
    sign_in(client, world, user)
    return client


def _trend_rows(html: str) -> dict[str, list[str]]:
    """The trend table: month label -> the cells' text."""
    rows = re.findall(r'<th scope="row" class="govuk-table__header">([^<]+)</th>(.*?)</tr>', html, re.S)
    return {m: re.findall(r"<td[^>]*>([^<]*)</td>", cells) for m, cells in rows if re.search(r"\d{4}", m)}


def test_the_overview_shows_one_locality_in_plain_words_as_at_now(engine: Engine, world: World) -> None:
    client = _client(engine, world, suppress_below=0)
    page = client.get("/localities")
    assert page.status_code == 200
    text = page.text
    assert re.search(r"Figures as at \d\d:\d\d UTC on \d{1,2} [A-Z][a-z]+ 20\d\d", text)
    assert '<h2 class="govuk-heading-l govuk-!-margin-top-6" id="locality-figures">City locality</h2>' in text
    assert "Health visiting" in text and "health_visiting" not in text
    assert "Youth work" in text and "youth_work" not in text  # a type nobody labelled: humanised
    # the chooser lists every locality; the chosen one is selected
    assert re.search(r'<option value="CITY" selected>City locality</option>', text)
    assert '<option value="NORTH">North locality</option>' in text
    north = client.get("/localities", params={"locality": "NORTH"})
    assert north.status_code == 200 and 'id="locality-figures">North locality</h2>' in north.text
    # each locality only once in detail (the old page drew every locality's charts)
    assert north.text.count("Children by level of need in") == 1
    for name in ("Olivia", "Amara", "Noah", "Smith", "Jones"):
        assert name not in text and name not in north.text
    client.__exit__(None, None, None)


def test_an_unknown_or_ungranted_locality_is_one_error_that_names_nothing(
    engine: Engine, world: World
) -> None:
    client = _client(engine, world)
    bad = client.get("/localities", params={"locality": "<script>"})
    assert bad.status_code == 400
    assert (
        "govuk-error-summary" in bad.text and 'href="#locality">Choose a locality from the list' in bad.text
    )
    assert "<script>" not in bad.text and "<title>Error: " in bad.text
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE access_grant SET localities = :l WHERE subject = 'lena'"),
            {"l": json.dumps(["CITY"])},
        )
    client.__exit__(None, None, None)
    client = _client(engine, world)
    north = client.get("/localities", params={"locality": "NORTH"})
    assert north.status_code == 400 and "North locality" not in north.text  # as if it did not exist
    city = client.get("/localities")
    assert 'id="locality-figures">City locality</h2>' in city.text and "North locality" not in city.text
    with engine.connect() as conn:
        details = conn.execute(
            sa.text("SELECT detail FROM audit_event WHERE action = 'locality.overview' ORDER BY seq")
        ).scalars()
        chosen = [json.loads(d) if isinstance(d, str) else d for d in details]
    assert [d["locality"] for d in chosen][-2:] == [None, "CITY"]
    client.__exit__(None, None, None)


def test_the_trend_counts_each_month_and_draws_a_bar_per_shown_figure(engine: Engine, world: World) -> None:
    months = last_months(utcnow())
    two_ago, last = months[-3].start + timedelta(days=2), months[-2].start + timedelta(days=3)
    # 6 started two months ago, closed last month; 1 withdrawn signal last month; one 13 months ago
    _cafs(engine, world, [(two_ago, last)] * 6 + [(last, None), (months[0].start - timedelta(days=5), last)])
    client = _client(engine, world, suppress_below=0)
    page = client.get("/localities", params={"locality": "CITY"})
    rows = _trend_rows(page.text)
    assert len(rows) == 12
    assert rows[months[-3].label] == ["6", "6", "0"]
    assert rows[months[-2].label] == ["1", "0", "7"]  # the withdrawn signal is signalled, not closed
    assert rows[months[0].label] == ["0", "0", "0"]  # the one begun 13 months ago is out of the window
    assert page.text.count("app-chart__bar--started") == 1 + 1  # the legend and one bar
    assert page.text.count("app-chart__bar--closed") == 1 + 1
    assert "CAFs by month in City locality. " in page.text  # the chart's text alternative
    csv = client.get("/localities/overview.csv").text
    assert f"CITY,City locality,cafs_closed_by_month,{months[-2].start:%Y-%m},7," in csv
    assert f"NORTH,North locality,cafs_started_by_month,{months[-3].start:%Y-%m},0," in csv
    client.__exit__(None, None, None)


def test_small_monthly_counts_are_suppressed_in_table_chart_and_csv(engine: Engine, world: World) -> None:
    months = last_months(utcnow())
    two_ago, last = months[-3].start + timedelta(days=2), months[-2].start + timedelta(days=3)
    _cafs(engine, world, [(two_ago, last)] * 6 + [(last, None)])
    client = _client(engine, world)  # the default threshold: 5
    page = client.get("/localities", params={"locality": "CITY"})
    rows = _trend_rows(page.text)
    assert rows[months[-3].label] == ["6", "6", "0"]
    assert rows[months[-2].label] == ["fewer than 5", "0", "6"]
    # the withheld signal count draws no bar: one signalled bar (6), one started, one closed
    assert page.text.count("app-chart__bar--signalled") == 1 + 1
    assert "signalled fewer than 5" in page.text  # the text alternative says so too
    csv = client.get("/localities/overview.csv").text
    assert f"CITY,City locality,cafs_signalled_by_month,{months[-2].start:%Y-%m},,fewer than 5" in csv
    for series in SERIES:
        for m in months:
            line = re.search(rf"CITY,City locality,cafs_{series}_by_month,{m.start:%Y-%m},(\d*),", csv)
            assert line and (line.group(1) == "" or int(line.group(1)) == 0 or int(line.group(1)) >= 5)
    client.__exit__(None, None, None)


def test_children_with_no_locality_have_a_trend_of_their_own(engine: Engine, world: World) -> None:
    from directory.aggregates import caf_events_by_month
    from tests.fixtures.builders import make_child

    months = last_months(utcnow())
    with Session(engine) as s:
        nowhere = make_child(
            s,
            names=[{"given": "Nia", "family": "Nowhere"}],
            date_of_birth="2018-01-01",
            address={"line1": "1 Far Road", "town": "Elsewhere", "postcode": "SW1A 1AA"},
        )
        s.commit()
    with Session(engine) as s:
        started = months[-2].start + timedelta(days=1)
        s.add(
            Assessment(
                id=uuid.uuid4(),
                child_id=nowhere,
                status="closed",
                initiator_id=world.practitioners["pat"],
                lead_practitioner_id=world.practitioners["pat"],
                signalled_at=started,
                started_at=started,
                closed_at=started + timedelta(hours=2),
            )
        )
        s.commit()
    window = [(m.start, m.end) for m in months]
    with Session(engine) as s:
        none = caf_events_by_month(s, None, window)
        assert none["started"][-2] == 1 and none["closed"][-2] == 1 and sum(none["signalled"]) == 1
        city = s.exec(select(Locality).where(Locality.code == "CITY")).one()
        assert sum(caf_events_by_month(s, city.id, window)["started"]) == 0
    client = _client(engine, world, suppress_below=0)
    page = client.get("/localities", params={"locality": "NONE"})
    assert page.status_code == 200 and 'id="locality-figures">No locality recorded</h2>' in page.text
    assert _trend_rows(page.text)[months[-2].label] == ["1", "1", "1"]
    client.__exit__(None, None, None)
