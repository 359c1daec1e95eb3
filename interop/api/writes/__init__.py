"""Create and update, one module per resource type; `CREATE` and `UPDATE` are what each type takes.

Each write is a use case of the domain (directory.service; a CAF's path is directory.caf_path):
its rules and audit events are the domain's. The answer is the resource as the caller may see it.
Modules here import `common.py`, never this package.
"""

from __future__ import annotations

from collections.abc import Callable

from interop.api.writes.care_team import create_care_team, update_care_team
from interop.api.writes.common import Written, check_type
from interop.api.writes.consent import create_consent, update_consent
from interop.api.writes.episode_of_care import create_episode, update_episode
from interop.api.writes.flag import create_flag, update_flag
from interop.api.writes.practitioner import create_practitioner_role, update_practitioner_role

CREATE: dict[str, Callable[..., Written]] = {
    "EpisodeOfCare": create_episode,
    "PractitionerRole": create_practitioner_role,
    "Flag": create_flag,
    "Consent": create_consent,
    "CareTeam": create_care_team,
}
UPDATE: dict[str, Callable[..., Written]] = {
    "EpisodeOfCare": update_episode,
    "PractitionerRole": update_practitioner_role,
    "Flag": update_flag,
    "Consent": update_consent,
    "CareTeam": update_care_team,
}

__all__ = ["CREATE", "UPDATE", "Written", "check_type"]
