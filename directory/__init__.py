"""The domain core and the app shell. The core modules (models, repository, service, errors, audit, db) import only the standard library, pydantic and SQLModel/SQLAlchemy."""
