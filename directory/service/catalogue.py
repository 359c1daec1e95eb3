"""The catalogue of localities: an authority's local delivery areas, their teams and postcode areas."""

from __future__ import annotations

from sqlmodel import Session

from directory import audit
from directory import repository as repo
from directory.errors import InvalidInput
from directory.models import Actor, Locality, LocalityArea, utcnow


def configure_localities(session: Session, *, actor: Actor, rows: list[dict[str, str]]) -> tuple[int, int]:
    """Create or update localities and their postcode areas from an authority's table.

    Each row: code, name, authority, team_name, team_phone, team_email, areas (postcode districts
    or sectors separated by spaces or semicolons, e.g. "OX4; OX3 7"). Returns (localities, areas).
    """
    seen_areas: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        missing = [k for k in ("code", "name", "team_name", "areas") if not (row.get(k) or "").strip()]
        if missing:
            raise InvalidInput(f"line {number}: missing {', '.join(missing)}")
        for raw in row["areas"].replace(";", ",").split(","):
            area = " ".join(raw.upper().split())
            if not area:
                continue
            district = area.split(" ")[0]
            if not (2 <= len(district) <= 4) or (" " in area and not area.split(" ")[1].isdigit()):
                raise InvalidInput(f"line {number}: '{raw.strip()}' is not a postcode district or sector")
            if area in seen_areas and seen_areas[area] != row["code"]:
                raise InvalidInput(f"line {number}: area {area} is already given to {seen_areas[area]}")
            seen_areas[area] = row["code"].strip()
    localities = 0
    by_code = {loc.code: loc for loc in repo.localities(session)}
    for row in rows:
        code = row["code"].strip()
        loc = by_code.get(code) or Locality(code=code, name="", authority="", team_name="")
        before = _fields(loc)
        loc.name = row["name"].strip()
        loc.authority = (row.get("authority") or "").strip() or loc.authority or "unknown"
        loc.team_name = row["team_name"].strip()
        loc.team_phone = (row.get("team_phone") or "").strip() or None
        loc.team_email = (row.get("team_email") or "").strip() or None
        if _fields(loc) != before:
            loc.updated_at = utcnow()
        session.add(loc)
        by_code[code] = loc
        localities += 1
    session.flush()
    moved = set()  # the localities whose postcode areas change (their Location changes with them)
    for area, code in seen_areas.items():
        existing = session.get(LocalityArea, area)
        if existing is None:
            session.add(LocalityArea(area=area, locality_id=by_code[code].id))
            moved.add(by_code[code].id)
        elif existing.locality_id != by_code[code].id:
            moved |= {existing.locality_id, by_code[code].id}
            existing.locality_id = by_code[code].id
            session.add(existing)
    for loc in by_code.values():
        if loc.id in moved:
            loc.updated_at = utcnow()
            session.add(loc)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="localities.configure",
        detail={"localities": localities, "areas": len(seen_areas)},
    )
    return localities, len(seen_areas)


def _fields(loc: Locality) -> tuple[str | None, ...]:
    """What a Location shows of a locality (its areas aside): a change to any of it is a new version."""
    return (loc.name, loc.authority, loc.team_name, loc.team_phone, loc.team_email)
