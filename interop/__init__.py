"""FHIR R4 surface and outbound FHIR clients.

Import rule: mappers are pure functions (no I/O); interop may import directory, search and auth,
and nothing imports interop except directory/app.py.
"""
