"""What the authorization server publishes about itself: RFC 8414 metadata, the SMART App Launch
configuration and the public signing keys (JWKS)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auth import openapi as doc
from auth.config import CLIENT_ASSERTION_ALGS, SUPPORTED_SCOPES
from auth.state import AuthState, auth_state

router = APIRouter(tags=["oauth"])


def _metadata(state: AuthState) -> dict[str, Any]:
    issuer = state.cfg.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "authorization_response_iss_parameter_supported": True,
    }


@router.get(
    "/.well-known/oauth-authorization-server",
    name="oauth_metadata",
    openapi_extra=doc.public_json("Authorization server metadata (RFC 8414)"),
)
def oauth_metadata(request: Request) -> JSONResponse:
    """Authorization server metadata (RFC 8414)."""
    return JSONResponse(_metadata(auth_state(request)))


@router.get(
    "/fhir/.well-known/smart-configuration",
    name="fhir_smart_configuration",
    openapi_extra=doc.public_json("SMART App Launch configuration, at the FHIR base as SMART requires"),
)
@router.get(
    "/.well-known/smart-configuration",
    name="smart_configuration",
    openapi_extra=doc.public_json("SMART App Launch configuration"),
)
def smart_configuration(request: Request) -> JSONResponse:
    """SMART App Launch / Backend Services configuration."""
    meta = _metadata(auth_state(request))
    meta["capabilities"] = [
        "client-confidential-asymmetric",
        "client-confidential-symmetric",
        "client-public",
        "permission-v2",
        "launch-standalone",
    ]
    return JSONResponse(meta)


@router.get("/oauth/jwks", name="oauth_jwks", openapi_extra=doc.public_json("The public signing keys (JWKS)"))
def oauth_jwks(request: Request) -> JSONResponse:
    """The public keys that verify our access tokens."""
    return JSONResponse(auth_state(request).keys.jwks())
