"""Alembic environment of the hpsearch store.

Run through :mod:`hpsearch.store.migrate` (``hpsearch db upgrade --storage URL``), which
passes an open connection inside a transaction in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from hpsearch.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "hpsearch migrations run through `hpsearch db upgrade --storage URL` "
        "(hpsearch.store.upgrade), not the alembic command line"
    )

context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
