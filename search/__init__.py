"""Matching engine and search backends.

Import rule: search/ imports the directory only through the port (search.port); only
search/elasticsearch.py imports the Elasticsearch client, and only search/resident.py imports
numpy (loaded when a process starts a resident copy of the embedded index).
"""
