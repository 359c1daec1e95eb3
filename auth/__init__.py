"""OAuth 2.0 authorization and resource server, access grants, purpose of use. May import directory; never imported by the domain core."""
