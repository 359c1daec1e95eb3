"""Checkpoints of the audit chain: signed heads kept outside the database.

The chain's HMACs stop anyone without the audit key from rewriting an event, but not from removing
the newest events and moving the head row back. A checkpoint says "the chain held event N with this
hash", signed with the audit key and written where the database's users cannot write (another
host, write-once storage). `childindex audit verify` checks the chain against the latest one:
events up to it cannot go missing unnoticed. A checkpoint is only taken of a chain whose end
verifies and which still holds the previous checkpoint's event.

A checkpoint file (`audit-checkpoint-<seq>.json`) is JSON: format, seq, hash, first (the hash of
event 1, naming the chain), taken_at, key_id, and signature: HMAC-SHA256 with the audit key over
the line `childindex-audit-checkpoint` and the other fields' compact, sorted JSON.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from directory.audit import GENESIS, Checkpoint, event_hash
from directory.audit_keys import ChainKeys
from directory.models import AuditEvent, AuditHead, utcnow

FORMAT = "childindex-audit-checkpoint/1"
_DOMAIN = b"childindex-audit-checkpoint\n"  # (so no event's HMAC can pass for a checkpoint's)
_NAME = re.compile(r"^audit-checkpoint-(\d{12})\.json$")


class CheckpointError(Exception):
    """A checkpoint that cannot be taken, read or trusted; the message says why."""


def _signed_part(cp: Checkpoint) -> bytes:
    body = {
        "format": FORMAT,
        "seq": cp.seq,
        "hash": cp.hash,
        "first": cp.first,
        "taken_at": cp.taken_at,
        "key_id": cp.key_id,
    }
    return _DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def document(cp: Checkpoint, keys: ChainKeys) -> dict[str, Any]:
    """The checkpoint as written to its file, signed."""
    body: dict[str, Any] = json.loads(_signed_part(cp)[len(_DOMAIN) :])
    return {**body, "signature": keys.mac(_signed_part(cp), cp.key_id)}


def take(session: Session, keys: ChainKeys, *, previous: Checkpoint | None = None) -> Checkpoint:
    """A checkpoint of the chain's end as it is now, once its last event verifies with the key and
    the chain still holds the previous checkpoint's event."""
    head = session.get(AuditHead, 1)
    seq, last = (head.seq, head.hash) if head is not None else (0, GENESIS)
    first = GENESIS
    if seq > 0:
        event = session.get(AuditEvent, seq)
        if event is None or event.hash != last or event.key_id is None or not keys.holds(event.key_id):
            raise CheckpointError(
                f"the chain's end (event {seq}) is missing, not keyed or signed with a key the audit key "
                "file does not hold: run `childindex audit verify`"
            )
        if event_hash(event, keys) != event.hash:
            raise CheckpointError(
                f"the chain's last event ({seq}) does not verify: run `childindex audit verify`"
            )
        first_event = session.get(AuditEvent, 1)
        first = first_event.hash if first_event is not None else GENESIS
    if previous is not None and previous.seq > 0:
        held = session.exec(select(AuditEvent.hash).where(col(AuditEvent.seq) == previous.seq)).first()
        if previous.seq > seq or held != previous.hash or first != previous.first:
            raise CheckpointError(
                f"the chain no longer holds event {previous.seq} as the checkpoint taken at "
                f"{previous.taken_at} saw it: run `childindex audit verify` before taking another"
            )
    stamp = utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")
    return Checkpoint(seq=seq, hash=last, first=first, taken_at=stamp, key_id=keys.current_id)


def write(cp: Checkpoint, keys: ChainKeys, to: Path) -> Path:
    """Write a checkpoint into a folder (made if missing) as audit-checkpoint-<seq>.json, or to a
    file named *.json; never over a file that exists."""
    path = to if to.suffix == ".json" else to / f"audit-checkpoint-{cp.seq:012d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document(cp, keys), indent=2, sort_keys=True) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise CheckpointError(f"{path} already exists: checkpoints are never overwritten") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def latest_file(where: Path) -> Path | None:
    """The checkpoint a path names: the file itself, or a folder's newest (by seq)."""
    if not where.is_dir():
        return where if where.exists() else None
    found = sorted(p.name for p in where.iterdir() if _NAME.match(p.name))
    return where / found[-1] if found else None


def read(path: Path, keys: ChainKeys) -> Checkpoint:
    """A checkpoint file, once its signature checks out with the audit key."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cp = Checkpoint(
            seq=int(doc["seq"]),
            hash=str(doc["hash"]),
            first=str(doc["first"]),
            taken_at=str(doc["taken_at"]),
            key_id=str(doc["key_id"]),
        )
        signature = str(doc["signature"])
        if doc.get("format") != FORMAT:
            raise ValueError(f"its format is not {FORMAT}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a readable audit checkpoint: {exc}") from None
    if not keys.holds(cp.key_id):
        raise CheckpointError(
            f"{path} is signed with the audit key {cp.key_id}, which the audit key file does not hold"
        )
    if not hmac.compare_digest(keys.mac(_signed_part(cp), cp.key_id), signature):
        raise CheckpointError(f"{path} was altered or not signed with the audit key: it cannot be trusted")
    return cp
