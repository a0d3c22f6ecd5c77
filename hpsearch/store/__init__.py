"""The study store: SQLAlchemy 2 models, transactions and Alembic migrations.

``Store(url)`` (or ``open_store(url)``) opens SQLite (default ``sqlite:///hpsearch.db``)
or PostgreSQL (``postgresql+psycopg://user@host/db``; ``postgresql://`` works too) and
returns the value types of :mod:`hpsearch.records`.  ``upgrade(url)`` applies the schema
migrations (``hpsearch db upgrade --storage URL``); a Store does so by itself only for a
new, empty database, and refuses a database at another revision with a StorageError.

Modules: ``api`` (the Store), ``sql`` (its statements, prepared once per dialect),
``reads`` (the dashboard's read-only statements, next to the schema they read),
``models`` (the typed tables), ``engine`` (engines, URLs, the database clock ``db_now``,
storage errors), ``transactions`` (retries, a commit whose connection was lost),
``group_commit`` (concurrent writes committed together), ``driver`` (statements run on
the DBAPI cursor, batches), ``migrate`` and ``migrations/`` (Alembic, no alembic.ini
needed).

Tables: ``studies`` (config JSON, state, the trial-number counter), ``trials`` (state,
params, attempt, lease holder and expiry on the database clock, value, metrics, tags),
``trial_attempts`` (one row per lease: RUNNING, COMPLETED, FAILED, LOST or STOPPED),
``measurements`` (unique per trial, attempt and step) and ``workers``.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from hpsearch.store.api import DEFAULT_URL, Store
from hpsearch.store.engine import normalize_url, safe_url
from hpsearch.store.migrate import current_revision, downgrade, head_revision, upgrade


def open_store(url: str | URL = DEFAULT_URL, *, upgrade: bool = True) -> Store:
    """Open the store at ``url`` (a new, empty database gets the schema when ``upgrade``)."""
    return Store(url, upgrade=upgrade)


__all__ = [
    "DEFAULT_URL",
    "Store",
    "current_revision",
    "downgrade",
    "head_revision",
    "normalize_url",
    "open_store",
    "safe_url",
    "upgrade",
]
