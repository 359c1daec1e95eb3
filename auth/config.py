"""The settings auth/ works with, handed over by create_app (auth never reads the environment)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from auth.source import Network, parse_proxies
from directory.models import LocalityReach

# Local scopes for the app API, and the SMART v2 scopes the FHIR surface understands.
LOCAL_SCOPES = ("directory.search", "directory.write", "grants.admin", "audit.read", "directory.export")
SMART_SCOPES = (
    "system/Patient.rs",
    "user/Patient.rs",
    "system/EpisodeOfCare.rs",
    "user/EpisodeOfCare.rs",
    "system/EpisodeOfCare.cru",
    "user/EpisodeOfCare.cru",
    "system/Flag.rs",
    "system/CareTeam.rs",
    "system/Consent.rs",
    # the writes and subscriptions the CapabilityStatement advertises (tests/interop/test_onboarding.py
    # derives every scope it implies and fails when one is missing here)
    "system/Patient.u",
    "system/Flag.cu",
    "system/Consent.cu",
    "system/CareTeam.cu",
    "system/Subscription.crds",
    "system/RelatedPerson.rs",
    "system/Practitioner.rs",
    "system/PractitionerRole.rs",
    "system/PractitionerRole.cru",
    "system/Organization.rs",
    "system/HealthcareService.rs",
    "system/Location.rs",
    "system/Group.rs",  # the localities' children, for Group-level Bulk Data export
    "system/AuditEvent.rs",
    "user/AuditEvent.rs",
    "openid",
    "fhirUser",
    "offline_access",
)
SUPPORTED_SCOPES = LOCAL_SCOPES + SMART_SCOPES

# The only algorithms that may sign an access token we accept: never "none", never HMAC.
ACCESS_TOKEN_ALGS = ("RS256", "ES256")
# SMART Backend Services asks clients to sign assertions with RS384 or ES384.
CLIENT_ASSERTION_ALGS = ("RS256", "RS384", "ES256", "ES384")


@dataclass(frozen=True)
class AuthConfig:
    """Everything auth/ needs to know, as plain values."""

    issuer: str
    audience: str
    environment: str = "production"
    access_token_seconds: int = 600
    refresh_token_seconds: int = 12 * 3600
    signing_alg: str = "ES256"
    signing_key_max_age_days: int = 90
    secret_key: str = ""
    training_valid_days: int = 365
    vetting_valid_days: int = 3 * 365
    grant_max_days: int = 3 * 365
    leeway_seconds: int = 30
    max_token_lifetime_seconds: int = 3600
    external_issuer: str | None = None
    external_jwks_url: str | None = None
    external_audience: str | None = None
    external_subject_claim: str = "sub"
    external_token_typ: str = "at+jwt"
    upstream_issuer: str | None = None
    upstream_client_id: str | None = None
    upstream_client_secret: str | None = None
    upstream_subject_claim: str = "preferred_username"
    upstream_require_mfa: bool = True
    search_rate_per_minute: int = 30
    trawl_window_seconds: int = 3600
    trawl_distinct_children: int = 50
    trawl_burst_seconds: int = 300
    trawl_burst_children: int = 15
    trusted_proxies: tuple[Network, ...] = ()
    grant_localities: LocalityReach = LocalityReach.OFF

    @classmethod
    def from_settings(cls, settings: Any) -> AuthConfig:
        """Build the config from the app's Settings object (duck-typed, no import)."""
        issuer = str(settings.issuer).rstrip("/")
        return cls(
            issuer=issuer,
            audience=settings.audience or issuer,
            environment=settings.environment,
            access_token_seconds=settings.access_token_minutes * 60,
            refresh_token_seconds=settings.refresh_token_hours * 3600,
            signing_alg=settings.signing_alg,
            signing_key_max_age_days=settings.signing_key_max_age_days,
            secret_key=settings.secret_key or secrets.token_urlsafe(32),
            training_valid_days=settings.training_valid_days,
            vetting_valid_days=settings.vetting_valid_days,
            grant_max_days=settings.grant_max_days,
            leeway_seconds=settings.token_leeway_seconds,
            max_token_lifetime_seconds=settings.max_token_lifetime_minutes * 60,
            external_issuer=settings.external_issuer,
            external_jwks_url=settings.external_jwks_url,
            external_audience=settings.external_audience,
            external_subject_claim=settings.external_subject_claim,
            external_token_typ=settings.external_token_typ,
            upstream_issuer=settings.upstream_oidc_issuer,
            upstream_client_id=settings.upstream_oidc_client_id,
            upstream_client_secret=settings.upstream_oidc_client_secret,
            upstream_subject_claim=settings.upstream_oidc_subject_claim,
            upstream_require_mfa=settings.upstream_oidc_require_mfa,
            search_rate_per_minute=settings.search_rate_per_minute,
            trawl_window_seconds=settings.trawl_window_minutes * 60,
            trawl_distinct_children=settings.trawl_distinct_children,
            trawl_burst_seconds=settings.trawl_burst_minutes * 60,
            trawl_burst_children=settings.trawl_burst_children,
            trusted_proxies=parse_proxies(settings.trusted_proxies),
            grant_localities=LocalityReach(settings.grant_localities),
        )

    @property
    def token_endpoint(self) -> str:
        """The token endpoint's URL (the audience of client assertions)."""
        return f"{self.issuer}/oauth/token"
