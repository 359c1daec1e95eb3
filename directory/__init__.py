"""The domain core and the app shell.

Import rule: the core modules (models, repository, service, errors, audit, db) import only the
standard library, pydantic and SQLModel/SQLAlchemy; api/, app.py and cli.py may import anything.
"""
