"""Alembic environment for the flywheel store.

Configured in code by flywheel.store.db (no alembic.ini): the caller passes an open Connection, already inside
a transaction that holds the migration lock, as `config.attributes["connection"]`.

Convention: ONE BRANCH PER DOMAIN. Each domain's first migration has `down_revision = None` and
`branch_labels = ("<domain>",)`; later ones chain on their own domain; revision id = file stem
(e.g. "0001_tracing"). Store.open upgrades to "heads". Details in README.md next to this file.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only flywheel.store.db runs this environment
    raise RuntimeError("flywheel migrations run through flywheel.store.Store.open(), not the alembic CLI")

context.configure(connection=connection, target_metadata=None, render_as_batch=True,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
