"""FHIR Bulk Data export (Bulk Data Access IG v2): kick-off, status, NDJSON files (issue #19).

    params   the kick-off's parameters (_outputFormat, _since, _type) and who may export which type
    jobs     the bulk_export rows: create (one running per client), poll, cancel, expire, interrupted
    worker   the background export: keyset-paged batches of children, each in its own short transaction
    routes   /fhir/$export, /fhir/Patient/$export, /fhir/Group/{id}/$export, status and file URLs, Group

(What the CapabilityStatement says of it is interop/bulk_capability.py, below interop.capability.)

Imports from auth, directory, interop.api.context and interop's mappers and picture; only
interop.wiring imports it (and mounts its routes before the reads).
"""
