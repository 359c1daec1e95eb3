"""Which purposes of use each role may give: the reason recorded with every read must be one the
role can honestly have.

People who work with children look for practice reasons; administrators keep the directory and
review its use; auditors only review; connected systems look on behalf of practice and keep
records up to date from their feeds. Nobody but those who review the log may say they look for
"audit", and no practitioner for "administration".
"""

from __future__ import annotations

from auth.errors import forbidden
from directory.models import Purpose, Role

PRACTICE_PURPOSES = frozenset(
    {
        Purpose.CONSIDERING_CAF,
        Purpose.DIRECT_CARE,
        Purpose.CAF_COORDINATION,
        Purpose.SAFEGUARDING_CONCERN,
    }
)

PURPOSES_BY_ROLE: dict[Role, frozenset[Purpose]] = {
    Role.PRACTITIONER: PRACTICE_PURPOSES,
    Role.CHILD_PROTECTION: PRACTICE_PURPOSES,
    # designated practitioners also review who looked at the records they are designated for
    Role.DESIGNATED_PRACTITIONER: PRACTICE_PURPOSES | {Purpose.AUDIT},
    # the locality team works with families and keeps its locality's records in order
    Role.LOCAL_DELIVERY_TEAM: PRACTICE_PURPOSES | {Purpose.ADMINISTRATION},
    Role.DIRECTORY_ADMIN: frozenset({Purpose.ADMINISTRATION, Purpose.AUDIT}),
    Role.AUDITOR: frozenset({Purpose.AUDIT}),
    # keeping records right (merges, feed reviews, subject access) and checking them
    Role.DATA_MANAGER: frozenset({Purpose.ADMINISTRATION, Purpose.AUDIT}),
    Role.ADOPTION_OFFICER: frozenset({Purpose.ADMINISTRATION}),
    # a connected system looks on behalf of its practitioners, and its feeds keep records current
    Role.SYSTEM: PRACTICE_PURPOSES | {Purpose.ADMINISTRATION},
}

# The order purposes are listed in (refusals, and the pages' choices).
ORDER = tuple(Purpose)


def allowed_purposes(role: Role) -> tuple[Purpose, ...]:
    """The purposes this role may give, in the usual order."""
    allowed = PURPOSES_BY_ROLE.get(role, frozenset())
    return tuple(p for p in ORDER if p in allowed)


def check_purpose(role: Role, purpose: Purpose | None) -> None:
    """Refuse (403, naming the purposes the role may give) a purpose the role may not give."""
    if purpose is None or purpose in PURPOSES_BY_ROLE.get(role, frozenset()):
        return
    allowed = ", ".join(p.value for p in allowed_purposes(role))
    raise forbidden(
        "purpose-not-allowed",
        f"Your role ({role.value}) may not give the purpose of use '{purpose.value}'; "
        f"give one of: {allowed}.",
    )
