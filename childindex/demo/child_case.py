"""One child as the services see them: what their involvements depend on, and the helpers that
write an involvement or a consent and pick a practitioner, shared by involvements.py and cafs.py.

Every draw comes from the run's one random generator, in a fixed order: the same seed gives
the same county, so a change here that draws in another order changes every child after it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from childindex.demo.base import SEEDED_BY, Ids, Rows
from childindex.demo.catalogue import Catalogue, Setting

SOURCE_SYSTEMS = {
    "health_visiting": "systmone",
    "school_nursing": "systmone",
    "midwifery": "systmone",
    "speech_language": "systmone",
    "camhs": "systmone",
    "sexual_health": "systmone",
    "gp": "emis",
    "school": "capita-one",
    "early_years": "capita-one",
    "educational_psychology": "capita-one",
    "connexions": "capita-one",
    "early_help": "mosaic",
    "social_care": "mosaic",
    "youth_offending": "mosaic",
    "youth_service": "app",
    "family_support": "app",
    "substance_misuse": "app",
    "police_schools": "niche",
    "police_protection": "niche",
}
"""Service type -> the system an involvement of that service is recorded from."""


@dataclass
class Run:
    """The run's random generator, ids, catalogue and clock, shared by every child."""

    rng: random.Random
    ids: Ids
    cat: Catalogue
    today: date
    now: datetime  # naive UTC

    def dt(self, days_ago_low: float, days_ago_high: float) -> datetime:
        """A moment between the two numbers of days ago."""
        return self.now - timedelta(days=self.rng.uniform(days_ago_low, days_ago_high))


@dataclass
class ChildCase:
    """One child's facts the services depend on, the rows they go to, and who works with them."""

    run: Run
    rows: Rows
    id: uuid.UUID
    locality: int
    age: int | None
    born: date
    unborn: bool
    school: Setting | None
    gp: Setting | None
    pr_people: list[dict[str, Any]]  # the parents and carers with parental responsibility
    given: str
    family: str
    named: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # practitioners working with them

    def start_date(self, min_days: int = 0) -> date:
        """When an involvement began: in the last three years, and not before birth."""
        today = self.run.today
        lo = max(self.born, today - timedelta(days=3 * 365))
        days = max(1, (today - lo).days - min_days)
        return lo + timedelta(days=self.run.rng.randrange(days))

    def add(
        self,
        stype: str,
        service_id: uuid.UUID,
        practitioner: uuid.UUID | None,
        role: str,
        level: int,
        *,
        sensitive: bool = False,
        consent: uuid.UUID | None = None,
        ended: bool = False,
    ) -> None:
        """An involvement of the service (current, or ended some time ago)."""
        run = self.run
        start = self.start_date(30 if ended else 0)
        end = None
        if ended:
            end = start + timedelta(days=run.rng.randrange(14, max(15, (run.today - start).days)))
            end = min(end, run.today)
        self.rows["involvement"].append(
            {
                "id": run.ids.uuid(),
                "child_id": self.id,
                "service_id": service_id,
                "practitioner_id": practitioner,
                "role": role,
                "level_of_need": level,
                "start_date": start,
                "end_date": end,
                "status": "ended" if ended else "active",
                "sensitive": sensitive,
                "consent_id": consent,
                "source": SOURCE_SYSTEMS[stype],
                "last_confirmed_at": run.dt(0, 120),
                "recorded_by": SEEDED_BY,
                "version": 1,
            }
        )
        if practitioner is not None and not ended:
            self.named.append((practitioner, role))

    def pool(self, stype: str) -> uuid.UUID:
        """A practitioner of the service in the child's locality."""
        return self.run.rng.choice(self.run.cat.pools[(stype, self.locality)])

    def consent(self, scope: str, at: datetime) -> uuid.UUID:
        """A consent, given by a competent young person or by a parent with responsibility."""
        run, age = self.run, self.age
        consent_id = run.ids.uuid()
        young = age is not None and age >= 13 and (scope.startswith("sensitive") or age >= 16)
        if young or not self.pr_people:
            kind, name, person = "young_person", f"{self.given} {self.family}", None
        else:
            chosen = run.rng.choice(self.pr_people)
            kind, name, person = "parent_carer", chosen["name"], chosen["id"]
        self.rows["consent"].append(
            {
                "id": consent_id,
                "child_id": self.id,
                "scope": scope,
                "given_by_kind": kind,
                "given_by_name": name,
                "related_person_id": person,
                "given_at": at,
                "withdrawn_at": None,
                "withdrawn_reason": None,
                "recorded_by": SEEDED_BY,
            }
        )
        return consent_id
