"""Matching engine and search backends.

Import rule (each part an import-linter contract in pyproject.toml):
- The engine (port, normalise, nicknames, criteria, blocking, fields, scoring, matching, quality)
  imports of the directory only its identifier rules (directory.identifiers), and no backend,
  database or web framework.
- The backends (tables, embedded, resident, elasticsearch) turn blocking keys into candidates
  and never score; of the directory they import only its database plumbing (directory.db).
- The bridge from the directory's outbox (projection, indexer) reads the directory's models;
  only search.api, the search route, uses its services, repository, audit log, request plumbing
  and FastAPI.
- Only search/elasticsearch.py imports the Elasticsearch client, and only search/resident/
  imports numpy (loaded when a process starts a resident copy of the embedded index).
- No import circle between search's modules (search.embedded starts search.resident; the
  resident copy reads the tables from search.tables).
"""
