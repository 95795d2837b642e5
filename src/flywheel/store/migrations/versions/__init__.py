"""Migration scripts: one Alembic branch per domain (see ../README.md)."""
