"""The FHIR R4 REST surface under /fhir: the routes (routes.py) and Subscriptions (subscription.py)."""
