"""Feeds that reconcile instead of adding (`childindex import --source NAME`).

Every row is matched before anything is written: an identifier the directory holds -> that
record; else a person's earlier decision on the same row from the same source; else the matching
engine (a `Matcher`, which the composition root builds over the search backend). Then:

- **updated** / **unchanged**: the matched record gets the fields the source is trusted for
  (precedence.py) through the domain's change (apply.py); untrusted fields are counted, not applied;
- **created**: only when no candidate reaches "possible";
- **held** for review (the match_review table) when a candidate is probable or possible but not
  certain, when any candidate is shielded, and when a row would move a shielded child from a
  source not trusted for addresses. The report says "held" and the code ``review``, nothing
  more: whether a shielded child was involved is never told to the feed's operator;
- **rejected**: a row that fails the checks, repeats an identifier of this run, or whose
  identifiers belong to two records; nothing of it is written.

Re-running a feed changes nothing: rows match their records by identifier and agree with them, a
held row is held once (by the hash of its contents), and the only audit event is the run's.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import audit
from directory.bulk import loading
from directory.db import unit_of_work
from directory.errors import DomainError
from directory.importer.apply import Standing, apply_row, load_standings, plan
from directory.importer.precedence import Precedence
from directory.importer.rows import ChildRow, PatientRejection, PersonRow, Reader, Rejection
from directory.importer.writer import ImportResult, Writer
from directory.models import Actor, MatchReview, ReviewStatus, utcnow


class Outcome(enum.StrEnum):
    """What became of a row."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    HELD = "held"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Candidate:
    """A record the matching engine found for a row, with its grade (certain, probable, possible)."""

    child_id: uuid.UUID
    grade: str


Matcher = Callable[[ChildRow], Sequence[Candidate] | None]
"""Candidates for a row, best first; None when too many match to tell them apart."""


@dataclass(frozen=True)
class LineOutcome:
    """One row's outcome for the report: file, line, outcome and a reason code (never the data)."""

    file: str
    line: int
    outcome: Outcome
    reason: str
    child_id: uuid.UUID | None = None  # the record it updated or left unchanged (never in the report file)


@dataclass
class ReconcileResult(ImportResult):
    """What a feed run did, in counts and line by line."""

    run_id: str = ""
    source: str = ""
    updated: int = 0
    held: int = 0
    searched: int = 0  # rows the matching engine was asked about (the run's audit event counts them)
    lines: list[LineOutcome] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)  # untrusted differing fields, by field


def row_document(row: ChildRow) -> dict[str, Any]:
    """The row as the feed gave it, checked: what a reviewer needs, and what its hash is of."""
    return {
        "child": row.data.model_dump(mode="json", exclude_defaults=True),
        "identifiers": [list(i) for i in row.identifiers],
        "addresses": [
            {
                "line1": a.line1,
                "line2": a.line2,
                "town": a.town,
                "postcode": a.postcode,
                "since": a.since.isoformat() if a.since else None,
                "until": a.until.isoformat() if a.until else None,
            }
            for a in row.addresses
        ],
        "shielded": row.shielded,
    }


def row_hash(source: str, document: dict[str, Any]) -> str:
    """The same row from the same source has the same hash, wherever it is in the file."""
    return hashlib.sha256((source + "\n" + json.dumps(document, sort_keys=True)).encode()).hexdigest()


class _Documents(dict[int, dict[str, Any]]):
    """Row index -> the row's document (`row_document`), made the first time it is asked for: most
    rows of a feed find their record by identifier and never need one."""

    def __init__(self, rows: Sequence[ChildRow]) -> None:
        super().__init__()
        self.rows = rows

    def __missing__(self, n: int) -> dict[str, Any]:
        doc = self[n] = row_document(self.rows[n])
        return doc


@dataclass
class _Run:
    """One feed run: the writer for new records, a session per batch for changes and holds."""

    writer: Writer
    result: ReconcileResult
    matcher: Matcher
    precedence: Precedence
    actor: Actor
    today: date
    seen: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def note(self, row: ChildRow, outcome: Outcome, reason: str, child_id: uuid.UUID | None = None) -> None:
        self.result.lines.append(LineOutcome(row.source, row.line, outcome, reason, child_id))

    def reject(self, row: ChildRow, field_: str, reason: str, code: str) -> None:
        self.writer.reject(row, field_, reason)
        self.note(row, Outcome.REJECTED, code)

    def batch(self, rows: Sequence[ChildRow]) -> None:
        """Match, decide and write one batch (in the run's open transaction)."""
        fresh = [r for r in rows if self._first_time(r)]
        targets, unmatched = self._by_identifier(fresh)
        docs = _Documents(fresh)  # (made only for the rows that need one: searched or held)
        found = self._look_up(fresh, unmatched, docs, targets)
        ids = [t[0] for t in targets.values()] + [c.child_id for cs in found.values() if cs for c in cs]
        standings = load_standings(self.writer.conn, ids)
        creates: list[ChildRow] = []
        holds: list[tuple[int, list[Candidate]]] = []
        for n, candidates in found.items():
            decision = _decide(candidates, standings)
            if isinstance(decision, uuid.UUID):
                targets[n] = (decision, "certain-match")
            elif decision == "create":
                creates.append(fresh[n])
                self.note(fresh[n], Outcome.CREATED, "no-match")
            else:
                holds.append((n, list(candidates or ())))
        for n, (child_id, how) in sorted(targets.items()):
            held = self._update(fresh[n], self._kept(standings, child_id), how)
            if held is not None:
                holds.append((n, [Candidate(held, "certain")]))
        self._hold_all(fresh, holds, docs, standings)
        self.writer.create(creates)

    def _by_identifier(self, fresh: Sequence[ChildRow]) -> tuple[dict[int, tuple[uuid.UUID, str]], list[int]]:
        """Rows whose identifiers a record holds (row index -> (record, how found)), and the others."""
        targets: dict[int, tuple[uuid.UUID, str]] = {}
        unmatched: list[int] = []
        owners = self.writer.existing(i for r in fresh for i in r.identifiers)
        for n, row in enumerate(fresh):
            own = {owners[i] for i in row.identifiers if i in owners}
            if len(own) > 1:
                self.reject(
                    row,
                    "identifier",
                    "its identifiers belong to two different records already in the directory",
                    "identifier-conflict",
                )
            elif own:
                targets[n] = (own.pop(), "identifier")
            else:
                unmatched.append(n)
        return targets, unmatched

    def _look_up(
        self,
        fresh: Sequence[ChildRow],
        unmatched: list[int],
        docs: _Documents,
        targets: dict[int, tuple[uuid.UUID, str]],
    ) -> dict[int, Sequence[Candidate] | None]:
        """For rows no identifier found: a person's earlier decision (into `targets`), a row still
        waiting (held again, not queued twice), else the matching engine's candidates."""
        hashes = {n: row_hash(self.result.source, docs[n]) for n in unmatched}
        prior = self._prior(set(hashes.values()))
        found: dict[int, Sequence[Candidate] | None] = {}
        for n in unmatched:
            decided = prior.get(hashes[n])
            if decided is None:
                found[n] = self.matcher(fresh[n])
                self.result.searched += 1
            elif decided[0] == ReviewStatus.OPEN.value:
                self.result.held += 1
                self.note(fresh[n], Outcome.HELD, "review")
            elif decided[1] is not None:
                targets[n] = (decided[1], "review-decision")
        return found

    def _hold_all(
        self,
        fresh: Sequence[ChildRow],
        holds: list[tuple[int, list[Candidate]]],
        docs: _Documents,
        standings: dict[uuid.UUID, Standing],
    ) -> None:
        """Queue the held rows; one already reviewed (a re-run) is not queued again: still waiting,
        it is held; decided, it is left as the person left it."""
        hashes = {n: row_hash(self.result.source, docs[n]) for n, _ in holds}
        prior = self._prior(set(hashes.values()))
        with self._session() as session:
            for n, candidates in holds:
                decided = prior.get(hashes[n])
                if decided is None:
                    self._hold(session, fresh[n], docs[n], candidates, standings)
                elif decided[0] == ReviewStatus.OPEN.value:
                    self.result.held += 1
                    self.note(fresh[n], Outcome.HELD, "review")
                else:
                    self.result.unchanged += 1
                    self.note(fresh[n], Outcome.UNCHANGED, "review-decision", decided[1])
            session.commit()

    def _first_time(self, row: ChildRow) -> bool:
        repeat = next((self.seen[i] for i in row.identifiers if i in self.seen), None)
        if repeat is not None:
            self.reject(
                row,
                "identifier",
                f"the same identifier is on line {repeat[1]} of {repeat[0]}",
                "repeated-in-run",
            )
            return False
        for ident in row.identifiers:
            self.seen[ident] = (row.source, row.line)
        return True

    def _prior(self, hashes: set[str]) -> dict[str, tuple[str, uuid.UUID | None]]:
        """Earlier reviews of these rows from this source: open, or the record a person chose."""
        if not hashes:
            return {}
        table = MatchReview.__table__  # type: ignore[attr-defined]
        found: dict[str, tuple[str, uuid.UUID | None]] = {}
        stmt = (
            sa.select(table.c.row_hash, table.c.status, table.c.child_id)
            .where(table.c.source == self.result.source, table.c.row_hash.in_(sorted(hashes)))
            .order_by(table.c.created_at)
        )
        for r in self.writer.conn.execute(stmt):
            found[r.row_hash] = (r.status, r.child_id)  # the latest review wins
        return found

    def _session(self) -> Session:
        """A session in a savepoint of the run's transaction: its commit keeps its work for the run's
        commit, its rollback undoes only its own. One per changed row, so that each row's change is
        all or nothing and no session's identity map grows with the batch (it slowed every query)."""
        return Session(bind=self.writer.conn, join_transaction_mode="create_savepoint")

    def _kept(self, standings: dict[uuid.UUID, Standing], child_id: uuid.UUID) -> Standing | None:
        """The record a row matched as it stands; for a merged record, the record it was merged into."""
        standing = standings.get(child_id)
        for _ in range(5):  # (a merge's kept record is active: one step, but never loop for ever)
            if standing is None or standing.status != "merged" or standing.merged_into is None:
                break
            kept = standing.merged_into
            standings.update(load_standings(self.writer.conn, [kept]))
            standing = standings.get(kept)
        return standing

    def _update(self, row: ChildRow, standing: Standing | None, how: str) -> uuid.UUID | None:
        """Apply the row's trusted fields to its record; the record to hold the row beside instead
        (a person decides), or None.

        A sealed record (an adopted child's birth identity) and an archived one hold the row for the
        few who may read them (reviews.RESTRICTED): the report says "held", `review`, as for a row
        beside a shielded child, so that it tells the operator nothing about the record. A purged
        record (a tombstone: no personal data, no identifiers) is said plainly."""
        if standing is None or standing.status == "purged":
            self.reject(
                row,
                "identifier",
                "the record it was linked to was purged (its personal data deleted): the row was not applied",
                "record-purged",
            )
            return None
        if standing.status != "active":
            return standing.child_id
        p = plan(row, standing, self.precedence, self.result.source)
        if p.hold:
            return standing.child_id
        self.result.ignored.update(p.ignored)
        if not p.apply:
            self.result.unchanged += 1
            self.note(row, Outcome.UNCHANGED, how, standing.child_id)
            self._matched(row, None)
            return None
        try:
            with self._session() as session:
                apply_row(
                    session,
                    actor=self.actor,
                    child_id=standing.child_id,
                    row=row,
                    fields=p.apply,
                    source=self.result.source,
                    today=self.today,
                )
                session.commit()
        except DomainError as exc:
            if standing.shielded:
                return standing.child_id  # a person decides; the report must not say why it refused
            self.reject(
                row, "row", exc.message if "'" not in exc.message else "the change was refused", exc.code
            )
            return None
        self.result.updated += 1
        self.note(row, Outcome.UPDATED, how, standing.child_id)
        self._matched(row, None)
        return None

    def _matched(self, row: ChildRow, child_id: uuid.UUID | None) -> None:
        if row.key is not None:
            self.writer.patients[row.key] = child_id  # None: its RelatedPerson lines change nothing

    def _hold(
        self,
        session: Session,
        row: ChildRow,
        doc: dict[str, Any],
        candidates: list[Candidate],
        standings: dict[uuid.UUID, Standing],
    ) -> None:
        session.add(
            MatchReview(
                source=self.result.source,
                run_id=self.result.run_id,
                file=row.source[:200],
                line=row.line,
                row_hash=row_hash(self.result.source, doc),
                row=doc,
                candidates=[{"child_id": c.child_id.hex, "grade": c.grade} for c in candidates],
                shielded_candidate=any(s.shielded for c in candidates if (s := standings.get(c.child_id))),
                restricted=restricted_to({s.status for c in candidates if (s := standings.get(c.child_id))}),
            )
        )
        self.result.held += 1
        self.note(row, Outcome.HELD, "review")
        self._matched(row, None)


def restricted_to(statuses: set[str]) -> str | None:
    """Who alone may see a held row whose candidates have these statuses: "sealed" (the adoption
    team), "archived" (data managers), or None (the review queue's usual readers)."""
    for status in ("sealed", "archived"):
        if status in statuses:
            return status
    return None


def _decide(candidates: Sequence[Candidate] | None, standings: dict[uuid.UUID, Standing]) -> uuid.UUID | str:
    """The record a row certainly is, "create" when nothing is close, else "hold"."""
    if candidates is None:
        return "hold"  # too many alike to tell apart
    if not candidates:
        return "create"
    if any(standings[c.child_id].shielded for c in candidates if c.child_id in standings):
        return "hold"  # never a second, unshielded record beside a shielded child
    certain = [c for c in candidates if c.grade == "certain"]
    if len(certain) == 1:
        return certain[0].child_id
    return "hold"


def reconcile(
    engine: Engine,
    paths: Sequence[Path],
    *,
    read: Reader,
    source: str,
    matcher: Matcher,
    precedence: Precedence,
    actor: Actor,
    today: date | None = None,
    batch: int = 5000,
    after_batch: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReconcileResult:
    """Reconcile the rows of a feed's files with the directory; one audit event for the run.

    `after_batch` runs after each committed batch (the composition root brings the search index
    up to date there, so later rows match the records earlier rows created)."""
    today = today or date.today()
    now = utcnow().astimezone(UTC).replace(tzinfo=None)
    result = ReconcileResult(run_id=uuid.uuid4().hex, source=source)
    with loading(engine) as conn:
        tx = conn.begin()
        writer = Writer(conn, tx, result, now=now)
        run = _Run(writer, result, matcher, precedence, actor, today)
        try:
            _run_all(run, paths, read, today, batch, after_batch, progress)
            writer.tx.commit()
        except BaseException:
            if writer.tx.is_active:
                writer.tx.rollback()
            raise
    result.rejected.sort(key=lambda r: (r.source, r.line))
    result.lines.sort(key=lambda o: (o.file, o.line))
    _audit(engine, result, paths, actor=actor)
    return result


def _run_all(
    run: _Run,
    paths: Sequence[Path],
    read: Reader,
    today: date,
    batch: int,
    after_batch: Callable[[], None] | None,
    progress: Callable[[int], None] | None,
) -> None:
    result = run.result
    people: list[PersonRow] = []
    pending: list[ChildRow] = []

    def flush() -> None:
        run.batch(pending)
        pending.clear()
        # Commit, let the index follow (it writes too: on SQLite, after the write lock is free),
        # then carry on in a new transaction.
        run.writer.tx.commit()
        if after_batch is not None:
            after_batch()
        run.writer.tx = run.writer.conn.begin()

    for path in paths:
        for item in read(path, today=today):
            result.read += 1
            if isinstance(item, Rejection):
                result.rejected.append(item)
                result.lines.append(LineOutcome(item.source, item.line, Outcome.REJECTED, "invalid"))
                if isinstance(item, PatientRejection):
                    run.writer.patients[item.key] = item
            elif isinstance(item, PersonRow):
                people.append(item)
            else:
                pending.append(item)
            if len(pending) >= batch:
                flush()
            if progress is not None and result.read % 1000 == 0:
                progress(1000)
    flush()
    run.writer.link_people(people)
    if progress is not None:
        progress(result.read % 1000)


def _audit(engine: Engine, result: ReconcileResult, paths: Sequence[Path], *, actor: Actor) -> None:
    """One audit event for the run: counts and codes, a hash of the file names (never contents)."""
    names_hash = hashlib.sha256("\n".join(sorted(p.name for p in paths)).encode()).hexdigest()
    with unit_of_work(engine) as session:
        audit.append(
            session,
            actor=actor,
            action="import.reconcile",
            outcome="success" if not result.rejected else "partial",
            detail={
                "source": result.source,
                "run": result.run_id,
                "files_sha256": names_hash,
                "read": result.read,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "held": result.held,
                "rejected": len(result.rejected),
                "ignored_fields": sum(result.ignored.values()),
                "searched": result.searched,
            },
        )
