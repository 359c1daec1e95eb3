"""OAuth 2.0 authorization and resource server, access grants, purpose of use.

Import rule: auth may import directory (models, audit, api deps); the domain core never
imports auth. Only directory/app.py wires it in (auth.wiring.install).
"""
