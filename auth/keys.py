"""Signing keys: one current key signs, retired keys stay published until their tokens expire."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey, Key, KeySet, RSAKey, import_key
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from auth.models import SigningKey
from directory.models import utcnow

# A retired key stays in the JWKS this long: far longer than any access token lives.
PUBLISH_RETIRED_FOR = timedelta(days=1)


def generate_signing_key(alg: str) -> Key:
    """A new private key for the algorithm, its kid the RFC 7638 thumbprint."""
    key: Key
    if alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, private=True)
    else:
        raise ValueError(f"signing algorithm {alg!r} is not supported; use ES256 or RS256")
    key.ensure_kid()
    return key


def rotate(session: Session, *, alg: str, now: datetime | None = None) -> SigningKey:
    """Retire the signing key (still published for a day) and sign with a new one."""
    now = now or utcnow()
    for old in session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None))).all():
        old.retired_at = now
        session.add(old)
    key = generate_signing_key(alg)
    row = SigningKey(
        kid=str(key.kid), alg=alg, private_jwk=json.dumps(key.as_dict(private=True)), created_at=now
    )
    session.add(row)
    session.flush()
    return row


class KeyStore:
    """The local signing keys, cached in memory and re-read from the database on an unknown kid."""

    def __init__(self, engine: Engine, *, alg: str, max_age_days: int) -> None:
        self.engine = engine
        self.alg = alg
        self.max_age = timedelta(days=max_age_days)
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[SigningKey, Key]] = {}
        self._public: dict[str, Key] = {}  # every request verifies with one: made once per key

    def _load(self) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(select(SigningKey)).all()
        self._keys = {row.kid: (row, import_key(json.loads(row.private_jwk))) for row in rows}
        self._public = {kid: import_key(key.as_dict(private=False)) for kid, (_, key) in self._keys.items()}

    def current(self) -> tuple[str, str, Key]:
        """The kid, alg and private key that sign now; creates or rotates the key when due."""
        with self._lock:
            found = self._current_locked()
            if found is not None:
                return found
            self._load()
            found = self._current_locked()
            if found is None:
                with Session(self.engine, expire_on_commit=False) as session:
                    rotate(session, alg=self.alg)
                    session.commit()
                self._load()
                found = self._current_locked()
            assert found is not None
            return found

    def _current_locked(self) -> tuple[str, str, Key] | None:
        live = [
            (row, key)
            for row, key in self._keys.values()
            if row.retired_at is None and row.alg == self.alg and row.created_at > utcnow() - self.max_age
        ]
        if not live:
            return None
        row, key = max(live, key=lambda pair: pair[0].created_at)
        return row.kid, row.alg, key

    def public_key(self, kid: str) -> Key | None:
        """The public key for a kid, refreshing from the database once when it is not cached."""
        with self._lock:
            if kid not in self._keys:
                self._load()
            pair, public = self._keys.get(kid), self._public.get(kid)
        if pair is None or public is None:
            return None
        row, _ = pair
        if row.retired_at is not None and row.retired_at < utcnow() - PUBLISH_RETIRED_FOR:
            return None
        return public

    def jwks(self) -> dict[str, Any]:
        """The public JSON Web Key Set: the current key and recently retired ones."""
        self.current()
        with self._lock:
            self._load()
            cutoff = utcnow() - PUBLISH_RETIRED_FOR
            keys = [
                {**key.as_dict(private=False), "use": "sig", "alg": row.alg, "kid": row.kid}
                for row, key in self._keys.values()
                if row.retired_at is None or row.retired_at > cutoff
            ]
        return {"keys": keys}

    def forget(self) -> None:
        """Drop the cache (after a rotation done elsewhere)."""
        with self._lock:
            self._keys, self._public = {}, {}


def keyset(jwks: dict[str, Any]) -> KeySet:
    """A joserfc KeySet from a JWKS document."""
    return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
