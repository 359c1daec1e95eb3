"""The built-in authorization server under /oauth, and its metadata under /.well-known: one module
per endpoint family, one router for them all (`router`, which auth.wiring installs).

- token.py: the token endpoint's three grants (client_credentials, authorization_code with PKCE
  S256 only, refresh_token rotated on every use), RFC 7009 revocation, RFC 7662 introspection;
- authorize.py: the authorization endpoint and our sign-in form (password + TOTP);
- upstream.py: sign-in through the authority's OpenID Connect provider;
- signin.py: what both ways of signing in share (the request check, the code sent back, pages);
- metadata.py: RFC 8414 metadata, the SMART configuration and the JWKS;
- common.py: the OAuth error and token responses and the small checks every family uses.

Route names and paths are what auth/policy.py and the tests name.
"""

from __future__ import annotations

from fastapi import APIRouter

from auth.server import authorize, metadata, token, upstream
from auth.server.common import oauth_error_response as oauth_error_response

router = APIRouter()
for family in (token, authorize, upstream, metadata):  # the routes' order as they were declared
    router.include_router(family.router)
