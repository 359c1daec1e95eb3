"""The Elasticsearch client's TLS and credentials, against a TLS front that demands them.

tests/services/es-secure.sh puts nginx in front of the suite's node: https with a certificate from
a CA it makes, and only requests carrying its user's password or its API key get through (others
get Elasticsearch's 401). The node's own X-Pack security cannot be started here (see that script).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from elasticsearch import AuthenticationException
from elasticsearch import ConnectionError as EsConnectionError

from childindex.es_access import elasticsearch_access
from childindex.settings import Settings
from search.blocking import blocking_keys
from search.elasticsearch import ElasticsearchBackend
from search.es_client import Access, AccessError, Secret
from search.port import PersonFields, SearchUnavailable
from tests.search.conftest import build_person, require_env

SECURE_ENV = "CHILDINDEX_TEST_ES_SECURE_DIR"


@dataclass(frozen=True)
class Front:
    url: str
    ca: str
    other_ca: str
    username: str
    password: str
    api_key: str
    dir: Path


@pytest.fixture(scope="module")
def front() -> Front:
    d = Path(require_env(SECURE_ENV, "The Elasticsearch TLS front (tests/services/es-secure.sh)"))
    return Front(
        url=(d / "url").read_text(),
        ca=str(d / "ca.pem"),
        other_ca=str(d / "other-ca.pem"),
        username=(d / "username").read_text(),
        password=(d / "password").read_text(),
        api_key=(d / "api_key").read_text(),
        dir=d,
    )


def _backend(front: Front, access: Access) -> ElasticsearchBackend:
    return ElasticsearchBackend.from_url(
        front.url, access=access, alias=f"childindex-tls-{uuid.uuid4().hex[:12]}", refresh="wait_for"
    )


@pytest.fixture
def cleanup() -> Iterator[list[ElasticsearchBackend]]:
    made: list[ElasticsearchBackend] = []
    yield made
    for backend in made:
        backend.client.indices.delete(index=f"{backend.alias}-*", ignore_unavailable=True)
        backend.client.close()


def _awaited(backend: ElasticsearchBackend, keys: list[str]) -> list[PersonFields]:
    """The candidates as the app's search routes ask: awaited on a loop, with that loop's client."""

    async def ask() -> list[PersonFields]:
        try:
            return await backend.acandidates(keys, 10)
        finally:
            await backend.aclose()

    return asyncio.run(ask())


def _round_trip(backend: ElasticsearchBackend) -> None:
    child = build_person()
    backend.ensure_ready()
    backend.upsert([child])
    assert backend.candidates(sorted(blocking_keys(child)), 10) == [child]
    assert _awaited(backend, sorted(blocking_keys(child))) == [child]  # the same TLS and credentials
    assert backend.outdated_reason() is None


@pytest.mark.elasticsearch
def test_right_ca_and_api_key_search(front: Front, cleanup: list[ElasticsearchBackend]) -> None:
    backend = _backend(front, Access(ca_file=front.ca, api_key=Secret(front.api_key)))
    cleanup.append(backend)
    _round_trip(backend)


@pytest.mark.elasticsearch
def test_right_ca_and_password_file_from_the_settings_search(
    front: Front, cleanup: list[ElasticsearchBackend]
) -> None:
    settings = Settings(
        elasticsearch_url=front.url,
        elasticsearch_ca_file=front.ca,
        elasticsearch_username=front.username,
        elasticsearch_password_file=str(front.dir / "password"),
    )
    access = elasticsearch_access(settings)
    assert front.password not in repr(access) and front.password not in repr(settings)
    backend = _backend(front, access)
    cleanup.append(backend)
    _round_trip(backend)


@pytest.mark.elasticsearch
def test_api_key_file_from_the_settings_searches(front: Front, cleanup: list[ElasticsearchBackend]) -> None:
    settings = Settings(elasticsearch_ca_file=front.ca, elasticsearch_api_key_file=str(front.dir / "api_key"))
    backend = _backend(front, elasticsearch_access(settings))
    cleanup.append(backend)
    _round_trip(backend)


@pytest.mark.elasticsearch
def test_a_ca_that_did_not_sign_the_certificate_fails_clearly(front: Front) -> None:
    backend = _backend(front, Access(ca_file=front.other_ca, api_key=Secret(front.api_key)))
    reason = backend.outdated_reason()
    untrusted = "TLS certificate not trusted: check CHILDINDEX_ELASTICSEARCH_CA_FILE"
    assert reason == f"Elasticsearch cannot be asked: {untrusted}"
    with pytest.raises(SearchUnavailable, match=f"^Elasticsearch cannot search: {untrusted}$") as raised:
        backend.candidates(["fy|x|2015"], 10)
    assert isinstance(raised.value.__cause__, EsConnectionError)
    with pytest.raises(SearchUnavailable, match=f"^Elasticsearch cannot search: {untrusted}$") as raised:
        _awaited(backend, ["fy|x|2015"])
    assert isinstance(raised.value.__cause__, EsConnectionError)
    # no CA at all: the system's trust store does not know the test CA either (verify is on by default)
    assert "TLS certificate not trusted" in (
        _backend(front, Access(api_key=Secret(front.api_key))).outdated_reason() or ""
    )


@pytest.mark.elasticsearch
@pytest.mark.parametrize("credentials", ["none", "wrong-key", "wrong-password"])
def test_missing_or_wrong_credentials_fail_clearly_without_the_secret(front: Front, credentials: str) -> None:
    wrong = "d3JvbmcwMDAwMDAwMDAwOnNlY3JldHNlY3JldA=="
    access = {
        "none": Access(ca_file=front.ca),
        "wrong-key": Access(ca_file=front.ca, api_key=Secret(wrong)),
        "wrong-password": Access(ca_file=front.ca, username=front.username, password=Secret(wrong)),
    }[credentials]
    backend = _backend(front, access)
    reason = backend.outdated_reason()
    assert reason == (
        "Elasticsearch cannot be asked: 401 authentication failed: check the API key or username and password"
    )
    from childindex.readiness import Readiness
    from directory.db import make_engine

    ready = asyncio.run(Readiness(make_engine("sqlite://"), backend, resident=False).answer())
    assert reason in ready.problems  # what /readyz answers, with a 503
    with pytest.raises(SearchUnavailable, match="401 authentication failed") as raised:
        backend.candidates(["fy|x|2015"], 10)
    assert isinstance(raised.value.__cause__, AuthenticationException)
    for secret in (wrong, front.password, front.api_key):
        assert secret not in str(raised.value) and secret not in reason
    with pytest.raises(SearchUnavailable, match="401 authentication failed") as raised:
        _awaited(backend, ["fy|x|2015"])
    assert isinstance(raised.value.__cause__, AuthenticationException)
    for secret in (wrong, front.password, front.api_key):
        assert secret not in str(raised.value)


@pytest.mark.elasticsearch
def test_verification_can_be_turned_off_on_purpose(front: Front, cleanup: list[ElasticsearchBackend]) -> None:
    backend = _backend(front, Access(verify_certs=False, api_key=Secret(front.api_key)))
    cleanup.append(backend)
    _round_trip(backend)


def test_contradictory_or_unreadable_settings_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(AccessError, match="not both"):
        elasticsearch_access(
            Settings(elasticsearch_api_key="k", elasticsearch_username="u", elasticsearch_password="p")
        )
    with pytest.raises(
        AccessError, match="CHILDINDEX_ELASTICSEARCH_API_KEY or CHILDINDEX_ELASTICSEARCH_API_KEY_FILE"
    ):
        elasticsearch_access(
            Settings(elasticsearch_api_key="k", elasticsearch_api_key_file=str(tmp_path / "k"))
        )
    with pytest.raises(AccessError, match="needs a password"):
        elasticsearch_access(Settings(elasticsearch_username="u"))
    missing = tmp_path / "nope"
    with pytest.raises(AccessError, match=f"CHILDINDEX_ELASTICSEARCH_PASSWORD_FILE: cannot read {missing}"):
        elasticsearch_access(Settings(elasticsearch_username="u", elasticsearch_password_file=str(missing)))
    with pytest.raises(AccessError, match="CA file .* does not exist"):
        elasticsearch_access(Settings(elasticsearch_ca_file=str(missing)))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(AccessError, match="is empty"):
        elasticsearch_access(Settings(elasticsearch_api_key_file=str(empty)))
    secret = tmp_path / "key"
    secret.write_text("s3cr3t-value\n")
    access = elasticsearch_access(Settings(elasticsearch_api_key_file=str(secret)))
    assert access.api_key == Secret("s3cr3t-value") and "s3cr3t" not in repr(access)
    assert access.client_options()["api_key"] == "s3cr3t-value"
    assert elasticsearch_access(Settings()).client_options().get("verify_certs", True) is True
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    with pytest.raises(AccessError, match="need https:// URLs, not http://127.0.0.1:9200"):
        ElasticsearchBackend.from_url("http://127.0.0.1:9200", access=Access(ca_file=str(ca)))
