"""The store (layer 1): SQLAlchemy 2 over SQLite (WAL) or PostgreSQL, Alembic migrations, background writer."""

from flywheel.store.db import Store, load_schemas, schema_diff
from flywheel.store.writer import BatchWorker, Writer

__all__ = ["BatchWorker", "Store", "Writer", "load_schemas", "schema_diff"]
