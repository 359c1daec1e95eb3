"""FHIR R4 surface and outbound FHIR clients.

Import rules (import-linter checks each, see pyproject.toml):
- interop may import directory, search and auth; only the composition root (childindex) imports
  interop.
- Inside interop, modules stand in layers, each importing only those below it: wiring; api;
  capability | picture | notify | pds | openapi | repository; params; outcome; mapping; systems
  (ndjson.py, the FHIR NDJSON reader that `childindex import` uses, stands apart).
- Mappers (interop.mapping) are pure functions: no session, query, service, audit or HTTP client.
"""
