"""Secrets encrypted at rest: a column type that seals on write and opens on read.

A `Sealed` column (a signing key, a TOTP secret, a webhook secret) holds `v1:<key id>:<data>`,
never the secret: the process's sealer (childindex/keys.py: AES-256-GCM with the secrets key file,
bound to the column it belongs to) seals each value as it is written and opens it as it is read,
so the code that uses the secret sees plain text and the database, its dumps and its backups do
not. A value that is not sealed is refused when read: the secrets are sealed when the service is
migrated or started (`reseal`), and a plain value planted in the database is not trusted.
Standard library and SQLAlchemy only: the cipher is installed by the composition root.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator

PREFIX = "v1:"


class SecretsUnavailable(RuntimeError):
    """A secret cannot be sealed or opened: no secrets key is loaded, the key file lacks the key
    it was sealed with, or the value was altered. The message says which, and what to do."""


class Sealer(Protocol):
    """Seals and opens secrets (see childindex/keys.py)."""

    @property
    def current_id(self) -> str:
        """The key new secrets are sealed with."""
        ...

    def seal(self, plain: str, *, context: str) -> str:
        """`v1:<key id>:<data>` for the secret, bound to `context` (e.g. "local_user.totp_secret")."""
        ...

    def open(self, stored: str, *, context: str) -> str:
        """The secret a sealed value holds; SecretsUnavailable when it cannot be opened."""
        ...


def key_id_of(stored: str) -> str | None:
    """The id of the key a stored value was sealed with; None when it is not sealed."""
    if not stored.startswith(PREFIX):
        return None
    key_id, colon, _ = stored[len(PREFIX) :].partition(":")
    return key_id if colon and key_id else None


_SEALER: Sealer | None = None
_LOADER: Callable[[], None] | None = None
_LOCK = threading.Lock()


def use_sealer(sealer: Sealer | None) -> Sealer | None:
    """Seal and open every Sealed column with this sealer from now on; returns the one before."""
    global _SEALER
    before, _SEALER = _SEALER, sealer
    return before


def load_sealer_with(loader: Callable[[], None] | None) -> None:
    """Call `loader` (which calls `use_sealer`) the first time a secret is sealed or opened."""
    global _LOADER
    _LOADER = loader


def sealer() -> Sealer:
    """The process's sealer (loaded on first use if a loader was given); else SecretsUnavailable."""
    if _SEALER is None and _LOADER is not None:
        with _LOCK:
            if _SEALER is None:
                _LOADER()
    if _SEALER is None:
        raise SecretsUnavailable(
            "No secrets key is loaded in this process, so secrets cannot be read or written: set "
            "CHILDINDEX_SECRETS_KEY_FILE (make a key file with `childindex keys generate secrets PATH`)."
        )
    return _SEALER


class Sealed(TypeDecorator[str]):
    """A string column whose values are sealed at rest (see the module's docstring)."""

    impl = sa.String
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context  # "<table>.<column>": a sealed value opens only where it was sealed

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return sealer().seal(value, context=self.context)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if key_id_of(value) is None:
            raise SecretsUnavailable(
                f"A secret in {self.context} is stored in plain text, so it is not trusted: run "
                "`childindex migrate` (or `childindex secrets rotate`) to seal it."
            )
        return sealer().open(value, context=self.context)


def sealed_columns(metadata: sa.MetaData) -> list[sa.Column[Any]]:
    """Every Sealed column of the tables in `metadata`."""
    return [c for t in metadata.sorted_tables for c in t.columns if isinstance(c.type, Sealed)]


@dataclass
class Resealed:
    """What a reseal did, per column ("table.column")."""

    sealed: dict[str, int] = field(default_factory=dict)  # plain values now sealed
    resealed: dict[str, int] = field(default_factory=dict)  # values moved to the current key
    key_ids: dict[str, int] = field(default_factory=dict)  # values per key, afterwards

    @property
    def total(self) -> int:
        """Values written."""
        return sum(self.sealed.values()) + sum(self.resealed.values())


def _raw(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    return sa.type_coerce(column, sa.String())  # (the stored text, neither opened nor sealed)


def _rows(conn: sa.Connection, column: sa.Column[Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    keys = list(column.table.primary_key.columns)
    stmt = sa.select(*keys, _raw(column)).where(column.is_not(None)).with_for_update()
    for row in conn.execute(stmt):
        yield tuple(row[: len(keys)]), row[len(keys)]


def reseal(engine: Engine, columns: Iterable[sa.Column[Any]], *, plain_only: bool = False) -> Resealed:
    """Seal every plain value of these columns, and (unless plain_only) move every sealed value
    to the sealer's current key; in one transaction, which takes the rows' locks."""
    box = sealer()
    done = Resealed()
    with engine.begin() as conn:
        for column in columns:
            name = f"{column.table.name}.{column.name}"
            context = column.type.context if isinstance(column.type, Sealed) else name
            keys = list(column.table.primary_key.columns)
            for pk, stored in list(_rows(conn, column)):
                key_id = key_id_of(stored)
                if key_id is not None and (plain_only or key_id == box.current_id):
                    done.key_ids[key_id] = done.key_ids.get(key_id, 0) + 1
                    continue
                plain = stored if key_id is None else box.open(stored, context=context)
                where = sa.and_(*(k == v for k, v in zip(keys, pk, strict=True)))
                value = sa.bindparam(None, box.seal(plain, context=context), type_=sa.String())
                conn.execute(sa.update(column.table).where(where).values({column.name: value}))
                counts = done.sealed if key_id is None else done.resealed
                counts[name] = counts.get(name, 0) + 1
                done.key_ids[box.current_id] = done.key_ids.get(box.current_id, 0) + 1
    return done
