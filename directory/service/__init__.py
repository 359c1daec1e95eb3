"""Use cases of the directory: typed functions that flush() and never commit(), by domain word.

    access         who may do what: the role sets, and the rules of directory.permissions
    common         what every use case shares (loading a record for a change, its audit event)
    children       a child's record: create, address, demographics, shield, archive, merge
    consent        consents: record, withdraw
    involvements   a service working with a child: record, change, confirm, end
    practitioners  practitioners in the catalogue
    caf            the CAF's life cycle, its Lead Professional and its Team Around the Child
    card           the read model: the involvement card, what the actor may change, who looked
    catalogue      localities and their postcode areas

Callers read every use case from here (`from directory import service; service.start_caf(...)`).
"""

from __future__ import annotations

from directory import repository as repo  # (tests reach the repository as service.repo)
from directory.errors import CafAlreadyOpen  # (as before the split: callers catch service.CafAlreadyOpen)
from directory.models import Involvement  # (as before the split)
from directory.service.access import (
    ACCESS_LOG_READERS,
    DEMOGRAPHICS_UPDATERS,
    PRACTITIONER_REGISTRARS,
    SENSITIVE_VIEWERS,
    SHIELD_SETTERS,
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
    require_involvement_change,
)
from directory.service.caf import (
    close_caf,
    complete_caf,
    convene_tac,
    expire_signals,
    hand_over_lead,
    lapse_expired_signal,
    signal_caf,
    start_caf,
    update_tac,
)
from directory.service.card import YourPart, access_log, build_card, read_card, your_part
from directory.service.catalogue import configure_localities
from directory.service.children import (
    apply_demographics,
    change_address,
    child_ref,
    clear_shield,
    create_child,
    merge_children,
    set_shield,
    validate_birth,
)
from directory.service.common import MAX_AGE_YEARS, age_on, check_version, oldest_birth_date_in_range
from directory.service.consent import record_consent, withdraw_consent
from directory.service.involvements import (
    confirm_involvement,
    end_involvement,
    record_involvement,
    update_involvement,
)
from directory.service.practitioners import register_practitioner, update_practitioner

__all__ = [
    "ACCESS_LOG_READERS",
    "DEMOGRAPHICS_UPDATERS",
    "MAX_AGE_YEARS",
    "PRACTITIONER_REGISTRARS",
    "SENSITIVE_VIEWERS",
    "SHIELD_SETTERS",
    "SHIELD_VIEWERS",
    "CafAlreadyOpen",
    "Involvement",
    "Standing",
    "YourPart",
    "access_log",
    "acting_practitioner",
    "active_practitioner",
    "age_on",
    "apply_demographics",
    "ask_contact",
    "build_card",
    "caf_parties",
    "caf_standing",
    "change_address",
    "check_version",
    "child_ref",
    "clear_shield",
    "close_caf",
    "complete_caf",
    "configure_localities",
    "confirm_involvement",
    "convene_tac",
    "create_child",
    "end_involvement",
    "expire_signals",
    "hand_over_lead",
    "holder_to_ask",
    "how_to_reach",
    "lapse_expired_signal",
    "may_change_involvement",
    "may_see_consent",
    "may_see_practitioner",
    "may_see_sensitive",
    "may_see_shielded",
    "may_withdraw_consent",
    "merge_children",
    "oldest_birth_date_in_range",
    "on_behalf",
    "practitioner_to_record",
    "read_card",
    "record_consent",
    "record_involvement",
    "register_practitioner",
    "repo",
    "require_caf_change",
    "require_catalogue_change",
    "require_consent_withdrawal",
    "require_involvement_change",
    "set_shield",
    "signal_caf",
    "start_caf",
    "update_involvement",
    "update_practitioner",
    "update_tac",
    "validate_birth",
    "withdraw_consent",
    "your_part",
]
