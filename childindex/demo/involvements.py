"""The services a seeded child is known to: universal ones for everyone, targeted and specialist
ones by level of need and age (with consent where the service is sensitive), and the social care
system's local id for some of those with complex needs."""

from __future__ import annotations

from childindex.demo.catalogue import SERVICE_SPECS
from childindex.demo.child_case import ChildCase

_SPECS = {spec.service_type: spec for spec in SERVICE_SPECS}


class Involvements:
    """Adds each child's involvements; numbers the social care system's local ids in turn."""

    def __init__(self) -> None:
        self.mosaic = 0

    def add(self, case: ChildCase) -> int:
        """Every involvement of the child; returns the child's level of need (1-4)."""
        rng = case.run.rng
        _universal(case)
        r = rng.random()
        level = 4 if r < 0.015 else 3 if r < 0.065 else 2 if r < 0.215 else 1
        if case.unborn and level > 2:
            level = 2
        _school(case, level)
        _targeted_and_specialist(case, level)
        if level >= 3 and rng.random() < 0.5:
            self.mosaic += 1
            case.rows["child_identifier"].append(
                {
                    "id": case.run.ids.uuid(),
                    "child_id": case.id,
                    "system": "local:mosaic",
                    "value": f"MOS{self.mosaic:07d}",
                }
            )
        return level


def _universal(case: ChildCase) -> None:
    """The GP, and the midwife (unborn) or health visitor (under five): everyone keeps them."""
    run, gp, age = case.run, case.gp, case.age
    rng, cat = run.rng, run.cat
    if gp is not None:
        case.add("gp", gp.service_id, rng.choice(gp.staff) if rng.random() < 0.3 else None, "GP", 1)
    if case.unborn:
        case.add("midwifery", cat.services["midwifery"], case.pool("midwifery"), "midwife", 1)
    elif age is not None and age < 5:
        case.add(
            "health_visiting",
            cat.services["health_visiting"],
            case.pool("health_visiting"),
            "health visitor",
            1,
        )


def _school(case: ChildCase, level: int) -> None:
    """The school or early years setting (its SENCO for some with additional needs); a school nurse."""
    run, school, age = case.run, case.school, case.age
    rng = run.rng
    if school is not None:
        senco = level >= 2 and school.senco is not None and rng.random() < 0.4
        school_level = 2 if senco else 1
        kind = "early_years" if school.estab == "" else "school"
        who = school.senco if senco else (rng.choice(school.staff) if rng.random() < 0.5 else None)
        case.add(
            kind,
            school.service_id,
            who,
            "SENCO" if senco else ("early years key person" if kind == "early_years" else "class teacher"),
            school_level,
        )
    if age is not None and 5 <= age <= 18 and rng.random() < 0.08:
        case.add(
            "school_nursing",
            run.cat.services["school_nursing"],
            case.pool("school_nursing"),
            "school nurse",
            1,
        )


def _targeted_and_specialist(case: ChildCase, level: int) -> None:
    """Targeted services from level 2, specialist ones from 3, social care (and police) at 4."""
    run = case.run
    rng, cat = run.rng, run.cat
    a = case.age if case.age is not None else -1
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
            _one_of(case, stype, 2)
        if rng.random() < 0.15:
            case.add(
                "early_help",
                cat.early_help[case.locality],
                case.pool("early_help"),
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
                _one_of(case, stype, 3)
    if level == 4:
        case.add("social_care", cat.services["social_care"], case.pool("social_care"), "social worker", 4)
        if rng.random() < 0.2:
            case.add(
                "police_protection",
                cat.services["police_protection"],
                case.pool("police_protection"),
                "detective constable",
                4,
            )


def _one_of(case: ChildCase, stype: str, level: int) -> None:
    """An involvement of the service; a sensitive one only with the consent it records."""
    run = case.run
    spec = _SPECS[stype]
    service_id = run.cat.early_help[case.locality] if stype == "early_help" else run.cat.services[stype]
    named = run.rng.random() < 0.85
    if spec.sensitive_category is not None:
        consent_id = case.consent(f"sensitive:{spec.sensitive_category}", run.dt(30, 700))
        case.add(stype, service_id, case.pool(stype), spec.role, level, sensitive=True, consent=consent_id)
    else:
        case.add(stype, service_id, case.pool(stype) if named else None, spec.role, level)
