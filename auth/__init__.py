"""OAuth 2.0 authorization and resource server, access grants, purpose of use.

Import rule (each part an import-linter contract in pyproject.toml):
- auth uses the directory's models, errors, audit log, database plumbing and request plumbing
  (directory.http), never its services, repository or permissions: auth decides who is calling
  and under which grant, the domain what they may do to a record. The domain core never imports
  auth (the layers contract).
- Only the composition root installs auth (auth.wiring.install) and mounts its routes
  (auth.server, auth.admin); FHIR and the pages use its request dependencies (auth.deps) and
  route policies (auth.policy).
- No import circle between auth's modules: the resource server (auth.deps) imports the policies
  (auth.policy), never the reverse; what both servers share is in auth.state and auth.actors.
"""
