"""Domain errors: a message a person can act on and structured data; no HTTP in here."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "domain-error"
    title = "The request could not be carried out"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class NotFound(DomainError):
    code = "not-found"
    title = "Not found"


class InvalidInput(DomainError):
    code = "invalid-input"
    title = "The details given are not valid"


class Conflict(DomainError):
    code = "conflict"
    title = "This conflicts with the record as it stands"


class CafAlreadyOpen(Conflict):
    """A second CAF was attempted: the data names who holds the open one and how to reach them."""

    code = "caf-already-open"
    title = "A CAF is already open for this child"


class ConsentRequired(DomainError):
    code = "consent-required"
    title = "Consent is needed first"


class RuleBroken(DomainError):
    """A practice rule (TAC size, Lead Professional, age range...) forbids the change."""

    code = "rule-broken"
    title = "The change breaks a rule of the practice"


class NotAllowed(DomainError):
    code = "not-allowed"
    title = "Not allowed"


class StaleVersion(Conflict):
    code = "stale-version"
    title = "The record changed since it was read"


class PreconditionFailed(StaleVersion):
    """The version a caller named (If-Match) is not the record's: 412 on every surface."""

    code = "precondition-failed"
    title = "The record changed since it was read"


class PreconditionRequired(DomainError):
    """A change that must name the version it was made against (If-Match) named none: 428."""

    code = "precondition-required"
    title = "Say which version you are changing"
