"""Configuration from CHILDINDEX_* environment variables; only the composition root (childindex/) reads
it. Routes below it see the `Practice` facts built from it (directory/http/config.py)."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlparse

from fastapi import Request
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from directory.http.config import Practice, delivery_team
from directory.models import LocalityReach
from directory.service.lifecycle import LifecycleRules


class Settings(BaseSettings):
    """Every setting the service reads, with the embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="CHILDINDEX_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = Field(
        default="production",
        description="'development' accepts the X-Dev-Actor header; never use it with real data.",
    )
    database_url: str = "sqlite:///var/childindex.db"
    search_backend: Literal["embedded", "elasticsearch"] = "embedded"
    search_resident: bool = Field(
        default=True,
        description="With the embedded backend, each serving process keeps a copy of the search "
        "index in memory (about 0.7 GiB per million children), loaded in the background at start "
        "and kept fresh through the search_log table; searches use SQL until it is loaded.",
    )
    elasticsearch_url: str | None = None
    indexer_interval_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How often serve applies directory changes to the search index; "
        "0 turns the background indexer off (run `childindex index` instead).",
    )
    issuer: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    keepalive_requests: int = Field(
        default=100,
        ge=0,
        description="A process ends a client's kept-alive connection after about this many "
        "requests (0: never), so that the client connects again and the connection lands on "
        "whichever worker process is least busy. With several workers, a few long-lived "
        "connections otherwise stay where they first landed, often most of them on one worker "
        "(measured: 16 connections split 14/2 while the other core idled).",
    )
    request_threads: int = Field(
        default=4,
        ge=1,
        le=200,
        description="Requests one process works on at once; more wait their turn. CPU-bound "
        "searches go fastest with a few (measured on 2 cores: 2-4 beat 1, 8 and 40). A request "
        "waiting on the upstream identity provider holds one for at most its 10 s timeout.",
    )
    database_lock_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="A request waits at most this long for a database lock (SQLite busy_timeout, "
        "PostgreSQL lock_timeout) or for a pooled connection; then it is answered 503 with "
        "Retry-After and nothing is changed.",
    )
    database_statement_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="PostgreSQL statement_timeout for the serving process: a statement running "
        "longer is cancelled (503); 0 turns it off. Commands (migrate, import, reindex) have none.",
    )
    database_idle_in_transaction_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="PostgreSQL idle_in_transaction_session_timeout for the serving process: a "
        "connection left in an open transaction this long is closed, releasing its locks; 0 "
        "turns it off.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes `serve` runs behind one socket (about one per core); the indexer "
        "and the notification sender then run once, in the supervising process.",
    )
    # --- issue #21 item 4 (headroom under noise): the node's shared audit writer
    audit_node_writer: bool = Field(
        default=True,
        description="With `serve --workers N`, one audit writer in the supervising process commits "
        "every worker's audit events (one batch, one fsync), fed through a Unix socket; false: each "
        "worker commits its own, as before (docs/audit.md).",
    )
    audit_writer_socket: str | None = Field(
        default=None,
        description="Set by `serve` for its workers: the Unix socket of the node's audit writer.",
    )
    audit_commit_linger_ms: float = Field(
        default=16.0,
        ge=0,
        le=50,
        description="Under load (the audit batch before held more than one event, and they came fast "
        "enough for the wait to gather about four), how long the next waits for more before it is "
        "committed: fewer, larger commits, for at most this much more latency; a lone search never "
        "waits. 0: commit at once (docs/audit.md).",
    )

    @property
    def audit_commit_linger_seconds(self) -> float:
        """`audit_commit_linger_ms` as the group commit takes it (the app's writer and the node's)."""
        return self.audit_commit_linger_ms / 1000

    # --- end of item 4's settings
    signal_expiry_days: int = Field(default=14, ge=1, le=90)
    unmerge_days: int = Field(
        default=90, ge=1, le=3650, description="How long after a merge of two records it may be undone."
    )
    authority_name: str = "Demoshire County Council"
    delivery_team_name: str = "Early Help Hub"
    delivery_team_phone: str | None = "01632 960000"
    delivery_team_email: str | None = "earlyhelp@demoshire.example.gov.uk"
    log_level: str = "info"
    max_json_depth: int = Field(
        default=64,
        ge=8,
        le=512,
        description="A JSON body (app API, FHIR, anything) nested deeper than this is refused (400) "
        "before it is parsed; FHIR resources nest about a dozen deep.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="The largest request body outside /fhir (which has fhir_max_body_bytes); "
        "a larger one is refused (413) before it is read to the end.",
    )

    # --- auth/: the built-in authorization server and the resource server
    audience: str | None = Field(
        default=None, description="The 'aud' access tokens must carry; defaults to the issuer."
    )
    access_token_minutes: int = Field(default=10, ge=1, le=60)
    refresh_token_hours: int = Field(default=12, ge=1, le=24 * 30)
    signing_alg: Literal["ES256", "RS256"] = "ES256"
    signing_key_max_age_days: int = Field(
        default=90, ge=1, description="A signing key older than this is rotated at start-up."
    )
    audit_fingerprint_key: str | None = Field(
        default=None,
        description="Keys the HMAC of search fingerprints in the audit log, so a "
        "fingerprint cannot be reversed by guessing names and dates; set it in production.",
    )
    audit_key_file: str | None = Field(
        default=None,
        description="The audit key file: keys the HMAC chain of the audit log and signs its checkpoints "
        "(`childindex keys generate audit PATH`). Required in production; in development "
        "var/audit.key, made on first use.",
    )
    secrets_key_file: str | None = Field(
        default=None,
        description="The secrets key file: encrypts signing keys, TOTP secrets and webhook secrets in "
        "the database (`childindex keys generate secrets PATH`). Required in production; in "
        "development var/secrets.key, made on first use.",
    )
    audit_checkpoint_dir: str | None = Field(
        default=None,
        description="Where `childindex audit checkpoint` writes signed heads of the audit chain and "
        "where `childindex audit verify` finds the latest: storage the database's users cannot write.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Signs sign-in form CSRF tokens and upstream state; "
        "random per process when unset (set it when running more than one process).",
    )
    training_valid_days: int = Field(
        default=365, ge=1, description="Information-sharing training older than this is refused."
    )
    vetting_valid_days: int = Field(
        default=3 * 365, ge=1, description="A vetting (DBS) check older than this is refused."
    )
    grant_max_days: int = Field(
        default=3 * 365,
        ge=1,
        le=3650,
        description="The longest an access grant may run, counted from the day it is granted or renewed.",
    )
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)
    max_token_lifetime_minutes: int = Field(
        default=60,
        ge=1,
        le=7 * 24 * 60,
        description="An access token (ours or the external issuer's) whose exp is further than this "
        "from its iat, or from now, is refused; at least access_token_minutes.",
    )
    external_issuer: str | None = Field(
        default=None,
        description="Accept access tokens from this issuer too (e.g. the "
        "authority's Keycloak); its subjects still need a grant here.",
    )
    external_jwks_url: str | None = Field(default=None, description="The external issuer's keys; https only.")
    external_audience: str | None = None
    external_subject_claim: str = Field(
        default="sub",
        min_length=1,
        description="The claim of an external token that names the person (their grant's subject, and "
        "the practitioner record whose subject it is); external tokens are always people.",
    )
    external_token_typ: str = Field(
        default="at+jwt",
        min_length=1,
        description="The JOSE 'typ' an external access token must carry (RFC 9068: at+jwt); set "
        "JWT only for a provider that cannot mark its access tokens.",
    )
    upstream_oidc_issuer: str | None = Field(
        default=None, description="Let users sign in through this OpenID Connect provider."
    )
    upstream_oidc_client_id: str | None = None
    upstream_oidc_client_secret: str | None = None
    upstream_oidc_subject_claim: str = "preferred_username"
    upstream_oidc_require_mfa: bool = True
    search_rate_per_minute: int = Field(
        default=30,
        ge=1,
        description="Searches and reads of children's records one subject may make in any 60 seconds, "
        "counted across every process and node (through the database); more answer 429.",
    )
    worklist_lapse_days: int = Field(
        default=7,
        ge=0,
        le=90,
        description="The locality worklist lists signals of intent that lapse within this many days.",
    )
    still_involved_days: int = Field(
        default=180,
        ge=1,
        le=3 * 365,
        description="An active involvement nobody has confirmed for this many days is on the locality "
        "worklist, and its practitioner is asked whether they are still involved.",
    )
    grant_localities: LocalityReach = Field(
        default=LocalityReach.OFF,
        description="What a grant's localities restrict: 'off' (nothing: they say only whose local "
        "delivery team someone is), 'writes' (changes to the records of children living outside them) "
        "or 'all' (reads, searches and changes). A grant with no localities covers the whole authority; "
        "a refusal names the locality team to ask.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (CIDR) of the reverse proxies in front of the "
        "service. Only a request arriving from one of them has its X-Forwarded-For believed, to find "
        "the address sign-in failures are counted against; empty: the connection's own address.",
    )
    # --- childindex/web/: the pages under /
    web_client_id: str = Field(
        default="childindex-web",
        description="The pages sign people in as this OAuth client of the built-in authorization server.",
    )
    suppress_below: int = Field(
        default=5,
        ge=0,
        le=100,
        description="The locality overview shows counts from 1 to this minus 1 as 'fewer than N' "
        "(and withholds others so that no total reveals them); 0 or 1 shows every count.",
    )
    web_session_idle_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="A page session unused this long is signed out."
    )
    web_session_idle_seconds: int | None = Field(
        default=None,
        ge=20,
        le=24 * 3600,
        description="When set, a page session unused this many seconds is signed out (instead of "
        "web_session_idle_minutes): for short sessions on shared computers, and for tests.",
    )
    web_timeout_warning_seconds: int = Field(
        default=120,
        ge=10,
        le=3600,
        description="How long before a page session times out the pages warn, with 'Stay signed in' "
        "(the GOV.UK timeout warning; needs JavaScript, without it the session simply ends).",
    )
    web_cookie_secure: bool | None = Field(
        default=None,
        description="Mark session cookies Secure (by default: when the issuer is https).",
    )
    trawl_window_minutes: int = Field(
        default=60,
        ge=1,
        description="The trawling window: looks are counted over its current and previous halves.",
    )
    trawl_distinct_children: int = Field(
        default=50,
        ge=2,
        description="Raise a trawling alert when one subject looks at this "
        "many distinct children in the window with few repeat looks.",
    )
    trawl_burst_minutes: int = Field(
        default=5,
        ge=1,
        description="The short trawling window: records opened are counted over its current and "
        "previous halves.",
    )
    trawl_burst_children: int = Field(
        default=15,
        ge=2,
        description="Raise a trawling alert when one subject opens this many distinct children's "
        "records in the short window.",
    )

    # --- interop/: the FHIR surface and outbound clients
    fhir_max_bundle_entries: int = Field(
        default=100, ge=1, le=1000, description="The most entries a transaction or batch Bundle may carry."
    )
    fhir_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="The largest /fhir body.")
    fhir_bulk_dir: str = Field(
        default="var/bulk", description="Where Bulk Data export files are written (one folder per export)."
    )
    fhir_bulk_expire_minutes: int = Field(
        default=24 * 60, ge=1, description="A finished export's files are deleted this long after it ends."
    )
    fhir_bulk_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Children per batch (one short transaction each)."
    )
    fhir_bulk_stale_seconds: int = Field(
        default=300, ge=10, description="A running export silent this long (its process died) is failed."
    )
    pds_base_url: str | None = Field(
        default=None,
        description="The PDS-style FHIR demographics service, e.g. https://.../personal-demographics/FHIR/R4",
    )
    pds_token_url: str | None = Field(default=None, description="Its OAuth 2.0 token endpoint.")
    pds_client_id: str | None = None
    pds_client_secret: str | None = None
    pds_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    pds_retries: int = Field(default=2, ge=0, le=5)
    notify_enabled: bool = Field(
        default=False, description="Run the notification worker (signed webhooks / FHIR rest-hooks)."
    )
    notify_interval_seconds: float = Field(default=5.0, gt=0)
    notify_max_attempts: int = Field(
        default=6, ge=1, le=20, description="Then a notification is dead-lettered."
    )
    # --- the social care front door: where a CAF's step-up is referred (docs/panel.md)
    front_door_webhook: str | None = Field(
        default=None,
        description="The social care front door's webhook (https): each step-up is POSTed there, signed "
        "like the notification webhooks (HMAC-SHA256 with front_door_secret), queued and retried.",
    )
    front_door_secret: str | None = Field(
        default=None, description="The secret that signs the front door's webhook deliveries."
    )
    front_door_worker: bool = Field(
        default=True,
        description="Deliver the front door's webhook notices from this process (several processes: the "
        "supervisor alone does).",
    )
    front_door_email: str | None = Field(
        default=None,
        description="The social care front door's email address (a notice without child details).",
    )
    # --- notifications to people (docs/notifications.md): the inbox, email through SMTP, reminders
    people_notify_enabled: bool = Field(
        default=True, description="Run the people's notifier (inbox notices, emails, reminders) in serve."
    )
    people_notify_interval_seconds: float = Field(default=5.0, gt=0)
    smtp_host: str | None = Field(default=None, description="The SMTP server; unset, no email is sent.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_sender: str = Field(default="childindex@localhost", max_length=254)
    smtp_ca_file: str | None = Field(
        default=None, description="A CA certificate file to verify the SMTP server with (else the system's)."
    )
    smtp_max_attempts: int = Field(default=8, ge=1, le=30, description="Then an email is dead-lettered.")
    public_base_url: str | None = Field(
        default=None, description="The address the emails' links point at; defaults to the issuer."
    )
    # --- feeds (childindex import --source): which fields each source is trusted for
    feed_precedence_file: str | None = Field(
        default=None,
        description="A JSON file mapping a feed's source name to the fields it is trusted for "
        "(docs/feeds.md); unset, the defaults: pds name/date_of_birth/sex/nhs_number, "
        "school-census upn/school, social-care and local address.",
    )
    # the life cycle of a record (`childindex lifecycle run`, daily; docs/lifecycle.md)
    archive_age: int = Field(
        default=18,
        ge=16,
        le=25,
        description="Records are archived at this age (they leave practitioners' searches and cards).",
    )
    archive_extended_age: int = Field(
        default=25,
        ge=16,
        le=25,
        description="Up to this age a record stays active past archive_age while the young person's own "
        "consent is current or a service above the universal level (level of need 2+) is involved.",
    )
    purge_after_years: int = Field(
        default=6, ge=1, le=100, description="Archived records are purged this many years after archiving."
    )
    moved_away_archive_days: int = Field(
        default=90,
        ge=0,
        le=730,
        description="A record is archived this many days after the child moved out of the area.",
    )
    # --- Elasticsearch client access (issue #21 item 2: TLS and authentication; docs/elasticsearch.md)
    elasticsearch_ca_file: str | None = Field(
        default=None, description="A CA certificate (PEM) to verify the cluster's https:// certificate with."
    )
    elasticsearch_verify_certs: bool = Field(
        default=True, description="Verify the cluster's certificate; turn off only on a test bench."
    )
    elasticsearch_api_key: SecretStr | None = Field(
        default=None, description="An API key (the encoded form Elasticsearch returns), sent as ApiKey."
    )
    elasticsearch_api_key_file: str | None = Field(default=None, description="A file holding the API key.")
    elasticsearch_username: str | None = Field(default=None, description="For basic authentication.")
    elasticsearch_password: SecretStr | None = None
    elasticsearch_password_file: str | None = Field(default=None, description="A file holding the password.")
    elasticsearch_connections: int = Field(
        default=16, ge=1, le=256, description="Connections kept open to each node by each process."
    )
    # --- operations (issue #21 item 5, docs/operations.md): logs, /metrics, /readyz
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Log lines as JSON objects (one a line, for a log shipper) or as plain text (for a "
        "person at a terminal).",
    )
    metrics_token_file: str | None = Field(
        default=None,
        description="A file holding the bearer token a Prometheus scraper sends to /metrics (compared "
        "in constant time). With neither this nor metrics_allow set, /metrics answers 404.",
    )
    metrics_allow: str = Field(
        default="",
        description="Comma-separated addresses or networks (CIDR) a scrape of /metrics may come from "
        "(the connection's address, or the client's behind CHILDINDEX_TRUSTED_PROXIES).",
    )
    readiness_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, description="How long /readyz waits for the database and search checks."
    )
    # --- several nodes (issue #21 item 1, docs/nodes.md): one database, one Elasticsearch, N app nodes
    elasticsearch_alias: str = Field(
        default="childindex-children",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$",
        description="The Elasticsearch alias the children's index is served under (each deployment "
        "or test run sharing a cluster uses its own); every node of one deployment names the same.",
    )

    @field_validator("external_jwks_url")
    @classmethod
    def _https_keys(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme != "https" or not parsed.netloc:
                raise ValueError("the external issuer's JWKS URL must be a full https:// URL")
        return value

    @field_validator("front_door_webhook")
    @classmethod
    def _https_front_door(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            loopback = parsed.scheme == "http" and parsed.hostname in {"127.0.0.1", "localhost"}
            if not (parsed.scheme == "https" or loopback) or not parsed.netloc:
                raise ValueError("the front door's webhook must be a full https:// URL")
        return value

    @model_validator(mode="after")
    def _ages_agree(self) -> Self:
        if self.archive_extended_age < self.archive_age:
            raise ValueError("archive_extended_age must be at least archive_age")
        return self

    @model_validator(mode="after")
    def _lifetimes_agree(self) -> Self:
        if self.max_token_lifetime_minutes < self.access_token_minutes:
            raise ValueError(
                "max_token_lifetime_minutes must be at least access_token_minutes "
                "(the service would refuse its own tokens)"
            )
        return self


def practice_of(settings: Settings) -> Practice:
    """The practice facts the routes need, built once from the settings."""
    return Practice(
        environment=settings.environment,
        authority_name=settings.authority_name,
        fallback_team=delivery_team(
            name=settings.delivery_team_name,
            organisation=settings.authority_name,
            phone=settings.delivery_team_phone,
            email=settings.delivery_team_email,
        ),
        signal_expiry_days=settings.signal_expiry_days,
        suppress_below=settings.suppress_below,
        issuer=str(settings.issuer),
        unmerge_days=settings.unmerge_days,
        worklist_lapse_days=settings.worklist_lapse_days,
        still_involved_days=settings.still_involved_days,
    )


def current_settings(request: Request) -> Settings:
    """The app's settings (for the composition root's own routes: pages, sign-in)."""
    found: Settings = request.app.state.settings
    return found


def lifecycle_rules(settings: Settings) -> LifecycleRules:
    """The ages and periods of a record's life cycle, from the settings."""
    return LifecycleRules(
        archive_age=settings.archive_age,
        extended_age=settings.archive_extended_age,
        purge_after_years=settings.purge_after_years,
        moved_away_archive_days=settings.moved_away_archive_days,
    )
