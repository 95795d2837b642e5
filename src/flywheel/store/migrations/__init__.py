"""Alembic migrations for the store, configured in code (no alembic.ini). See README.md."""
