"""Use cases of the directory: typed functions that flush() and never commit(), by domain word.

    access         who may do what: the role sets, and the rules of directory.permissions
    common         what every use case shares (loading a record for a change, its audit event)
    children       a child's record: create, shield, archive
    details        change a child's details (one version and one audit event per change)
    demographics   a national service's demographics, and a move of address, through details
    versions       the versions of a child's record (snapshots) and its history
    merge          merge two records of one child, and undo it (what moved is logged)
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
    child_ref,
    clear_shield,
    create_child,
    set_shield,
    validate_birth,
)
from directory.service.common import MAX_AGE_YEARS, age_on, check_version, oldest_birth_date_in_range
from directory.service.consent import record_consent, withdraw_consent
from directory.service.demographics import apply_demographics, change_address
from directory.service.details import authorise_change, change_child
from directory.service.history import child_history
from directory.service.involvements import (
    confirm_involvement,
    end_involvement,
    record_involvement,
    update_involvement,
)
from directory.service.merge import (
    MERGERS,
    UNMERGE_DAYS,
    MergePlan,
    audit_merged_read,
    merge_children,
    merge_plan,
    merge_read,
    resolve_merged,
    unmerge_children,
)
from directory.service.practitioners import register_practitioner, update_practitioner
from directory.service.requests import (
    HandOverOutcome,
    answer_request,
    ask_to_join,
    invite_to_tac,
    may_ask_to_join,
    my_requests,
    pending_hand_over,
    pending_tac_request,
    request_hand_over,
    request_read,
)

__all__ = [
    "ACCESS_LOG_READERS",
    "DEMOGRAPHICS_UPDATERS",
    "MERGERS",
    "MAX_AGE_YEARS",
    "MergePlan",
    "PRACTITIONER_REGISTRARS",
    "SENSITIVE_VIEWERS",
    "SHIELD_SETTERS",
    "SHIELD_VIEWERS",
    "CafAlreadyOpen",
    "Involvement",
    "Standing",
    "UNMERGE_DAYS",
    "YourPart",
    "access_log",
    "acting_practitioner",
    "active_practitioner",
    "age_on",
    "apply_demographics",
    "authorise_change",
    "audit_merged_read",
    "ask_contact",
    "build_card",
    "caf_parties",
    "caf_standing",
    "change_address",
    "change_child",
    "check_version",
    "child_history",
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
    "merge_plan",
    "merge_read",
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
    "resolve_merged",
    "set_shield",
    "signal_caf",
    "start_caf",
    "update_involvement",
    "update_practitioner",
    "update_tac",
    "unmerge_children",
    "validate_birth",
    "withdraw_consent",
    "your_part",
    # requests (issue #18)
    "HandOverOutcome",
    "answer_request",
    "ask_to_join",
    "invite_to_tac",
    "may_ask_to_join",
    "my_requests",
    "pending_hand_over",
    "pending_tac_request",
    "request_hand_over",
    "request_read",
]
