"""FHIR R4 surface and outbound FHIR clients. Mappers are pure functions; may import directory, search and auth."""
