"""The seeded children and their families: birth (or expected delivery), home and earlier
addresses, names (usual, alias, previous), parents and carers, school and GP, identifiers;
then their involvements (involvements.py) and CAFs (cafs.py)."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from childindex.demo.base import SEEDED_BY, Ids, Rows
from childindex.demo.cafs import maybe_caf
from childindex.demo.catalogue import Catalogue, Setting
from childindex.demo.child_case import ChildCase, Run
from childindex.demo.involvements import Involvements
from childindex.demo.people import email, gendered_surname, person_name, pick_heritage
from childindex.demo.vocabulary import HERITAGES, INWARD_LETTERS, NICKNAMES, SPELLINGS, STREETS
from directory.identifiers import nhs_check_digit, upn_check_letter
from directory.service import age_on, oldest_birth_date_in_range

UPN_LA_CODE = "990"  # not a DfE local authority number


class ChildFactory:
    """Generates one child at a time, with everything attached, as table rows."""

    def __init__(self, rng: random.Random, cat: Catalogue, *, today: date, now: datetime) -> None:
        self.rng = rng
        self.ids = Ids(rng)
        self.cat = cat
        self.today = today
        self.run = Run(rng, self.ids, cat, today, now)  # now: naive UTC
        self.oldest = oldest_birth_date_in_range(today)
        self.span = (today - self.oldest).days
        self.nhs_used: set[int] = set()
        self.upn_serial: dict[tuple[str, int], int] = {}
        self.involvements = Involvements()
        self.loc_weights = [rng.uniform(0.7, 1.3) for _ in cat.locality_ids]

    # ---- identifiers

    def nhs_number(self) -> str:
        """An NHS number starting with 9 (not issued to patients), unique in the run."""
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
        """The next Unique Pupil Number the school allocates in the year."""
        serial = self.upn_serial.get((estab, year), 0) + 1
        if serial > 999:  # a school allocates at most 999 a year: borrow another code
            return self.upn(f"{(int(estab) + 1) % 10000:04d}", year)
        self.upn_serial[(estab, year)] = serial
        body = f"{UPN_LA_CODE}{estab}{year % 100:02d}{serial:03d}"
        return upn_check_letter(body) + body

    # ---- one child

    def child(self, rows: Rows, index: int) -> None:
        """One child (the index-th of the run) and everything attached to them, into `rows`."""
        rng, ids = self.rng, self.ids
        cid = ids.uuid()
        unborn = rng.random() < 0.01
        dob, edd, age, sex = self._birth(unborn)
        female = sex == "female" or (sex in ("unknown", "other") and rng.random() < 0.5)
        loc, address_text = self._home(rows, cid, unborn, dob)
        heritage, given, family, mother_family = self._names(rows, cid, unborn, dob, female)
        pr_people, mother_id = self._family(rows, cid, unborn, heritage, family, mother_family, address_text)
        school, gp = self._settings(age, loc, unborn)
        self._identifiers(rows, cid, unborn, age, dob, school, loc)
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
                "locality_id": self.cat.locality_ids[loc],
                "school_id": school.org_id if school else None,
                "gp_practice_id": gp.org_id if gp else None,
                "shielded": shielded,
                "shielded_reason": "family in a refuge: fleeing domestic abuse" if shielded else None,
                "shielded_by": SEEDED_BY if shielded else None,
                "shielded_at": self.run.dt(10, 400) if shielded else None,
                "archived_reason": None,
                "created_at": self.run.now,
                "updated_at": self.run.now,
                "version": 1,
            }
        )
        case = ChildCase(
            run=self.run,
            rows=rows,
            id=cid,
            locality=loc,
            age=age,
            born=dob or self.today,
            unborn=unborn,
            school=school,
            gp=gp,
            pr_people=pr_people,
            given=given,
            family=family,
        )
        level = self.involvements.add(case)
        maybe_caf(case, level)

    def _birth(self, unborn: bool) -> tuple[date | None, date | None, int | None, str]:
        """Date of birth (or expected delivery), age and sex."""
        rng = self.rng
        if unborn:
            return None, self.today + timedelta(days=rng.randint(1, 270)), None, "unknown"
        dob = self.oldest + timedelta(days=rng.randrange(self.span + 1))
        r = rng.random()
        sex = "male" if r < 0.51 else "female" if r < 0.998 else "other" if r < 0.999 else "unknown"
        return dob, None, age_on(dob, self.today), sex

    def _postcode(self, loc: int) -> tuple[str, int]:
        rng = self.rng
        district = rng.choice(self.cat.districts[loc])
        sector = rng.randint(1, 9)
        postcode = f"DS{district} {sector}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
        owner = self.cat.area_locality.get(f"DS{district} {sector}", self.cat.area_locality[f"DS{district}"])
        return postcode, owner

    def _home(self, rows: Rows, cid: uuid.UUID, unborn: bool, dob: date | None) -> tuple[int, str]:
        """The current address (and earlier ones for some); returns its locality and its text."""
        rng, ids, cat, today = self.rng, self.ids, self.cat, self.today
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
        return loc, f"{line1}, {town}, {postcode}"

    def _names(
        self, rows: Rows, cid: uuid.UUID, unborn: bool, dob: date | None, female: bool
    ) -> tuple[str, str, str, str]:
        """The official name and, for some, a usual name, an alias, a previous surname.

        Returns the heritage, given name, family name and the mother's family name."""
        rng, ids, today = self.rng, self.ids, self.today
        heritage = pick_heritage(rng)
        surnames = HERITAGES[heritage][3]
        given_heritage = heritage if rng.random() < 0.85 else "english"
        pool = HERITAGES[given_heritage][1] if female else HERITAGES[given_heritage][2]
        family = gendered_surname(rng.choice(surnames), female, heritage)
        if rng.random() < 0.04:
            second = rng.choice(HERITAGES[pick_heritage(rng)][3])
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
        return heritage, given, family, mother_family

    def _family(
        self,
        rows: Rows,
        cid: uuid.UUID,
        unborn: bool,
        heritage: str,
        family: str,
        mother_family: str,
        address_text: str,
    ) -> tuple[list[dict[str, Any]], uuid.UUID | None]:
        """Parents and carers; returns those with parental responsibility and an unborn's mother."""
        rng, ids = self.rng, self.ids
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
                    email(rng, mgiven, mother_family),
                    address_text,
                )
            )
            if unborn:
                mother_id = people[-1]["id"]
        if not unborn and (not people or rng.random() < 0.6):
            fgiven = rng.choice(HERITAGES[heritage][2])
            ffamily = family.split("-")[0] if rng.random() < 0.9 else rng.choice(HERITAGES[heritage][3])
            people.append(
                _person(
                    ids.uuid(),
                    cid,
                    f"{fgiven} {ffamily}",
                    "father",
                    rng.random() < 0.85,
                    ids.mobile() if rng.random() < 0.85 else None,
                    email(rng, fgiven, ffamily),
                    address_text if rng.random() < 0.7 else None,
                )
            )
        if not people:
            kind = rng.choice(("grandmother", "foster carer", "aunt"))
            cgiven, cfamily = person_name(rng, True)
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
        return [p for p in people if p["parental_responsibility"]], mother_id

    def _settings(self, age: int | None, loc: int, unborn: bool) -> tuple[Setting | None, Setting | None]:
        """The school or early years setting by age, and the GP practice."""
        rng, cat = self.rng, self.cat
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
        return school, gp

    def _identifiers(
        self,
        rows: Rows,
        cid: uuid.UUID,
        unborn: bool,
        age: int | None,
        dob: date | None,
        school: Setting | None,
        loc: int,
    ) -> None:
        """An NHS number for nearly every born child; a UPN from school age."""
        rng, ids = self.rng, self.ids
        if not unborn and rng.random() < 0.99:
            rows["child_identifier"].append(_ident(ids.uuid(), cid, "nhs", self.nhs_number()))
        if age is not None and age >= 4 and (school is not None and school.estab or rng.random() < 0.9):
            estab = (
                school.estab
                if school is not None and school.estab
                else rng.choice(self.cat.primaries[loc]).estab
            )
            rows["child_identifier"].append(
                _ident(ids.uuid(), cid, "upn", self.upn(estab, (dob or self.today).year + 4))
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
    mail: str | None,
    address: str | None,
) -> dict[str, Any]:
    return {
        "id": id_,
        "child_id": child_id,
        "name": name,
        "relationship": relationship,
        "parental_responsibility": pr,
        "phone": phone,
        "email": mail,
        "address": address,
    }
