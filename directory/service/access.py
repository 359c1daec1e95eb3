"""Who may do what, as the use cases ask it: the roles that may make each kind of change, and the
rules of directory.permissions, read from here by callers of the service."""

from __future__ import annotations

from directory.models import Role
from directory.permissions import (  # re-exported: callers read the rules from here
    SENSITIVE_VIEWERS,
    SHIELD_VIEWERS,
    Standing,
    acting_practitioner,
    active_practitioner,
    ask_contact,
    caf_parties,
    caf_standing,
    holder_to_ask,
    how_to_reach,
    may_change_involvement,
    may_see_consent,
    may_see_practitioner,
    may_see_sensitive,
    may_see_shielded,
    may_withdraw_consent,
    on_behalf,
    practitioner_to_record,
    require_caf_change,
    require_catalogue_change,
    require_consent_withdrawal,
    require_details_change,
    require_involvement_change,
)

__all__ = [
    "ACCESS_LOG_READERS",
    "DEMOGRAPHICS_UPDATERS",
    "PRACTITIONER_REGISTRARS",
    "SENSITIVE_VIEWERS",
    "SHIELD_SETTERS",
    "SHIELD_VIEWERS",
    "Standing",
    "acting_practitioner",
    "active_practitioner",
    "ask_contact",
    "caf_parties",
    "caf_standing",
    "holder_to_ask",
    "how_to_reach",
    "may_change_involvement",
    "may_see_consent",
    "may_see_practitioner",
    "may_see_sensitive",
    "may_see_shielded",
    "may_withdraw_consent",
    "on_behalf",
    "practitioner_to_record",
    "require_caf_change",
    "require_catalogue_change",
    "require_consent_withdrawal",
    "require_details_change",
    "require_involvement_change",
]

SHIELD_SETTERS = {Role.DESIGNATED_PRACTITIONER, Role.CHILD_PROTECTION, Role.DIRECTORY_ADMIN}
"""Who may shield a child's record or lift the shield."""

ACCESS_LOG_READERS = {Role.AUDITOR, Role.DIRECTORY_ADMIN, Role.DESIGNATED_PRACTITIONER}
"""Who may see who has looked at a child's record."""

DEMOGRAPHICS_UPDATERS = {Role.DIRECTORY_ADMIN, Role.SYSTEM}
"""Who may bring a record up to date with a national service's demographics."""

PRACTITIONER_REGISTRARS = {Role.DIRECTORY_ADMIN, Role.SYSTEM}
"""Who may add practitioners to the catalogue or change them."""
