"""How the application reaches an Elasticsearch cluster: the URL, TLS and credentials.

Every client the application makes comes from `make_client`, so a real cluster's TLS (a CA file,
verification on unless turned off on purpose) and authentication (an API key, or a user and
password; each may come from a file, as container secrets do) apply to the backend, `reindex`,
and the benchmarks alike. Secrets are held as `Secret`s: their repr never shows them, so they
cannot reach a log line or a traceback's locals by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch

REQUEST_TIMEOUT_SECONDS = 30
DEFAULT_CONNECTIONS = 16
"""Connections kept open to each node: at least the request threads of one process (4 by default)
and the indexer, so no search waits for a connection or opens a new one."""


class Secret:
    """A secret string whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the client only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class AccessError(ValueError):
    """The access settings are contradictory or a file they name cannot be read (the message
    names the setting and the file, never a secret)."""


def read_secret(path: str, setting: str) -> Secret:
    """The first line of a secret file (container secrets end with a newline)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AccessError(f"{setting}: cannot read {path} ({exc.strerror or exc})") from None
    value = text.strip()
    if not value:
        raise AccessError(f"{setting}: {path} is empty")
    return Secret(value)


@dataclass(frozen=True)
class Access:
    """TLS and credentials for one cluster. At most one of `api_key` and `username`."""

    ca_file: str | None = None
    verify_certs: bool = True
    api_key: Secret | None = field(default=None)
    username: str | None = None
    password: Secret | None = field(default=None)
    connections: int = DEFAULT_CONNECTIONS

    def __post_init__(self) -> None:
        if self.api_key is not None and self.username is not None:
            raise AccessError("set an Elasticsearch API key or a username and password, not both")
        if (self.username is None) != (self.password is None):
            raise AccessError("an Elasticsearch username needs a password, and a password a username")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise AccessError(f"Elasticsearch CA file {self.ca_file} does not exist")

    @property
    def authenticated(self) -> bool:
        """True when requests carry credentials."""
        return self.api_key is not None or self.username is not None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for `Elasticsearch(url, ...)`."""
        options: dict[str, Any] = {
            "request_timeout": REQUEST_TIMEOUT_SECONDS,
            "connections_per_node": self.connections,
            "http_compress": False,  # the node is near: compressing costs more CPU than it saves
        }
        if self.ca_file is not None:
            options["ca_certs"] = self.ca_file
        if not self.verify_certs:
            options["verify_certs"] = False
            options["ssl_show_warn"] = False
        if self.api_key is not None:
            options["api_key"] = self.api_key.reveal()
        if self.username is not None and self.password is not None:
            options["basic_auth"] = (self.username, self.password.reveal())
        return options


def _hosts(url: str, access: Access) -> list[str]:
    hosts = [u.strip() for u in url.split(",") if u.strip()]
    plain = [h for h in hosts if not h.lower().startswith("https://")]
    if plain and (access.ca_file is not None or not access.verify_certs):
        raise AccessError(
            f"Elasticsearch TLS settings (a CA file, or verification turned off) need https:// URLs, "
            f"not {plain[0]}"
        )
    return hosts


def make_client(url: str, access: Access | None = None) -> Elasticsearch:
    """A client for the cluster at `url` (several URLs: comma-separated) with `access`."""
    access = access or Access()
    return Elasticsearch(_hosts(url, access), **access.client_options())


def make_async_client(url: str, access: Access | None = None) -> AsyncElasticsearch:
    """The same client for awaiting on an event loop (aiohttp underneath): one per loop, made on it."""
    access = access or Access()
    return AsyncElasticsearch(_hosts(url, access), **access.client_options())
