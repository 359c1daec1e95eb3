"""Localities are configured per authority: postcode district/sector -> locality."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from directory import repository as repo
from directory import service
from directory.errors import InvalidInput
from directory.models import Role
from tests.fixtures.builders import actor

ROWS = [
    {
        "code": "NORTH",
        "name": "North",
        "authority": "Demoshire",
        "team_name": "North team",
        "team_phone": "01632 960101",
        "team_email": "n@example.gov.uk",
        "areas": "DM1; DM3 4",
    },
    {
        "code": "SOUTH",
        "name": "South",
        "authority": "Demoshire",
        "team_name": "South team",
        "team_phone": "",
        "team_email": "",
        "areas": "DM3",
    },
]


def test_sector_wins_over_district(session: Session) -> None:
    assert service.configure_localities(session, actor=actor(Role.DIRECTORY_ADMIN), rows=ROWS) == (2, 3)
    assert repo.locality_for_postcode(session, "DM3 4AB").code == "NORTH"  # type: ignore[union-attr]
    assert repo.locality_for_postcode(session, "DM3 5AB").code == "SOUTH"  # type: ignore[union-attr]
    assert repo.locality_for_postcode(session, "DM9 1AA") is None
    # Re-running with a change moves the area; nothing is duplicated.
    moved = [ROWS[0] | {"areas": "DM1"}, ROWS[1] | {"areas": "DM3; DM3 4"}]
    service.configure_localities(session, actor=actor(Role.DIRECTORY_ADMIN), rows=moved)
    assert repo.locality_for_postcode(session, "DM3 4AB").code == "SOUTH"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [{"areas": ""}, {"areas": "NOT A POSTCODE AREA"}, {"team_name": ""}])
def test_bad_rows_name_the_line(session: Session, bad: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="line 2"):
        service.configure_localities(session, actor=actor(Role.DIRECTORY_ADMIN), rows=[ROWS[0] | bad])


def test_an_area_cannot_belong_to_two_localities(session: Session) -> None:
    with pytest.raises(InvalidInput, match="already given"):
        service.configure_localities(
            session, actor=actor(Role.DIRECTORY_ADMIN), rows=[ROWS[0], ROWS[1] | {"areas": "DM1"}]
        )


def test_cli_configures_from_csv(engine, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from typer.testing import CliRunner

    from childindex.cli import app

    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    example = Path(__file__).resolve().parents[2] / "deploy" / "localities.example.csv"
    result = CliRunner().invoke(app, ["localities", str(example)])
    assert result.exit_code == 0, result.output
    assert "2 localities and 6 postcode areas" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,team_name,areas\nX,Y,Z,\n")
    result = CliRunner().invoke(app, ["localities", str(bad)])
    assert result.exit_code == 1 and "line 2" in result.output
