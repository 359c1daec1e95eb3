"""Key files: keys kept outside the database (the audit chain's, the secrets'), one key a line.

A key file starts with the line `childindex-keyfile v1 <purpose>` and then holds one key a line,
oldest first: `<key id> <created on> <key>` (8 hex digits, an ISO date, 32 random bytes in
base64url). The last key is the current one; older keys stay so that what they signed or sealed
can still be checked or read. Lines starting with `#` are comments. The file is written whole
(to a temporary file, then renamed), readable by its owner only. Standard library only.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Purpose = Literal["audit", "secrets"]
PURPOSES: tuple[Purpose, ...] = ("audit", "secrets")
KEY_BYTES = 32
_HEADER = "childindex-keyfile v1 "
_ID = re.compile(r"^[0-9a-f]{8}$")
_ABOUT = {
    "audit": "# Keys the HMAC of the audit chain and signs its checkpoints. Keep every key: old events\n"
    "# and checkpoints are checked with the key that signed them. Back it up apart from the database.\n",
    "secrets": "# Encrypts the secrets held in the database (signing keys, TOTP secrets, webhook secrets).\n"
    "# Without the key a secret cannot be read: back it up apart from the database and its backups.\n",
}


class KeyFileError(Exception):
    """A key file that is missing, unreadable or malformed; the message says what to do."""


@dataclass(frozen=True)
class KeyRing:
    """The keys of one key file, oldest first; the last one is current."""

    purpose: Purpose
    path: str
    keys: tuple[tuple[str, str, bytes], ...]  # (key id, created on, key)

    @property
    def current_id(self) -> str:
        """The id of the key new signatures and encryptions use."""
        return self.keys[-1][0]

    @property
    def current(self) -> bytes:
        """The key new signatures and encryptions use."""
        return self.keys[-1][2]

    def get(self, key_id: str) -> bytes | None:
        """The key with this id, if the file holds it."""
        for kid, _, key in self.keys:
            if kid == key_id:
                return key
        return None

    @property
    def ids(self) -> list[str]:
        """Every key id, oldest first."""
        return [kid for kid, _, _ in self.keys]


def read(path: str | Path, purpose: Purpose) -> KeyRing:
    """Load a key file, checking that it is one for this purpose."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(
            f"the {purpose} key file {where} does not exist: make one with "
            f"`childindex keys generate {purpose} {where}`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"the {purpose} key file {where} cannot be read: {exc}") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines or lines[0][1] != _HEADER + purpose:
        found = lines[0][1] if lines else "nothing"
        raise KeyFileError(
            f"{where} is not a {purpose} key file (its first line should be "
            f"'{_HEADER}{purpose}', found {found[:40]!r})"
        )
    keys: list[tuple[str, str, bytes]] = []
    for n, line in lines[1:]:
        parts = line.split()
        key = _decode(parts[2]) if len(parts) == 3 else None
        if key is None or not _ID.match(parts[0]) or any(parts[0] == k for k, _, _ in keys):
            raise KeyFileError(f"{where} line {n} is not '<8 hex digit id> <date> <32-byte base64url key>'")
        keys.append((parts[0], parts[1], key))
    if not keys:
        raise KeyFileError(f"{where} holds no key")
    return KeyRing(purpose=purpose, path=where, keys=tuple(keys))


def _decode(text: str) -> bytes | None:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None
    return key if len(key) == KEY_BYTES else None


def _encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _new_key(taken: Iterable[str]) -> tuple[str, str, bytes]:
    taken = set(taken)
    kid = secrets.token_hex(4)
    while kid in taken:
        kid = secrets.token_hex(4)
    return kid, datetime.now(UTC).date().isoformat(), secrets.token_bytes(KEY_BYTES)


_Key = tuple[str, str, bytes]


def _write(path: Path, purpose: Purpose, keys: Iterable[_Key], *, new: bool = False) -> None:
    """Write the whole file under a temporary name, then put it in place: renamed over the old
    file, or (`new`) linked, which fails if another process made the file meanwhile."""
    body = [_HEADER + purpose, _ABOUT[purpose].rstrip("\n")]
    body += [f"{kid} {created} {_encode(key)}" for kid, created, key in keys]
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("\n".join(body) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if new:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def generate(path: str | Path, purpose: Purpose) -> KeyRing:
    """Make a new key file holding one key; never overwrites a file that exists."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write(target, purpose, [_new_key(())], new=True)
    except FileExistsError:
        raise KeyFileError(f"{target} already exists: a key file is never overwritten") from None
    return read(target, purpose)


def add_key(ring: KeyRing) -> KeyRing:
    """Add a new key to the ring's file, current from now on; the older keys stay."""
    current = read(ring.path, ring.purpose)  # (the file as it is now, not as it was loaded)
    _write(Path(ring.path), ring.purpose, [*current.keys, _new_key(current.ids)])
    return read(ring.path, ring.purpose)


def drop_keys(ring: KeyRing, key_ids: Iterable[str]) -> KeyRing:
    """Remove keys from the ring's file (never the current one)."""
    current = read(ring.path, ring.purpose)
    gone = set(key_ids) - {current.current_id}
    _write(Path(ring.path), ring.purpose, [k for k in current.keys if k[0] not in gone])
    return read(ring.path, ring.purpose)
