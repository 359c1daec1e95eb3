"""Plain-English labels for audit events: the one table the audit pages show instead of action codes.

tests/web/test_audit_labels.py checks that every action the code writes has a label here (or falls
in one of the FAMILIES, such as the refusals named after their route).
"""

from __future__ import annotations

LABELS: dict[str, str] = {
    # reading and finding
    "search": "Searched for a child",
    "fhir.search": "Searched for a child (connected system)",
    "child.read": "Read the child's card",
    "child.read.merged": "Opened a merged record (sent on to the record kept)",
    "child.read.shield-override": "Looked past a shield to read the child's card",
    "child.history.read": "Read the record's history",
    "history.read": "Read the record's history (connected system)",
    "child.access-log.read": "Read who has looked at the record",
    "child.adoption.read": "Read the adoption link of a sealed record",
    "child.lifecycle.read": "Read when the record will be archived or purged",
    "child.subject-access.export": "Exported the record for a subject access request",
    "tac.actions.read": "Read the plan's actions",
    "tac.reviews.read": "Read the plan's reviews",
    "worklist.read": "Read the locality worklist",
    "mine.read": "Read their own list of children and CAFs",
    "locality.overview": "Read the locality overview",
    "locality.overview.export": "Downloaded the locality overview",
    # the record itself
    "child.create": "Added a child",
    "child.details.change": "Changed the child's details",
    "child.address.change": "Changed the child's address",
    "child.demographics.refresh": "Refreshed the child's details from the demographics service",
    "child.nhs-number.trace": "Traced the child's NHS number",
    "child.nhs-number.verify": "Verified the child's NHS number",
    "child.shield.set": "Shielded the record",
    "child.shield.clear": "Lifted the shield",
    "child.merge": "Merged two records of one child",
    "child.unmerge": "Undid a merge",
    "child.seal": "Sealed the record on adoption",
    "child.archive": "Archived the record",
    "child.purge": "Purged the record",
    "child.death": "Recorded the child's death",
    "child.moved-away": "Recorded that the child moved away",
    # involvements and consent
    "involvement.record": "Recorded an involvement",
    "involvement.confirm": "Confirmed an involvement",
    "involvement.still-involved": "Confirmed still involved",
    "consent.record": "Recorded a consent",
    "consent.withdraw": "Withdrew a consent",
    # CAF, Lead Professional, TAC
    "caf.signal": "Signalled a CAF",
    "caf.start": "Started the CAF",
    "caf.complete": "Recorded the CAF's outcome",
    "caf.close": "Closed the CAF",
    "caf.expire-signals": "Let unstarted CAF signals lapse",
    "caf.step-up": "Stepped up to social care",
    "caf.step-down": "Stepped down from social care",
    "caf.panel.send": "Sent the CAF to the panel",
    "caf.panel.queue": "Read the panel queue",
    "caf.panel.read": "Read a panel case",
    "caf.panel.decision": "Recorded the panel's decision",
    "lead-professional.hand-over": "Handed over the Lead Professional role",
    "lead-professional.hand-over.request": "Asked to hand over the Lead Professional role",
    "lead-professional.hand-over.decline": "Declined the Lead Professional role",
    "tac.convene": "Convened a Team Around the Child",
    "tac.update": "Changed the Team Around the Child",
    "tac.invite": "Invited someone to the Team Around the Child",
    "tac.invite.accept": "Accepted an invitation to a Team Around the Child",
    "tac.invite.decline": "Declined an invitation to a Team Around the Child",
    "tac.join.request": "Asked to join a Team Around the Child",
    "tac.join.accept": "Accepted a request to join a Team Around the Child",
    "tac.join.decline": "Declined a request to join a Team Around the Child",
    "tac.action.add": "Added an action to the plan",
    "tac.action.update": "Changed an action in the plan",
    "tac.review": "Recorded a review of the plan",
    "tac.review-overdue": "Flagged an overdue review",
    # feeds, duplicates and the catalogue
    "import": "Imported a feed",
    "import.reconcile": "Reconciled a feed",
    "match-review.list": "Read the held feed rows",
    "match-review.read": "Read a held feed row",
    "match-review.link": "Linked a held feed row to a record",
    "match-review.create": "Made a new record from a held feed row",
    "duplicates.report": "Ran the probable duplicates report",
    "duplicates.report.read": "Read the probable duplicates report",
    "duplicates.not_duplicates": "Marked two records as not the same child",
    "practitioner.register": "Added a practitioner",
    "practitioner.update": "Changed a practitioner",
    "localities.configure": "Configured the localities",
    "lifecycle.run": "Ran archiving and purging",
    "search.reindex": "Rebuilt the search index",
    "database.backup": "Backed up the database",  # childindex backup (childindex/cli/backup.py)
    "database.restore": "Restored the database from a backup",
    "seed": "Loaded demonstration data",
    "bulk.export": "Started a bulk export",
    "bulk.export.read": "Downloaded a bulk export",
    "bulk.export.cancel": "Cancelled a bulk export",
    "bulk.export.complete": "A bulk export finished",
    "subscription.create": "A connected system subscribed to changes",
    "subscription.delete": "A connected system stopped a subscription",
    # access
    "auth.signin": "Signed in",
    "auth.token.issued": "A connected system was given a token",
    "auth.token.revoked": "Signed out (a token was revoked)",
    "auth.refresh.reused": "A sign-in was used twice and ended",
    "user.create": "Added a user account",
    "user.enrol": "Set up their sign-in",
    "user.enable": "Let an account sign in again",
    "user.disable": "Stopped an account signing in",
    "user.unlock": "Lifted a sign-in lock-out",
    "grant.create": "Gave access",
    "grant.renew": "Renewed access",
    "grant.approve": "Approved access for a system",
    "grant.suspend": "Suspended access",
    "grant.reinstate": "Reinstated access",
    "grant.revoke": "Revoked access",
    "client.register": "Registered a connected system",
    "client.update": "Changed a connected system",
    "client.rotate": "Changed a connected system's keys",
    "client.disable": "Switched off a connected system",
    "secrets.rotate": "Rotated the stored secrets' key",
    "secrets.seal": "Sealed the stored secrets",
    # the audit itself
    "audit.search": "Searched the audit log",
    "audit.read": "Read the audit log",
    "audit.verify": "Checked the audit chain",
    "audit.alerts.read": "Read the alerts",
    "audit.checkpoint": "Checkpointed the audit chain",
    "audit.chain.keyed": "Keyed the audit chain",
    "audit.key.rotate": "Rotated the audit key",
    # alerts
    "alert.trawling": "Alert: possible trawling",
    "alert.shield-override": "Alert: looked past a shield",
    "alert.signin.locked": "Alert: sign-in locked out",
    "alert.signin.many-sources": "Alert: failed sign-ins from many places",
}

# What a refused request was trying to do, by its route's name (the pages' and the API's main ones).
ROUTE_WORDS: dict[str, str] = {
    "web_caf_signal": "signal a CAF",
    "web_card": "read the child's card",
    "web_search": "search for a child",
    "web_search_form": "open the search page",
    "read_child": "read the child's card",
    "search_children": "search for a child",
    "search_children_get": "search for a child",
}

# Families of actions named after something else (a route): their label says what and why.
FAMILIES: dict[str, str] = {
    "refused.": "Refused: {}",
    "auth.refused.": "Refused at sign-in check: {}",
}


def _route(name: str) -> str:
    if name in ROUTE_WORDS:
        return ROUTE_WORDS[name]
    words = name.removeprefix("web_").replace("_", " ").replace("-", " ").strip()
    return words or "a request"


def known(action: str) -> bool:
    """Whether the action has a label of its own or belongs to a family."""
    return action in LABELS or any(action.startswith(prefix) for prefix in FAMILIES)


def label(action: str) -> str:
    """The plain-English label of an audit action."""
    if action in LABELS:
        return LABELS[action]
    for prefix, words in sorted(FAMILIES.items(), key=lambda kv: -len(kv[0])):
        if action.startswith(prefix):
            return words.format(_route(action.removeprefix(prefix)))
    return action.replace(".", " ").replace("-", " ").replace("_", " ").capitalize()
