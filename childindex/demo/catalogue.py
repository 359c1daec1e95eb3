"""The county's catalogue: localities and their postcode areas, organisations, services, the
schools, early years settings and GP practices of each locality, and the practitioners of each.

Built first, from the same random generator as the children (so the same seed gives the same
county); the child generator draws its settings and practitioners from the lookups it returns.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from childindex.demo.base import Ids, Rows, SeedError, slug
from childindex.demo.people import Practitioners
from childindex.demo.vocabulary import (
    EARLY_YEARS_PATTERNS,
    GP_PATTERNS,
    INWARD_LETTERS,
    LOCALITIES,
    SCHOOL_PATTERNS,
    SECONDARY_PATTERNS,
    SECTOR_OVERRIDES,
    STREETS,
)

AUTHORITY = "Demoshire County Council"


class ServiceSpec(NamedTuple):
    """A county-wide (or per-locality) service and the practitioners who work in it."""

    service_type: str
    name: str
    organisation: str  # a key of ORGANISATIONS
    level_of_need: int
    tier: str
    sensitive_category: str | None
    role: str  # of its practitioners
    per_100k: int  # practitioners per 100,000 children
    per_locality: bool  # one service in each locality (else one for the county)


SERVICE_SPECS: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "health_visiting", "Health Visiting", "community", 1, "core", None, "health visitor", 40, False
    ),
    ServiceSpec("school_nursing", "School Nursing", "community", 1, "core", None, "school nurse", 15, False),
    ServiceSpec("midwifery", "Community Midwifery", "hospital", 1, "aligned", None, "midwife", 15, False),
    ServiceSpec(
        "early_help", "Early Help Team", "council", 2, "core", None, "family support worker", 30, True
    ),
    ServiceSpec(
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
    ServiceSpec("youth_service", "Youth Service", "council", 2, "core", None, "youth worker", 15, False),
    ServiceSpec(
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
    ServiceSpec(
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
    ServiceSpec(
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
    ServiceSpec(
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
    ServiceSpec(
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
    ServiceSpec(
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
    ServiceSpec(
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
    ServiceSpec(
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
    ServiceSpec(
        "social_care", "Children's Social Care", "council", 4, "specialist", None, "social worker", 40, False
    ),
    ServiceSpec(
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


class SettingKind(NamedTuple):
    """One kind of setting every locality has: how it is named, numbered, served and staffed."""

    kind: str  # the organisation kind: school, early_years or gp_practice
    patterns: tuple[str, ...]  # names, with {town} and {street}
    estab_from: int  # the first DfE establishment number (0: none)
    service_type: str
    tier: str
    staff_role: str
    staff: int
    senco: bool


PRIMARY = SettingKind("school", SCHOOL_PATTERNS, 2000, "school", "core", "class teacher", 2, True)
SECONDARY = SettingKind("school", SECONDARY_PATTERNS, 4000, "school", "core", "head of year", 2, True)
SPECIAL = SettingKind(
    "school",
    ("{town} Special School", "{town} Academy (special)"),
    7000,
    "school",
    "core",
    "class teacher",
    2,
    True,
)
EARLY_YEARS = SettingKind(
    "early_years", EARLY_YEARS_PATTERNS, 0, "early_years", "core", "early years key person", 1, False
)
GP_PRACTICE = SettingKind("gp_practice", GP_PATTERNS, 0, "gp", "aligned", "GP", 2, False)


def build_catalogue(rng: random.Random, children: int) -> Catalogue:
    """Localities, postcode areas, organisations, services and practitioners for N children."""
    build = _Builder(rng, children)
    build.localities()
    org_ids = {
        key: build.org(name, kind, locality=0, ods=ods, domain=domain)
        for key, (name, kind, ods, domain) in ORGANISATIONS.items()
    }
    services, early_help, pools = build.services(org_ids)
    scale, n_loc = build.scale, len(LOCALITIES)
    primaries = build.settings(PRIMARY, max(2, round(150 * scale / n_loc)))
    secondaries = build.settings(SECONDARY, max(1, round(35 * scale / n_loc)))
    specials = build.settings(SPECIAL, max(1, round(5 * scale / n_loc)))
    early_years = build.settings(EARLY_YEARS, max(1, round(200 * scale / n_loc)))
    gps = build.settings(GP_PRACTICE, max(1, round(50 * scale / n_loc)))
    return Catalogue(
        rows=build.rows,
        locality_ids=build.locality_ids,
        towns=[loc[2] for loc in LOCALITIES],
        districts=[loc[3] for loc in LOCALITIES],
        area_locality=build.area_locality,
        services=services,
        early_help=early_help,
        pools=pools,
        primaries=primaries,
        secondaries=secondaries,
        specials=specials,
        early_years=early_years,
        gps=gps,
    )


class _Builder:
    """The catalogue's rows as they are made, and the codes already handed out."""

    def __init__(self, rng: random.Random, children: int) -> None:
        self.rng = rng
        self.ids = Ids(rng)
        self.rows: Rows = {
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
        self.scale = max(children, 1) / 100_000
        self.locality_ids = [self.ids.uuid() for _ in LOCALITIES]
        self.area_locality: dict[str, int] = {}
        self.practitioners = Practitioners(rng, self.ids, self.rows["practitioner"])
        self.used_urns: set[str] = set()
        self.used_ods: set[str] = set()
        self.used_estab: set[str] = set()

    def localities(self) -> None:
        """The localities, with their delivery teams, and the postcode areas each covers."""
        code_index = {code: i for i, (code, *_rest) in enumerate(LOCALITIES)}
        for i, (code, name, _towns, districts) in enumerate(LOCALITIES):
            self.rows["locality"].append(
                {
                    "id": self.locality_ids[i],
                    "code": code,
                    "name": name,
                    "authority": AUTHORITY,
                    "team_name": f"{name} Early Help Hub",
                    "team_phone": f"01632 9600{i + 1:02d}",
                    "team_email": f"earlyhelp.{slug(name)}@demoshire-council.example",
                }
            )
            for d in districts:
                self.area_locality[f"DS{d}"] = i
                self.rows["locality_area"].append({"area": f"DS{d}", "locality_id": self.locality_ids[i]})
        for sector, code in SECTOR_OVERRIDES.items():
            self.area_locality[sector] = code_index[code]
            self.rows["locality_area"].append(
                {"area": sector, "locality_id": self.locality_ids[code_index[code]]}
            )

    def org(
        self,
        name: str,
        kind: str,
        *,
        locality: int,
        ods: str | None = None,
        urn: str | None = None,
        domain: str,
    ) -> uuid.UUID:
        """One organisation in the locality; returns its id."""
        rng, ids = self.rng, self.ids
        oid = ids.uuid()
        district = rng.choice(LOCALITIES[locality][3])
        self.rows["organisation"].append(
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
                "locality_id": self.locality_ids[locality],
            }
        )
        return oid

    def service(
        self,
        name: str,
        service_type: str,
        org_id: uuid.UUID,
        level: int,
        tier: str,
        category: str | None,
        localities: list[int],
        domain: str,
    ) -> uuid.UUID:
        """One service of the organisation, serving the localities; returns its id."""
        sid = self.ids.uuid()
        self.rows["service"].append(
            {
                "id": sid,
                "name": name,
                "service_type": service_type,
                "organisation_id": org_id,
                "level_of_need": level,
                "tier": tier,
                "phone": self.ids.landline(),
                "email": f"{slug(service_type)}@{domain}",
                "sensitive": category is not None,
                "sensitive_category": category,
            }
        )
        for loc in localities:
            self.rows["service_locality"].append({"service_id": sid, "locality_id": self.locality_ids[loc]})
        return sid

    def services(
        self, org_ids: dict[str, uuid.UUID]
    ) -> tuple[dict[str, uuid.UUID], list[uuid.UUID], dict[tuple[str, int], list[uuid.UUID]]]:
        """The services of SERVICE_SPECS and their practitioners in each locality."""
        n_loc = len(LOCALITIES)
        services: dict[str, uuid.UUID] = {}
        early_help: list[uuid.UUID] = []
        pools: dict[tuple[str, int], list[uuid.UUID]] = {}
        for stype, name, okey, level, tier, category, role, per_100k, per_locality in SERVICE_SPECS:
            domain = ORGANISATIONS[okey][3]
            if per_locality:
                for loc in range(n_loc):
                    early_help.append(
                        self.service(
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
                services[stype] = self.service(
                    name, stype, org_ids[okey], level, tier, category, list(range(n_loc)), domain
                )
            per_loc = max(2, round(per_100k * self.scale / n_loc))
            for loc in range(n_loc):
                pools[(stype, loc)] = [
                    self.practitioners.add(role, org_ids[okey], domain) for _ in range(per_loc)
                ]
        return services, early_help, pools

    def settings(self, spec: SettingKind, per_loc: int) -> list[list[Setting]]:
        """`per_loc` settings of the kind in each locality, with their service and staff."""
        out: list[list[Setting]] = []
        for loc in range(len(LOCALITIES)):
            here: list[Setting] = []
            used_names: set[str] = set()
            for _ in range(per_loc):
                here.append(self._setting(spec, loc, used_names))
            out.append(here)
        return out

    def _setting(self, spec: SettingKind, loc: int, used_names: set[str]) -> Setting:
        rng = self.rng
        town = rng.choice(LOCALITIES[loc][2])
        name = rng.choice(spec.patterns).format(town=town, street=rng.choice(STREETS).split()[0])
        while name in used_names:
            name = f"{name.split(',')[0]} {rng.choice(STREETS).split()[0]}" + (
                f", {town}" if "," in name else ""
            )
        used_names.add(name)
        urn = ods = None
        if spec.kind in ("school", "early_years"):
            urn = self._unique(self.used_urns, lambda: f"9{rng.randrange(100000):05d}")
        else:
            ods = self._unique(self.used_ods, lambda: f"X9{rng.randrange(10000):04d}")
        domain = f"{slug(name.split(',')[0])}.{'nhs' if ods else 'sch'}.example"
        oid = self.org(name, spec.kind, locality=loc, urn=urn, ods=ods, domain=domain)
        sname = f"{name} (GP)" if spec.kind == "gp_practice" else name
        sid = self.service(sname, spec.service_type, oid, 1, spec.tier, None, [loc], domain)
        estab = self._estab(spec.estab_from) if spec.estab_from else ""
        setting = Setting(org_id=oid, service_id=sid, locality=loc, estab=estab)
        setting.staff = [self.practitioners.add(spec.staff_role, oid, domain) for _ in range(spec.staff)]
        if spec.senco:
            setting.senco = self.practitioners.add("SENCO", oid, domain)
        return setting

    @staticmethod
    def _unique(used: set[str], draw: Callable[[], str]) -> str:
        code = draw()
        while code in used:
            code = draw()
        used.add(code)
        return code

    def _estab(self, estab_from: int) -> str:
        # DfE establishment numbers: 2xxx-3xxx primary, 4xxx secondary, 7xxx special
        span = 2000 if estab_from == 2000 else 1000
        if sum(1 for e in self.used_estab if 0 <= int(e) - estab_from < span) >= span:
            raise SeedError("too many schools for the establishment numbers")
        return self._unique(self.used_estab, lambda: f"{estab_from + self.rng.randrange(span):04d}")
