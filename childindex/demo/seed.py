"""Synthetic data for one fictitious county (Demoshire), deterministic for a seed, bulk-loaded.

Everything here is made up: names are drawn from common-name lists, postcodes use the
fictitious area "DS", NHS numbers start with 9 (a range not issued to patients) and pass
the modulus-11 check, phone numbers come from Ofcom's ranges reserved for drama
(01632 960xxx, 07700 900xxx) and e-mail addresses use .example domains.

Rows go straight into the tables (SQLAlchemy Core executemany on SQLite, COPY on
PostgreSQL), a batch of children at a time; no audit event is written per row, one for
the run. The search index is rebuilt separately, so no outbox rows are written either.
"""

from __future__ import annotations

import multiprocessing
import random
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from queue import Empty
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from childindex.demo.vocabulary import (
    EARLY_YEARS_PATTERNS,
    GP_PATTERNS,
    HERITAGES,
    INWARD_LETTERS,
    LOCALITIES,
    NICKNAMES,
    SCHOOL_PATTERNS,
    SECONDARY_PATTERNS,
    SECTOR_OVERRIDES,
    SPELLINGS,
    STREETS,
)
from childindex.migrations import upgrade
from directory import audit
from directory.bulk import BulkWriter, Prepared, loading, prepare
from directory.db import unit_of_work
from directory.identifiers import nhs_check_digit, upn_check_letter
from directory.models import (
    Actor,
    Assessment,
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    Consent,
    Involvement,
    LeadProfessionalAssignment,
    Locality,
    LocalityArea,
    Organisation,
    Practitioner,
    RelatedPerson,
    Service,
    ServiceLocality,
    Tac,
    TacMember,
    utcnow,
)
from directory.service import age_on, oldest_birth_date_in_range

AUTHORITY = "Demoshire County Council"
SEEDED_BY = "seed"  # recorded_by / assigned_by of every seeded row: synthetic data says so
UPN_LA_CODE = "990"  # not a DfE local authority number
CHILD_TABLES = [
    Child,
    ChildName,
    ChildIdentifier,
    ChildAddress,
    RelatedPerson,
    Consent,
    Involvement,
    Assessment,
    LeadProfessionalAssignment,
    Tac,
    TacMember,
]  # in foreign-key order

Rows = dict[str, list[dict[str, Any]]]


class SeedError(Exception):
    """The database cannot be seeded as asked."""


@dataclass(frozen=True)
class SeedResult:
    """What a seed run wrote."""

    children: int
    seed: int
    rows: dict[str, int]


# --------------------------------------------------------------------------- catalogue

# service_type, name, organisation key, level of need, tier, sensitive category, role of
# its practitioners, practitioners per 100,000 children, one service per locality?
SERVICE_SPECS: tuple[tuple[str, str, str, int, str, str | None, str, int, bool], ...] = (
    (
        "health_visiting",
        "Health Visiting",
        "community",
        1,
        "core",
        None,
        "health visitor",
        40,
        False,
    ),
    ("school_nursing", "School Nursing", "community", 1, "core", None, "school nurse", 15, False),
    ("midwifery", "Community Midwifery", "hospital", 1, "aligned", None, "midwife", 15, False),
    (
        "early_help",
        "Early Help Team",
        "council",
        2,
        "core",
        None,
        "family support worker",
        30,
        True,
    ),
    (
        "family_support",
        "Harbour Family Support",
        "harbour",
        2,
        "aligned",
        None,
        "family support worker",
        8,
        False,
    ),
    ("youth_service", "Youth Service", "council", 2, "core", None, "youth worker", 15, False),
    (
        "connexions",
        "Connexions Careers Guidance",
        "council",
        2,
        "aligned",
        None,
        "personal adviser",
        6,
        False,
    ),
    (
        "speech_language",
        "Children's Speech and Language Therapy",
        "community",
        2,
        "aligned",
        None,
        "speech and language therapist",
        8,
        False,
    ),
    (
        "sexual_health",
        "Young People's Sexual Health Service",
        "community",
        2,
        "aligned",
        "sexual_health",
        "sexual health nurse",
        4,
        False,
    ),
    (
        "police_schools",
        "Police Schools Liaison",
        "police",
        2,
        "aligned",
        None,
        "police schools officer",
        3,
        False,
    ),
    (
        "educational_psychology",
        "Educational Psychology Service",
        "council",
        3,
        "specialist",
        None,
        "educational psychologist",
        4,
        False,
    ),
    (
        "camhs",
        "Child and Adolescent Mental Health Service (CAMHS)",
        "community",
        3,
        "specialist",
        "mental_health",
        "CAMHS clinician",
        15,
        False,
    ),
    (
        "substance_misuse",
        "Lantern Young People's Drug and Alcohol Service",
        "lantern",
        3,
        "specialist",
        "substance_misuse",
        "substance misuse worker",
        4,
        False,
    ),
    (
        "youth_offending",
        "Youth Offending Service",
        "council",
        3,
        "specialist",
        None,
        "YOS officer",
        6,
        False,
    ),
    (
        "social_care",
        "Children's Social Care",
        "council",
        4,
        "specialist",
        None,
        "social worker",
        40,
        False,
    ),
    (
        "police_protection",
        "Police Child Protection Team",
        "police",
        4,
        "specialist",
        None,
        "detective constable",
        4,
        False,
    ),
)

ORGANISATIONS = {  # key: name, kind, ODS code, e-mail domain
    "council": (AUTHORITY, "local_authority", None, "demoshire-council.example"),
    "community": (
        "Demoshire Community Health NHS Trust",
        "nhs_trust",
        "R9D",
        "demoshire-health.nhs.example",
    ),
    "hospital": (
        "Demoshire Hospitals NHS Foundation Trust",
        "nhs_trust",
        "R9H",
        "demoshire-hospitals.nhs.example",
    ),
    "police": ("Demoshire Constabulary", "police", None, "demoshire-police.example"),
    "harbour": ("Harbour Family Support", "voluntary", None, "harbourfamily.example"),
    "lantern": ("Lantern Young People's Service", "voluntary", None, "lantern-yp.example"),
}

SOURCES = {
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


@dataclass
class Setting:
    """A school, early years setting or GP practice, with its service and staff."""

    org_id: uuid.UUID
    service_id: uuid.UUID
    locality: int
    estab: str = ""
    staff: list[uuid.UUID] = field(default_factory=list)
    senco: uuid.UUID | None = None


@dataclass
class Catalogue:
    """The rows of the catalogue and the lookups the child generator needs."""

    rows: Rows
    locality_ids: list[uuid.UUID]
    towns: list[tuple[str, ...]]
    districts: list[tuple[int, ...]]
    area_locality: dict[str, int]
    services: dict[str, uuid.UUID]  # county-wide service by type
    early_help: list[uuid.UUID]  # per locality
    pools: dict[tuple[str, int], list[uuid.UUID]]  # (service_type, locality) -> practitioners
    primaries: list[list[Setting]]
    secondaries: list[list[Setting]]
    specials: list[list[Setting]]
    early_years: list[list[Setting]]
    gps: list[list[Setting]]


class _Ids:
    """Deterministic uuids and small numbers drawn from the run's random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def landline(self) -> str:
        return f"01632 960{self.rng.randrange(1000):03d}"

    def mobile(self) -> str:
        return f"07700 900{self.rng.randrange(1000):03d}"


def _slug(text: str) -> str:
    return "".join(c for c in text.lower().replace(" ", "-") if c.isascii() and (c.isalnum() or c in "-."))


def _person_name(rng: random.Random, female: bool) -> tuple[str, str]:
    heritage = _pick_heritage(rng)
    _, girls, boys, surnames = HERITAGES[heritage]
    given = rng.choice(girls if female else boys)
    family = rng.choice(surnames)
    return given, _gendered_surname(family, female, heritage)


_HERITAGE_NAMES = list(HERITAGES)
_HERITAGE_WEIGHTS = [HERITAGES[h][0] for h in _HERITAGE_NAMES]


def _pick_heritage(rng: random.Random) -> str:
    return rng.choices(_HERITAGE_NAMES, _HERITAGE_WEIGHTS)[0]


def _gendered_surname(family: str, female: bool, heritage: str) -> str:
    if female and heritage == "polish" and family.endswith("ski"):
        return family[:-1] + "a"  # Kowalski -> Kowalska
    return family


def build_catalogue(rng: random.Random, children: int) -> Catalogue:
    """Localities, postcode areas, organisations, services and practitioners for N children."""
    ids = _Ids(rng)
    rows: Rows = {
        t: []
        for t in (
            "locality",
            "locality_area",
            "organisation",
            "service",
            "service_locality",
            "practitioner",
        )
    }
    scale = max(children, 1) / 100_000
    n_loc = len(LOCALITIES)
    locality_ids = [ids.uuid() for _ in LOCALITIES]
    code_index = {code: i for i, (code, *_rest) in enumerate(LOCALITIES)}
    area_locality: dict[str, int] = {}
    for i, (code, name, _towns, districts) in enumerate(LOCALITIES):
        rows["locality"].append(
            {
                "id": locality_ids[i],
                "code": code,
                "name": name,
                "authority": AUTHORITY,
                "team_name": f"{name} Early Help Hub",
                "team_phone": f"01632 9600{i + 1:02d}",
                "team_email": f"earlyhelp.{_slug(name)}@demoshire-council.example",
            }
        )
        for d in districts:
            area_locality[f"DS{d}"] = i
            rows["locality_area"].append({"area": f"DS{d}", "locality_id": locality_ids[i]})
    for sector, code in SECTOR_OVERRIDES.items():
        area_locality[sector] = code_index[code]
        rows["locality_area"].append({"area": sector, "locality_id": locality_ids[code_index[code]]})

    def org(
        name: str,
        kind: str,
        *,
        locality: int,
        ods: str | None = None,
        urn: str | None = None,
        domain: str,
    ) -> uuid.UUID:
        oid = ids.uuid()
        district = rng.choice(LOCALITIES[locality][3])
        rows["organisation"].append(
            {
                "id": oid,
                "name": name,
                "kind": kind,
                "urn": urn,
                "ods_code": ods,
                "phone": ids.landline(),
                "email": f"enquiries@{domain}",
                "postcode": f"DS{district} {rng.randint(1, 9)}{rng.choice(INWARD_LETTERS)}"
                f"{rng.choice(INWARD_LETTERS)}",
                "locality_id": locality_ids[locality],
            }
        )
        return oid

    def service(
        name: str,
        service_type: str,
        org_id: uuid.UUID,
        level: int,
        tier: str,
        category: str | None,
        localities: list[int],
        domain: str,
    ) -> uuid.UUID:
        sid = ids.uuid()
        rows["service"].append(
            {
                "id": sid,
                "name": name,
                "service_type": service_type,
                "organisation_id": org_id,
                "level_of_need": level,
                "tier": tier,
                "phone": ids.landline(),
                "email": f"{_slug(service_type)}@{domain}",
                "sensitive": category is not None,
                "sensitive_category": category,
            }
        )
        for loc in localities:
            rows["service_locality"].append({"service_id": sid, "locality_id": locality_ids[loc]})
        return sid

    used_emails: set[str] = set()

    def practitioner(role: str, org_id: uuid.UUID, domain: str) -> uuid.UUID:
        pid = ids.uuid()
        given, family = _person_name(rng, rng.random() < 0.7)
        local = _slug(f"{given}.{family}".replace("'", ""))
        email, n = f"{local}@{domain}", 1
        while email in used_emails:
            n += 1
            email = f"{local}{n}@{domain}"
        used_emails.add(email)
        rows["practitioner"].append(
            {
                "id": pid,
                "name": f"{given} {family}",
                "role": role,
                "organisation_id": org_id,
                "phone": ids.mobile() if rng.random() < 0.6 else ids.landline(),
                "email": email,
                "subject": None,
                "active": True,
                "version": 1,
            }
        )
        return pid

    org_ids = {
        key: org(name, kind, locality=0, ods=ods, domain=domain)
        for key, (name, kind, ods, domain) in ORGANISATIONS.items()
    }
    services: dict[str, uuid.UUID] = {}
    early_help: list[uuid.UUID] = []
    pools: dict[tuple[str, int], list[uuid.UUID]] = {}
    for stype, name, okey, level, tier, category, role, per_100k, per_locality in SERVICE_SPECS:
        domain = ORGANISATIONS[okey][3]
        if per_locality:
            for loc in range(n_loc):
                early_help.append(
                    service(
                        f"{name} — {LOCALITIES[loc][1]}",
                        stype,
                        org_ids[okey],
                        level,
                        tier,
                        category,
                        [loc],
                        domain,
                    )
                )
        else:
            services[stype] = service(
                name, stype, org_ids[okey], level, tier, category, list(range(n_loc)), domain
            )
        per_loc = max(2, round(per_100k * scale / n_loc))
        for loc in range(n_loc):
            pools[(stype, loc)] = [practitioner(role, org_ids[okey], domain) for _ in range(per_loc)]

    used_urns: set[str] = set()
    used_ods: set[str] = set()
    used_estab: set[str] = set()

    def settings(
        kind: str,
        patterns: tuple[str, ...],
        per_loc: int,
        estab_from: int,
        service_type: str,
        tier: str,
        staff_role: str,
        staff: int,
        senco: bool,
    ) -> list[list[Setting]]:
        out: list[list[Setting]] = []
        for loc in range(n_loc):
            here: list[Setting] = []
            used_names: set[str] = set()
            for _ in range(per_loc):
                town = rng.choice(LOCALITIES[loc][2])
                name = rng.choice(patterns).format(town=town, street=rng.choice(STREETS).split()[0])
                while name in used_names:
                    name = f"{name.split(',')[0]} {rng.choice(STREETS).split()[0]}" + (
                        f", {town}" if "," in name else ""
                    )
                used_names.add(name)
                urn = ods = None
                if kind in ("school", "early_years"):
                    urn = f"9{rng.randrange(100000):05d}"
                    while urn in used_urns:
                        urn = f"9{rng.randrange(100000):05d}"
                    used_urns.add(urn)
                else:
                    ods = f"X9{rng.randrange(10000):04d}"
                    while ods in used_ods:
                        ods = f"X9{rng.randrange(10000):04d}"
                    used_ods.add(ods)
                domain = f"{_slug(name.split(',')[0])}.{'nhs' if ods else 'sch'}.example"
                oid = org(name, kind, locality=loc, urn=urn, ods=ods, domain=domain)
                sname = f"{name} (GP)" if kind == "gp_practice" else name
                sid = service(sname, service_type, oid, 1, tier, None, [loc], domain)
                estab = ""
                if estab_from:
                    # DfE establishment numbers: 2xxx-3xxx primary, 4xxx secondary, 7xxx special
                    span = 2000 if estab_from == 2000 else 1000
                    if sum(1 for e in used_estab if 0 <= int(e) - estab_from < span) >= span:
                        raise SeedError("too many schools for the establishment numbers")
                    estab = f"{estab_from + rng.randrange(span):04d}"
                    while estab in used_estab:
                        estab = f"{estab_from + rng.randrange(span):04d}"
                    used_estab.add(estab)
                setting = Setting(org_id=oid, service_id=sid, locality=loc, estab=estab)
                setting.staff = [practitioner(staff_role, oid, domain) for _ in range(staff)]
                if senco:
                    setting.senco = practitioner("SENCO", oid, domain)
                here.append(setting)
            out.append(here)
        return out

    primaries = settings(
        "school",
        SCHOOL_PATTERNS,
        max(2, round(150 * scale / n_loc)),
        2000,
        "school",
        "core",
        "class teacher",
        2,
        True,
    )
    secondaries = settings(
        "school",
        SECONDARY_PATTERNS,
        max(1, round(35 * scale / n_loc)),
        4000,
        "school",
        "core",
        "head of year",
        2,
        True,
    )
    specials = settings(
        "school",
        ("{town} Special School", "{town} Academy (special)"),
        max(1, round(5 * scale / n_loc)),
        7000,
        "school",
        "core",
        "class teacher",
        2,
        True,
    )
    early_years = settings(
        "early_years",
        EARLY_YEARS_PATTERNS,
        max(1, round(200 * scale / n_loc)),
        0,
        "early_years",
        "core",
        "early years key person",
        1,
        False,
    )
    gps = settings(
        "gp_practice",
        GP_PATTERNS,
        max(1, round(50 * scale / n_loc)),
        0,
        "gp",
        "aligned",
        "GP",
        2,
        False,
    )
    return Catalogue(
        rows=rows,
        locality_ids=locality_ids,
        towns=[loc[2] for loc in LOCALITIES],
        districts=[loc[3] for loc in LOCALITIES],
        area_locality=area_locality,
        services=services,
        early_help=early_help,
        pools=pools,
        primaries=primaries,
        secondaries=secondaries,
        specials=specials,
        early_years=early_years,
        gps=gps,
    )


# --------------------------------------------------------------------------- children


class ChildFactory:
    """Generates one child at a time, with everything attached, as table rows."""

    def __init__(self, rng: random.Random, cat: Catalogue, *, today: date, now: datetime) -> None:
        self.rng = rng
        self.ids = _Ids(rng)
        self.cat = cat
        self.today = today
        self.now = now  # naive UTC
        self.oldest = oldest_birth_date_in_range(today)
        self.span = (today - self.oldest).days
        self.nhs_used: set[int] = set()
        self.upn_serial: dict[tuple[str, int], int] = {}
        self.mosaic = 0
        self.loc_weights = [rng.uniform(0.7, 1.3) for _ in cat.locality_ids]

    # ---- identifiers

    def nhs_number(self) -> str:
        while True:
            body = 900_000_000 + self.rng.randrange(100_000_000)
            if body in self.nhs_used:
                continue
            check = nhs_check_digit(str(body))
            if check is None:
                continue
            self.nhs_used.add(body)
            return f"{body}{check}"

    def upn(self, estab: str, year: int) -> str:
        serial = self.upn_serial.get((estab, year), 0) + 1
        if serial > 999:  # a school allocates at most 999 a year: borrow another code
            return self.upn(f"{(int(estab) + 1) % 10000:04d}", year)
        self.upn_serial[(estab, year)] = serial
        body = f"{UPN_LA_CODE}{estab}{year % 100:02d}{serial:03d}"
        return upn_check_letter(body) + body

    # ---- helpers

    def _dt(self, days_ago_low: float, days_ago_high: float) -> datetime:
        return self.now - timedelta(days=self.rng.uniform(days_ago_low, days_ago_high))

    def _postcode(self, loc: int) -> tuple[str, int]:
        rng = self.rng
        district = rng.choice(self.cat.districts[loc])
        sector = rng.randint(1, 9)
        postcode = f"DS{district} {sector}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
        owner = self.cat.area_locality.get(f"DS{district} {sector}", self.cat.area_locality[f"DS{district}"])
        return postcode, owner

    # ---- one child

    def child(self, rows: Rows, index: int) -> None:
        rng, ids, cat, today = self.rng, self.ids, self.cat, self.today
        cid = ids.uuid()
        unborn = rng.random() < 0.01
        dob = edd = None
        age: int | None = None
        if unborn:
            edd = today + timedelta(days=rng.randint(1, 270))
            sex = "unknown"
        else:
            dob = self.oldest + timedelta(days=rng.randrange(self.span + 1))
            age = age_on(dob, today)
            r = rng.random()
            sex = "male" if r < 0.51 else "female" if r < 0.998 else "other" if r < 0.999 else "unknown"
        female = sex == "female" or (sex in ("unknown", "other") and rng.random() < 0.5)

        # where they live
        home_loc = rng.choices(range(len(cat.locality_ids)), self.loc_weights)[0]
        postcode, loc = self._postcode(home_loc)
        town = rng.choice(cat.towns[home_loc])
        line1 = f"{rng.randint(1, 180)} {rng.choice(STREETS)}"
        born = dob or today
        since = born + timedelta(days=rng.randrange(max(1, (today - born).days + 1)))
        if not unborn and rng.random() < 0.12:
            moves = 1 if rng.random() < 0.8 else 2
            start = born
            for m in range(moves):
                until = start + timedelta(days=rng.randrange(1, max(2, (since - start).days)))
                if until >= since:
                    break
                old_pc, _ = self._postcode(rng.randrange(len(cat.locality_ids)))
                rows["child_address"].append(
                    _address(
                        ids.uuid(),
                        cid,
                        f"{rng.randint(1, 180)} {rng.choice(STREETS)}",
                        rng.choice(cat.towns[home_loc]),
                        old_pc,
                        start if m else None,
                        until,
                    )
                )
                start = until
        rows["child_address"].append(_address(ids.uuid(), cid, line1, town, postcode, since, None))
        address_text = f"{line1}, {town}, {postcode}"

        # names
        heritage = _pick_heritage(rng)
        _, girls, boys, surnames = HERITAGES[heritage]
        given_heritage = heritage if rng.random() < 0.85 else "english"
        pool = HERITAGES[given_heritage][1] if female else HERITAGES[given_heritage][2]
        family = _gendered_surname(rng.choice(surnames), female, heritage)
        if rng.random() < 0.04:
            second = rng.choice(HERITAGES[_pick_heritage(rng)][3])
            family = f"{family}-{second}" if rng.random() < 0.8 else f"{family} {second}"
        mother_family = family if rng.random() < 0.8 else rng.choice(surnames)
        if unborn:
            given, middle = "Baby", None
            family = mother_family
        else:
            given = rng.choice(pool)
            middle = rng.choice(pool) if rng.random() < 0.6 else None
            if middle == given:
                middle = None
        rows["child_name"].append(_name(ids.uuid(), cid, "official", given, middle, family, None))
        if not unborn:
            if given in NICKNAMES and rng.random() < 0.3:
                rows["child_name"].append(
                    _name(ids.uuid(), cid, "usual", rng.choice(NICKNAMES[given]), None, family, None)
                )
            if given in SPELLINGS and rng.random() < 0.2:
                rows["child_name"].append(
                    _name(ids.uuid(), cid, "alias", rng.choice(SPELLINGS[given]), middle, family, None)
                )
            if rng.random() < 0.04 and dob is not None and (today - dob).days > 30:
                until = dob + timedelta(days=rng.randrange(30, (today - dob).days))
                rows["child_name"].append(
                    _name(ids.uuid(), cid, "previous", given, middle, rng.choice(surnames), until)
                )

        # parents and carers
        people: list[dict[str, Any]] = []
        mother_id = None
        if unborn or rng.random() < 0.92:
            mgiven = rng.choice(HERITAGES[heritage][1])
            people.append(
                _person(
                    ids.uuid(),
                    cid,
                    f"{mgiven} {mother_family}",
                    "mother",
                    True,
                    ids.mobile() if rng.random() < 0.92 else None,
                    _email(rng, mgiven, mother_family),
                    address_text,
                )
            )
            if unborn:
                mother_id = people[-1]["id"]
        if not unborn and (not people or rng.random() < 0.6):
            fgiven = rng.choice(HERITAGES[heritage][2])
            ffamily = family.split("-")[0] if rng.random() < 0.9 else rng.choice(surnames)
            people.append(
                _person(
                    ids.uuid(),
                    cid,
                    f"{fgiven} {ffamily}",
                    "father",
                    rng.random() < 0.85,
                    ids.mobile() if rng.random() < 0.85 else None,
                    _email(rng, fgiven, ffamily),
                    address_text if rng.random() < 0.7 else None,
                )
            )
        if not people:
            kind = rng.choice(("grandmother", "foster carer", "aunt"))
            cgiven, cfamily = _person_name(rng, True)
            people.append(
                _person(
                    ids.uuid(),
                    cid,
                    f"{cgiven} {cfamily}",
                    kind,
                    kind != "foster carer",
                    ids.mobile(),
                    None,
                    address_text,
                )
            )
        rows["related_person"].extend(people)
        pr_people = [p for p in people if p["parental_responsibility"]]

        # settings
        school: Setting | None = None
        if age is not None:
            special = rng.random() < 0.012
            if 2 <= age <= 3 and rng.random() < 0.55:
                school = rng.choice(cat.early_years[loc])
            elif 4 <= age <= 10:
                school = rng.choice(cat.specials[loc] if special else cat.primaries[loc])
            elif (
                11 <= age <= 15
                or (age in (16, 17) and rng.random() < 0.7)
                or (age == 18 and rng.random() < 0.25)
            ):
                school = rng.choice(cat.specials[loc] if special else cat.secondaries[loc])
        # 2% are not registered with a GP, unless that would leave them with no universal
        # service at all (no health visitor, no school): every child keeps one.
        registered = rng.random() < 0.98 or (school is None and age is not None and age >= 5)
        gp = rng.choice(cat.gps[loc]) if not unborn and registered else None

        # identifiers
        if not unborn and rng.random() < 0.99:
            rows["child_identifier"].append(_ident(ids.uuid(), cid, "nhs", self.nhs_number()))
        if age is not None and age >= 4 and (school is not None and school.estab or rng.random() < 0.9):
            estab = (
                school.estab if school is not None and school.estab else rng.choice(cat.primaries[loc]).estab
            )
            rows["child_identifier"].append(
                _ident(ids.uuid(), cid, "upn", self.upn(estab, (dob or today).year + 4))
            )

        shielded = index % 500 == 7
        rows["child"].append(
            {
                "id": cid,
                "status": "active",
                "merged_into_id": None,
                "date_of_birth": dob,
                "expected_delivery_date": edd,
                "sex": sex,
                "mother_id": mother_id,
                "locality_id": cat.locality_ids[loc],
                "school_id": school.org_id if school else None,
                "gp_practice_id": gp.org_id if gp else None,
                "shielded": shielded,
                "shielded_reason": "family in a refuge: fleeing domestic abuse" if shielded else None,
                "shielded_by": SEEDED_BY if shielded else None,
                "shielded_at": self._dt(10, 400) if shielded else None,
                "archived_reason": None,
                "created_at": self.now,
                "updated_at": self.now,
                "version": 1,
            }
        )
        self._involvements(rows, cid, loc, age, born, unborn, school, gp, pr_people, given, family)

    def _involvements(
        self,
        rows: Rows,
        cid: uuid.UUID,
        loc: int,
        age: int | None,
        born: date,
        unborn: bool,
        school: Setting | None,
        gp: Setting | None,
        pr_people: list[dict[str, Any]],
        given: str,
        family: str,
    ) -> None:
        rng, ids, cat = self.rng, self.ids, self.cat
        named: list[tuple[uuid.UUID, str]] = []  # practitioners working with the child

        def start_date(min_days: int = 0) -> date:
            lo = max(born, self.today - timedelta(days=3 * 365))
            days = max(1, (self.today - lo).days - min_days)
            return lo + timedelta(days=rng.randrange(days))

        def add(
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
            start = start_date(30 if ended else 0)
            end = None
            if ended:
                end = start + timedelta(days=rng.randrange(14, max(15, (self.today - start).days)))
                end = min(end, self.today)
            rows["involvement"].append(
                {
                    "id": ids.uuid(),
                    "child_id": cid,
                    "service_id": service_id,
                    "practitioner_id": practitioner,
                    "role": role,
                    "level_of_need": level,
                    "start_date": start,
                    "end_date": end,
                    "status": "ended" if ended else "active",
                    "sensitive": sensitive,
                    "consent_id": consent,
                    "source": SOURCES[stype],
                    "last_confirmed_at": self._dt(0, 120),
                    "recorded_by": SEEDED_BY,
                    "version": 1,
                }
            )
            if practitioner is not None and not ended:
                named.append((practitioner, role))

        def pool(stype: str) -> uuid.UUID:
            return rng.choice(cat.pools[(stype, loc)])

        def consent(scope: str, at: datetime) -> uuid.UUID:
            consent_id = ids.uuid()
            young = age is not None and age >= 13 and (scope.startswith("sensitive") or age >= 16)
            if young or not pr_people:
                kind, name, person = "young_person", f"{given} {family}", None
            else:
                chosen = rng.choice(pr_people)
                kind, name, person = "parent_carer", chosen["name"], chosen["id"]
            rows["consent"].append(
                {
                    "id": consent_id,
                    "child_id": cid,
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

        # universal services: everyone keeps them
        if gp is not None:
            add("gp", gp.service_id, rng.choice(gp.staff) if rng.random() < 0.3 else None, "GP", 1)
        if unborn:
            add("midwifery", cat.services["midwifery"], pool("midwifery"), "midwife", 1)
        elif age is not None and age < 5:
            add(
                "health_visiting",
                cat.services["health_visiting"],
                pool("health_visiting"),
                "health visitor",
                1,
            )
        school_level = 1
        r = rng.random()
        level = 4 if r < 0.015 else 3 if r < 0.065 else 2 if r < 0.215 else 1
        if unborn and level > 2:
            level = 2
        if school is not None:
            senco = level >= 2 and school.senco is not None and rng.random() < 0.4
            school_level = 2 if senco else 1
            kind = "early_years" if school.estab == "" else "school"
            who = school.senco if senco else (rng.choice(school.staff) if rng.random() < 0.5 else None)
            add(
                kind,
                school.service_id,
                who,
                "SENCO"
                if senco
                else ("early years key person" if kind == "early_years" else "class teacher"),
                school_level,
            )
        if age is not None and 5 <= age <= 18 and rng.random() < 0.08:
            add(
                "school_nursing",
                cat.services["school_nursing"],
                pool("school_nursing"),
                "school nurse",
                1,
            )

        # targeted and specialist services, by level of need and age
        a = age if age is not None else -1
        if level >= 2:
            options = ["early_help", "family_support"]
            if 1 <= a <= 8:
                options.append("speech_language")
            if a >= 11:
                options += ["youth_service", "police_schools"]
            if a >= 16:
                options.append("connexions")
            if a >= 13:
                options.append("sexual_health")
            for stype in rng.sample(options, k=min(len(options), rng.choice((1, 1, 2)))):
                self._targeted(add, pool, consent, stype, loc, 2)
            if rng.random() < 0.15:
                add(
                    "early_help",
                    cat.early_help[loc],
                    pool("early_help"),
                    "family support worker",
                    2,
                    ended=True,
                )
        if level >= 3:
            options = ["camhs"] if a >= 5 else []
            if 3 <= a <= 16:
                options.append("educational_psychology")
            if a >= 10:
                options.append("youth_offending")
            if a >= 12:
                options.append("substance_misuse")
            if options:
                for stype in rng.sample(options, k=min(len(options), rng.choice((1, 1, 2)))):
                    self._targeted(add, pool, consent, stype, loc, 3)
        if level == 4:
            add("social_care", cat.services["social_care"], pool("social_care"), "social worker", 4)
            if rng.random() < 0.2:
                add(
                    "police_protection",
                    cat.services["police_protection"],
                    pool("police_protection"),
                    "detective constable",
                    4,
                )

        if level >= 3 and rng.random() < 0.5:
            self.mosaic += 1
            rows["child_identifier"].append(_ident(ids.uuid(), cid, "local:mosaic", f"MOS{self.mosaic:07d}"))

        # an early help assessment for some of those with additional needs
        if level == 4 and age is not None and age >= 1 and rng.random() < 0.3:
            self._caf(rows, cid, loc, age, named, consent, pool, status="closed", stepped_up=True)
        elif level in (2, 3) and rng.random() < 0.13:
            statuses = ("signalled", "in_progress", "completed", "closed", "expired", "withdrawn")
            weights = (0.10, 0.30, 0.25, 0.30, 0.03, 0.02)
            status = rng.choices(statuses, weights)[0]
            if (age is None or age < 2) and status not in ("signalled", "in_progress"):
                status = "in_progress"
            self._caf(rows, cid, loc, age, named, consent, pool, status=status, stepped_up=False)

    def _targeted(
        self,
        add: Callable[..., None],
        pool: Callable[[str], uuid.UUID],
        consent: Callable[[str, datetime], uuid.UUID],
        stype: str,
        loc: int,
        level: int,
    ) -> None:
        spec = next(s for s in SERVICE_SPECS if s[0] == stype)
        service_id = self.cat.early_help[loc] if stype == "early_help" else self.cat.services[stype]
        category = spec[5]
        named = self.rng.random() < 0.85
        if category is not None:
            consent_id = consent(f"sensitive:{category}", self._dt(30, 700))
            add(stype, service_id, pool(stype), spec[6], level, sensitive=True, consent=consent_id)
        else:
            add(stype, service_id, pool(stype) if named else None, spec[6], level)

    def _caf(
        self,
        rows: Rows,
        cid: uuid.UUID,
        loc: int,
        age: int | None,
        named: list[tuple[uuid.UUID, str]],
        consent: Callable[[str, datetime], uuid.UUID],
        pool: Callable[[str], uuid.UUID],
        *,
        status: str,
        stepped_up: bool,
    ) -> None:
        rng, ids = self.rng, self.ids
        candidates = [
            (p, role) for p, role in named if role not in ("social worker", "GP", "detective constable")
        ]
        initiator = rng.choice(candidates)[0] if candidates else pool("early_help")
        caf_id = ids.uuid()
        max_back = max(20.0, min(1500.0, (age or 0) * 365.0))
        signalled = started = completed = closed = expires = None
        consent_id = outcome = closed_reason = None
        if status == "signalled":
            signalled = self._dt(0, 12)
        elif status in ("expired", "withdrawn"):
            signalled = self._dt(20, min(300.0, max_back))
        elif status == "in_progress":
            signalled = self._dt(20, min(200.0, max_back))
        elif status == "completed":
            signalled = self._dt(60, min(500.0, max(61.0, max_back)))
        else:
            signalled = self._dt(200, max(201.0, max_back))
        expires = signalled + timedelta(days=14)
        if status in ("in_progress", "completed", "closed"):
            started = signalled + timedelta(days=rng.uniform(1, 12))
            consent_id = consent("caf", started - timedelta(hours=rng.uniform(0, 48)))
        if status in ("completed", "closed"):
            assert started is not None
            completed = min(started + timedelta(days=rng.uniform(14, 45)), self.now - timedelta(days=1))
            outcome = (
                "stepped_up_to_social_care"
                if stepped_up
                else rng.choices(
                    ("multi_agency_response", "needs_met_in_service", "no_further_action"),
                    (0.7, 0.25, 0.05),
                )[0]
            )
        if status == "closed":
            assert completed is not None
            closed = min(completed + timedelta(days=rng.uniform(60, 400)), self.now - timedelta(hours=1))
            closed_reason = (
                "stepped up to children's social care"
                if stepped_up
                else rng.choice(
                    (
                        "the plan's outcomes were met",
                        "the family moved out of the area",
                        "the family withdrew consent",
                    )
                )
            )
        elif status == "expired":
            closed = expires
            closed_reason = "the signal of intent expired before a CAF was started"
        elif status == "withdrawn":
            closed = signalled + timedelta(days=rng.uniform(1, 10))
            closed_reason = "signal withdrawn: needs met within the service"
        open_ = status in ("signalled", "in_progress", "completed")

        # Lead Professional: the initiator, maybe handed over once the TAC met
        lead = initiator
        spells: list[tuple[uuid.UUID, uuid.UUID | None, str, datetime]] = [
            (
                initiator,
                None,
                "CAF initiator is Lead Professional until a TAC or panel appoints one",
                signalled,
            )
        ]
        others = [p for p, _ in named if p != initiator]
        if started is not None and rng.random() < 0.3:
            handover_at = started + timedelta(days=rng.uniform(5, 40))
            if handover_at < (closed or self.now):
                lead = rng.choice(others) if others else pool("early_help")
                if lead != initiator:
                    spells.append(
                        (
                            lead,
                            initiator,
                            rng.choice(
                                (
                                    "appointed Lead Professional by the TAC",
                                    "hand-over: the initiator moved post",
                                    "the family asked for a practitioner they already know",
                                )
                            ),
                            handover_at,
                        )
                    )
                else:
                    lead = initiator
        rows["assessment"].append(
            {
                "id": caf_id,
                "child_id": cid,
                "status": status,
                "initiator_id": initiator,
                "lead_practitioner_id": lead,
                "consent_id": consent_id,
                "signalled_at": signalled,
                "signal_expires_at": expires,
                "started_at": started,
                "completed_at": completed,
                "closed_at": closed,
                "outcome": outcome,
                "closed_reason": closed_reason,
                "version": 1,
            }
        )
        for i, (who, from_, reason, at) in enumerate(spells):
            ended = spells[i + 1][3] if i + 1 < len(spells) else (None if open_ else closed)
            rows["lead_professional_assignment"].append(
                {
                    "id": ids.uuid(),
                    "child_id": cid,
                    "assessment_id": caf_id,
                    "practitioner_id": who,
                    "from_practitioner_id": from_,
                    "reason": reason,
                    "assigned_by": SEEDED_BY,
                    "started_at": at,
                    "ended_at": ended,
                }
            )

        # Team Around the Child
        if started is None or outcome in ("needs_met_in_service", "no_further_action"):
            return
        if status == "in_progress" and rng.random() < 0.7:
            return
        forming = status == "in_progress"
        members = [(lead, "Lead Professional")] + [(p, r) for p, r in named if p != lead]
        while len(members) < (2 if forming else rng.randint(3, 5)):
            extra = pool(rng.choice(("early_help", "school_nursing", "youth_service", "camhs")))
            if extra not in {m for m, _ in members}:
                members.append((extra, "TAC member"))
        members = members[: 2 if forming else 6]
        tac_id = ids.uuid()
        convened = None if forming else (completed or started) + timedelta(days=rng.uniform(1, 20))
        if convened is not None:
            convened = min(convened, self.now - timedelta(hours=2))
        review = None if forming else self.today + timedelta(days=rng.randint(-30, 90))
        tac_status = "forming" if forming else "closed" if status == "closed" else "convened"
        rows["tac"].append(
            {
                "id": tac_id,
                "child_id": cid,
                "assessment_id": caf_id,
                "status": tac_status,
                "family_participating": rng.random() < 0.9,
                "convened_at": convened,
                "next_review_date": review,
                "closed_at": closed if status == "closed" else None,
                "version": 1,
            }
        )
        for who, role in members:
            rows["tac_member"].append(
                {
                    "id": ids.uuid(),
                    "tac_id": tac_id,
                    "practitioner_id": who,
                    "role": role,
                    "joined_at": convened or started,
                    "left_at": closed if status == "closed" else None,
                }
            )


def _name(
    id_: uuid.UUID,
    child_id: uuid.UUID,
    use: str,
    given: str,
    middle: str | None,
    family: str,
    until: date | None,
) -> dict[str, Any]:
    return {
        "id": id_,
        "child_id": child_id,
        "use": use,
        "given": given,
        "middle": middle,
        "family": family,
        "until": until,
    }


def _ident(id_: uuid.UUID, child_id: uuid.UUID, system: str, value: str) -> dict[str, Any]:
    return {"id": id_, "child_id": child_id, "system": system, "value": value}


def _address(
    id_: uuid.UUID,
    child_id: uuid.UUID,
    line1: str,
    town: str,
    postcode: str,
    since: date | None,
    until: date | None,
) -> dict[str, Any]:
    return {
        "id": id_,
        "child_id": child_id,
        "line1": line1,
        "line2": None,
        "town": town,
        "postcode": postcode,
        "since": since,
        "until": until,
    }


def _person(
    id_: uuid.UUID,
    child_id: uuid.UUID,
    name: str,
    relationship: str,
    pr: bool,
    phone: str | None,
    email: str | None,
    address: str | None,
) -> dict[str, Any]:
    return {
        "id": id_,
        "child_id": child_id,
        "name": name,
        "relationship": relationship,
        "parental_responsibility": pr,
        "phone": phone,
        "email": email,
        "address": address,
    }


def _email(rng: random.Random, given: str, family: str) -> str | None:
    if rng.random() < 0.45:
        return None
    local = _slug(f"{given}.{family}".replace("'", ""))
    domain = rng.choice(("mail.example", "post.example", "inbox.example"))
    return f"{local}{rng.randrange(100)}@{domain}"


# --------------------------------------------------------------------------- the run


def is_empty(engine: Engine) -> bool:
    """True when the directory holds no localities and no children yet."""
    with engine.connect() as conn:
        for name in ("locality", "child"):
            table = SQLModel.metadata.tables[name]
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                return False
    return True


CATALOGUE_TABLES: list[type[SQLModel]] = [
    Locality,
    LocalityArea,
    Organisation,
    Service,
    ServiceLocality,
    Practitioner,
]


def generate(
    *, children: int, seed: int, today: date, now: datetime, batch: int, drivername: str
) -> Iterator[tuple[int, list[Prepared]]]:
    """The county as prepared rows: the catalogue first (0 children), then batches of children."""
    dialect = sa.engine.URL.create(drivername).get_dialect()()
    rng = random.Random(seed)
    cat = build_catalogue(rng, children)
    catalogue = [m.__table__ for m in CATALOGUE_TABLES]  # type: ignore[attr-defined]
    yield 0, [prepare(dialect, t, cat.rows[t.name]) for t in catalogue if cat.rows[t.name]]
    factory = ChildFactory(rng, cat, today=today, now=now)
    tables = [m.__table__ for m in CHILD_TABLES]  # type: ignore[attr-defined]
    for start in range(0, children, batch):
        size = min(batch, children - start)
        rows: Rows = {t.name: [] for t in tables}
        for i in range(start, start + size):
            factory.child(rows, i)
        yield size, [prepare(dialect, t, rows[t.name]) for t in tables if rows[t.name]]


def _produce(queue: Any, kwargs: dict[str, Any]) -> None:
    """Run `generate` in a separate process, handing batches over through a queue."""
    try:
        for item in generate(**kwargs):
            queue.put(("rows", item))
        queue.put(("done", None))
    except BaseException:  # the parent re-raises it; nothing here may hang it
        queue.put(("error", traceback.format_exc()))


def _from_process(kwargs: dict[str, Any]) -> Iterator[tuple[int, list[Prepared]]]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue(maxsize=4)
    process = ctx.Process(target=_produce, args=(queue, kwargs), daemon=True)
    process.start()
    try:
        while True:
            try:
                kind, item = queue.get(timeout=5)
            except Empty:
                if not process.is_alive():
                    raise SeedError("the process generating the children stopped") from None
                continue
            if kind == "done":
                break
            if kind == "error":
                raise SeedError(f"generating the children failed:\n{item}")
            yield item
    finally:
        if process.is_alive():
            process.terminate()
        process.join()


def seed(
    engine: Engine,
    *,
    children: int,
    seed: int = 1,
    actor: Actor,
    today: date | None = None,
    now: datetime | None = None,
    batch: int = 20_000,
    commit_every: int = 100_000,
    parallel: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Migrate, then load a synthetic county with N children into an empty database.

    With ``parallel`` (the default from 50,000 children) the children are generated in a
    second process while this one writes; the data are the same either way.
    """
    if children < 0:
        raise SeedError("the number of children cannot be negative")
    upgrade(engine)
    if not is_empty(engine):
        raise SeedError("the database already holds data: seed into an empty database")
    now = (now or utcnow()).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    today = today or now.date()
    kwargs: dict[str, Any] = {
        "children": children,
        "seed": seed,
        "today": today,
        "now": now,
        "batch": batch,
        "drivername": engine.url.drivername,
    }
    parallel = children >= 50_000 if parallel is None else parallel
    batches = _from_process(kwargs) if parallel else generate(**kwargs)
    tables = {t.name: t for t in SQLModel.metadata.sorted_tables}
    with loading(engine, empty_database=True) as conn:
        writer = BulkWriter(conn)
        tx = conn.begin()
        try:
            since_commit = 0
            for size, prepared in batches:
                for part in prepared:
                    writer.insert_prepared(tables[part.table], part)
                since_commit += size
                if since_commit >= commit_every:
                    tx.commit()
                    tx = conn.begin()
                    since_commit = 0
                if progress is not None and size:
                    progress(size)
            tx.commit()
        finally:
            if tx.is_active:
                tx.rollback()
        counts = dict(writer.counts)
    with unit_of_work(engine) as session:
        audit.append(session, actor=actor, action="seed", detail={"children": children, "seed": seed})
    return SeedResult(children=children, seed=seed, rows=counts)
