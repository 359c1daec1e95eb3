"""Matching engine and search backends. Imports directory models only through the port; only elasticsearch.py imports the Elasticsearch client."""
