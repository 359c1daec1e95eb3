"""People of the synthetic county: names by heritage, e-mail addresses, and the practitioners."""

from __future__ import annotations

import random
import uuid
from typing import Any

from childindex.demo.base import Ids, slug
from childindex.demo.vocabulary import HERITAGES

_HERITAGE_NAMES = list(HERITAGES)
_HERITAGE_WEIGHTS = [HERITAGES[h][0] for h in _HERITAGE_NAMES]


def pick_heritage(rng: random.Random) -> str:
    """A heritage, weighted as the county's population is."""
    return rng.choices(_HERITAGE_NAMES, _HERITAGE_WEIGHTS)[0]


def gendered_surname(family: str, female: bool, heritage: str) -> str:
    """The surname as a woman of that heritage bears it (Kowalski -> Kowalska)."""
    if female and heritage == "polish" and family.endswith("ski"):
        return family[:-1] + "a"
    return family


def person_name(rng: random.Random, female: bool) -> tuple[str, str]:
    """An adult's given name and surname, of one heritage."""
    heritage = pick_heritage(rng)
    _, girls, boys, surnames = HERITAGES[heritage]
    given = rng.choice(girls if female else boys)
    family = rng.choice(surnames)
    return given, gendered_surname(family, female, heritage)


def email(rng: random.Random, given: str, family: str) -> str | None:
    """A parent's private e-mail address on an .example domain, or None (45% have none)."""
    if rng.random() < 0.45:
        return None
    local = slug(f"{given}.{family}".replace("'", ""))
    domain = rng.choice(("mail.example", "post.example", "inbox.example"))
    return f"{local}{rng.randrange(100)}@{domain}"


class Practitioners:
    """Makes practitioner rows, each with an e-mail address no other practitioner has."""

    def __init__(self, rng: random.Random, ids: Ids, rows: list[dict[str, Any]]) -> None:
        self.rng = rng
        self.ids = ids
        self.rows = rows
        self.used_emails: set[str] = set()

    def add(self, role: str, org_id: uuid.UUID, domain: str) -> uuid.UUID:
        """One practitioner of the organisation, in the role; returns their id."""
        rng, ids = self.rng, self.ids
        pid = ids.uuid()
        given, family = person_name(rng, rng.random() < 0.7)
        local = slug(f"{given}.{family}".replace("'", ""))
        address, n = f"{local}@{domain}", 1
        while address in self.used_emails:
            n += 1
            address = f"{local}{n}@{domain}"
        self.used_emails.add(address)
        self.rows.append(
            {
                "id": pid,
                "name": f"{given} {family}",
                "role": role,
                "organisation_id": org_id,
                "phone": ids.mobile() if rng.random() < 0.6 else ids.landline(),
                "email": address,
                "subject": None,
                "active": True,
                "version": 1,
            }
        )
        return pid
