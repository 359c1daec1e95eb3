"""The domain core: the models, the use cases (service/), who may do what (permissions), the
repository, the audit rules and the storage they run on; and http/, the request plumbing
(session, actor, purpose, problem details) that every adapter above may import.

Import rules (import-linter checks each: pyproject.toml):
- the directory imports no package above it (childindex, interop, auth, search);
- it imports only the standard library, pydantic and SQLModel/SQLAlchemy (no other library the
  project depends on), but for http/, which may also import FastAPI, Starlette and anyio;
- only the adapters above import http/: the core never does;
- no import circles between its modules or its packages.
"""
