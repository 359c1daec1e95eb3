"""The audit chain's keys: loaded from the audit key file (directory/keyfile.py), never the database."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable

from directory import keyfile
from directory.keyfile import KeyRing


class AuditKeyMissing(RuntimeError):
    """The chain's key is not loaded, or an event names a key the key file does not hold."""


class ChainKeys:
    """The audit key file's keys, ready to compute the chain's HMACs."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.current_id = ring.current_id
        # An HMAC keyed once and copied per event: no key set-up per event.
        self._keyed = {kid: hmac.new(key, digestmod=hashlib.sha256) for kid, _, key in ring.keys}
        self._current = self._keyed[self.current_id]

    def read_again(self) -> ChainKeys:
        """The key file's keys as they are now (a key added by `audit rotate-key` elsewhere), or
        these when it cannot be read."""
        try:
            return ChainKeys(keyfile.read(self.ring.path, "audit"))
        except keyfile.KeyFileError:
            return self

    def holds(self, key_id: str) -> bool:
        """Whether the key file holds this key."""
        return key_id in self._keyed

    def mac(self, data: bytes, key_id: str | None = None) -> str:
        """HMAC-SHA256 of data with a key (the current one by default), in hex."""
        mac = (self._current if key_id is None else self._keyed[key_id]).copy()
        mac.update(data)
        return mac.hexdigest()


_KEYS: ChainKeys | None = None
_LOADER: Callable[[], None] | None = None
_KEYS_LOCK = threading.Lock()


def use_keys(ring: KeyRing | None) -> None:
    """Sign new events with the ring's current key, and check them with all of its keys."""
    global _KEYS
    _KEYS = ChainKeys(ring) if ring is not None else None


def load_keys_with(loader: Callable[[], None] | None) -> None:
    """Call `loader` (which calls `use_keys`) the first time a key is needed, e.g. in a command."""
    global _LOADER
    _LOADER = loader


def chain_keys() -> ChainKeys:
    """The loaded keys; loads them on first use if a loader was given; else AuditKeyMissing."""
    if _KEYS is None and _LOADER is not None:
        with _KEYS_LOCK:
            if _KEYS is None:
                _LOADER()
    if _KEYS is None:
        raise AuditKeyMissing(
            "The audit chain's key is not loaded in this process: set CHILDINDEX_AUDIT_KEY_FILE "
            "(make a key file with `childindex keys generate audit PATH`)."
        )
    return _KEYS
