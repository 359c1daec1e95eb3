"""The Elasticsearch client's TLS and credentials, from the CHILDINDEX_ELASTICSEARCH_* settings
(issue #21 item 2; docs/elasticsearch.md). A secret may be given in the setting itself or, as
container secrets are, in a file named by the `_FILE` setting; never both."""

from __future__ import annotations

from pydantic import SecretStr

from childindex.settings import Settings
from search.es_client import Access, AccessError, Secret, read_secret


def _secret(value: SecretStr | None, path: str | None, setting: str) -> Secret | None:
    if value is not None and path is not None:
        raise AccessError(f"set CHILDINDEX_{setting} or CHILDINDEX_{setting}_FILE, not both")
    if path is not None:
        return read_secret(path, f"CHILDINDEX_{setting}_FILE")
    return Secret(value.get_secret_value()) if value is not None else None


def elasticsearch_access(settings: Settings) -> Access:
    """The access settings for the configured cluster (AccessError says what is wrong)."""
    return Access(
        ca_file=settings.elasticsearch_ca_file,
        verify_certs=settings.elasticsearch_verify_certs,
        api_key=_secret(
            settings.elasticsearch_api_key, settings.elasticsearch_api_key_file, "ELASTICSEARCH_API_KEY"
        ),
        username=settings.elasticsearch_username,
        password=_secret(
            settings.elasticsearch_password, settings.elasticsearch_password_file, "ELASTICSEARCH_PASSWORD"
        ),
        connections=settings.elasticsearch_connections,
    )
