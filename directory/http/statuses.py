"""Domain error -> HTTP status: the one table both surfaces answer from.

The app API renders the answer as problem+json (`directory/http/problems.py`), /fhir as an
OperationOutcome (`interop/outcome.py`). Each row says what both surfaces answer, side by side,
so a new domain error is mapped once, here. They differ where FHIR has its own convention: a
version that moved on is 412 Precondition Failed there (If-Match), and a value that is not
valid is 400 with issue type `invalid`.
"""

from __future__ import annotations

from dataclasses import dataclass

from directory.errors import (
    CafAlreadyOpen,
    Conflict,
    ConsentRequired,
    DomainError,
    InvalidInput,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    RuleBroken,
    StaleVersion,
)


@dataclass(frozen=True, slots=True)
class Answer:
    """How the surfaces answer one kind of domain error."""

    api: int
    """The app API's status (problem+json)."""
    fhir: int
    """The FHIR surface's status (OperationOutcome)."""
    issue: str
    """The OperationOutcome's issue type (http://hl7.org/fhir/issue-type)."""


ANSWERS: tuple[tuple[type[DomainError], Answer], ...] = (
    # the first that matches wins, so subclasses come before their bases
    (NotFound, Answer(404, 404, "not-found")),
    # "conflict", not "duplicate": the caller did not send the same resource twice, the child's
    # one open CAF is held by someone else, and the message names whom to contact
    (CafAlreadyOpen, Answer(409, 409, "conflict")),
    (PreconditionFailed, Answer(412, 412, "conflict")),  # a stale If-Match, on either surface
    (PreconditionRequired, Answer(428, 428, "required")),  # a change that must send If-Match
    (StaleVersion, Answer(409, 412, "conflict")),
    (Conflict, Answer(409, 409, "conflict")),
    (NotAllowed, Answer(403, 403, "forbidden")),
    (ConsentRequired, Answer(422, 422, "business-rule")),
    (RuleBroken, Answer(422, 422, "business-rule")),
    (InvalidInput, Answer(422, 400, "invalid")),
)
OTHERWISE = Answer(400, 400, "processing")
"""A domain error of no kind above."""


def answer_for(error: DomainError) -> Answer:
    """How the surfaces answer a domain error."""
    for kind, answer in ANSWERS:
        if isinstance(error, kind):
            return answer
    return OTHERWISE
