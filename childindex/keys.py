"""The keys kept outside the database, loaded once per process: the audit chain's and the secrets'.

Two key files, not one: the audit key must be kept for as long as the log (every old event and
checkpoint is checked with the key that signed it) and is handed to whoever checks the log, maybe
on another machine; the secrets key opens the service's own signing keys, TOTP secrets and webhook
secrets, so nobody but the service should hold it, and its old keys are dropped once everything is
sealed again under a new one (`childindex secrets rotate --drop-old`). Part of the composition
root: app.py and the commands call `install`; the domain only sees the loaded keys.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

import auth.models  # noqa: F401  (registers the tables whose columns are sealed)
from childindex.settings import Settings
from directory import audit, keyfile, sealed
from directory.keyfile import KeyFileError, KeyRing, Purpose
from directory.models import Actor

log = logging.getLogger("childindex.keys")

DEV_PATHS: dict[Purpose, str] = {"audit": "var/audit.key", "secrets": "var/secrets.key"}
_SETTING: dict[Purpose, str] = {p: f"CHILDINDEX_{p.upper()}_KEY_FILE" for p in keyfile.PURPOSES}


class KeysMissing(Exception):
    """The service cannot start: a key file is not configured or cannot be read. The message says
    how to make one."""


def _configured(settings: Settings, purpose: Purpose) -> str | None:
    return settings.audit_key_file if purpose == "audit" else settings.secrets_key_file


def _ring(settings: Settings, purpose: Purpose) -> KeyRing:
    """The key file for a purpose; in development, the one under var/, made on first use."""
    path = _configured(settings, purpose)
    if path is None and settings.environment == "development":
        path = DEV_PATHS[purpose]
        if not Path(path).exists():
            try:
                made = keyfile.generate(path, purpose)
            except KeyFileError:  # (another process made it first: use theirs)
                return keyfile.read(path, purpose)
            log.warning("made the development %s key file %s", purpose, path)
            return made
    if path is None:
        raise KeysMissing(
            f"{_SETTING[purpose]} is not set. In production the {purpose} key is kept in a file "
            f"outside the database: make one with `childindex keys generate {purpose} "
            f"/etc/childindex/{purpose}.key` (readable by the service's user only; back it up apart "
            f"from the database), then set {_SETTING[purpose]}=/etc/childindex/{purpose}.key."
        )
    try:
        ring = keyfile.read(path, purpose)
    except KeyFileError as exc:
        raise KeysMissing(f"{_SETTING[purpose]}: {exc}.") from None
    if _readable_beyond_the_service(os.stat(path)):
        log.warning("the %s key file %s can be read by others than its owner: chmod 600 it", purpose, path)
    return ring


def _readable_beyond_the_service(found: os.stat_result) -> bool:
    """Whether anyone outside the service may read or change the file: any account (the mode's last
    digit), or a group the service's process is not in. A group the process is in is the service's
    own (a Kubernetes pod's fsGroup, deploy/k8s: the Secret mounted 0440)."""
    ours = {os.getegid(), *os.getgroups()}
    return bool(found.st_mode & 0o007) or bool(found.st_mode & 0o070 and found.st_gid not in ours)


def install(settings: Settings) -> None:
    """Load both key files now (KeysMissing when one is missing) and use them in this process."""
    problems, rings = [], {}
    for purpose in keyfile.PURPOSES:
        try:
            rings[purpose] = _ring(settings, purpose)
        except KeysMissing as exc:
            problems.append(str(exc))
    if problems:
        raise KeysMissing("\n".join(problems))
    audit.use_keys(rings["audit"])
    sealed.use_sealer(AesGcmSealer(rings["secrets"]))


def install_when_needed(settings: Callable[[], Settings]) -> None:
    """Load each key file the first time it is needed (a command that never touches the audit log
    or a secret, or asks for --help, needs neither)."""

    def load(purpose: Purpose) -> KeyRing:
        try:
            return _ring(settings(), purpose)
        except KeysMissing as exc:
            raise SystemExit(f"childindex: {exc}") from None

    def load_sealer() -> None:
        sealed.use_sealer(AesGcmSealer(load("secrets")))

    audit.load_keys_with(lambda: audit.use_keys(load("audit")))
    sealed.load_sealer_with(load_sealer)


class AesGcmSealer:
    """AES-256-GCM with the secrets key file's current key; each value carries the id of its key
    and is bound to its column. Re-reads the file when it changed (a key added by
    `childindex secrets rotate` in another process) or names a key it has not loaded."""

    def __init__(self, ring: KeyRing) -> None:
        self._lock = threading.Lock()
        self._load(ring)

    def _load(self, ring: KeyRing) -> None:
        self.ring = ring
        self._ciphers = {kid: AESGCM(key) for kid, _, key in ring.keys}
        self._stamp = _stamp(ring.path)

    def reload(self) -> None:
        """Read the key file again."""
        with self._lock:
            try:
                self._load(keyfile.read(self.ring.path, "secrets"))
            except KeyFileError as exc:
                raise sealed.SecretsUnavailable(f"The secrets key file cannot be read: {exc}.") from None

    @property
    def current_id(self) -> str:
        """The key new secrets are sealed with."""
        if _stamp(self.ring.path) != self._stamp:
            self.reload()
        return self.ring.current_id

    def seal(self, plain: str, *, context: str) -> str:
        """`v1:<key id>:<base64url(nonce + ciphertext + tag)>`, bound to the column and the key."""
        key_id = self.current_id
        nonce = secrets.token_bytes(12)
        data = nonce + self._ciphers[key_id].encrypt(nonce, plain.encode(), _aad(context, key_id))
        return f"{sealed.PREFIX}{key_id}:{base64.urlsafe_b64encode(data).decode().rstrip('=')}"

    def open(self, stored: str, *, context: str) -> str:
        """The secret; SecretsUnavailable when its key is missing or the value was altered or moved."""
        key_id = sealed.key_id_of(stored)
        if key_id is None:
            raise sealed.SecretsUnavailable(f"A secret in {context} is not sealed.")
        if key_id not in self._ciphers:
            self.reload()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise sealed.SecretsUnavailable(
                f"A secret in {context} was sealed with the secrets key {key_id}, which "
                f"{self.ring.path} does not hold: restore that key from the key file's backup."
            )
        text = stored[len(sealed.PREFIX) + len(key_id) + 1 :]
        try:
            data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            plain = cipher.decrypt(data[:12], data[12:], _aad(context, key_id))
        except (ValueError, InvalidTag):
            raise sealed.SecretsUnavailable(
                f"A secret in {context} does not open with the secrets key {key_id}: it was altered "
                "or copied from elsewhere."
            ) from None
        return plain.decode()


def _aad(context: str, key_id: str) -> bytes:
    return f"childindex-secret:{context}:{key_id}".encode()


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class UpToDate:
    """What `bring_up_to_date` did."""

    sealed: int  # plain secrets sealed
    keyed: bool  # the chain ended unkeyed, and now ends with an event signed with the audit key


def bring_up_to_date(engine: Engine, *, actor: Actor) -> UpToDate:
    """Seal secrets still in plain text and key the audit chain's end (after an upgrade from a
    version without keys); does nothing the second time. Run by migrate, serve and demo."""
    done = sealed.reseal(engine, sealed.sealed_columns(SQLModel.metadata), plain_only=True)
    with Session(engine) as session:
        keyed = audit.key_chain(session, actor=actor)
        if done.sealed:
            audit.append(session, actor=actor, action="secrets.seal", detail={"sealed": done.sealed})
        session.commit()
    return UpToDate(sealed=sum(done.sealed.values()), keyed=keyed)


@dataclass(frozen=True)
class Rotated:
    """What `rotate_secrets` did."""

    key_id: str
    resealed: int
    dropped: list[str]
    kept: dict[str, int]  # older keys still in use (by how many values), so kept in the file


def rotate_secrets(engine: Engine, *, actor: Actor, drop_old: bool = False) -> Rotated:
    """Add a new secrets key, seal every secret again under it (plain ones too), and with
    `drop_old` remove the older keys from the file once no secret needs them."""
    box = sealed.sealer()
    if not isinstance(box, AesGcmSealer):
        raise sealed.SecretsUnavailable("the secrets key file is not loaded")
    ring = keyfile.add_key(box.ring)
    box.reload()
    columns = sealed.sealed_columns(SQLModel.metadata)
    done = sealed.reseal(engine, columns)
    dropped: list[str] = []
    kept: dict[str, int] = {}
    if drop_old:
        # Counted again after the reseal: a value another process sealed meanwhile keeps its key.
        in_use = sealed.reseal(engine, columns, plain_only=True).key_ids
        kept = {kid: n for kid, n in in_use.items() if kid != ring.current_id}
        dropped = [kid for kid in ring.ids if kid != ring.current_id and kid not in kept]
        if dropped:
            keyfile.drop_keys(ring, dropped)
            box.reload()
    with Session(engine) as session:
        audit.append(
            session,
            actor=actor,
            action="secrets.rotate",
            detail={"key_id": ring.current_id, "resealed": done.total, "dropped": dropped},
        )
        session.commit()
    return Rotated(key_id=ring.current_id, resealed=done.total, dropped=dropped, kept=kept)
