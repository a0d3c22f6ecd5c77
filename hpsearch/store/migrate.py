"""Schema migrations: the Alembic revisions shipped in ``hpsearch/store/migrations``.

No ``alembic.ini`` is needed: the configuration is built here.  ``upgrade(url)`` is what
``hpsearch db upgrade --storage URL`` runs; a Store applies it by itself only to a new,
empty database.  Every migration runs in one transaction holding the database's write
lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so processes that
open a new database at the same time do not race each other.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import URL, Connection

from hpsearch.errors import StorageError
from hpsearch.store.engine import make_engine, safe_url
from hpsearch.store.transactions import run_transaction

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The newest revision in ``migrations/versions`` (a test keeps the two equal).  Opening a
#: Store compares the database with this constant, so that it need not import Alembic
#: (a second of start-up) unless there is something to migrate.
HEAD_REVISION = "0004"
# An arbitrary constant: the key of the PostgreSQL advisory lock taken while migrating.
_PG_MIGRATION_LOCK = 7_341_020_118


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest schema revision this version of hpsearch knows (read from the scripts)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(url: str | URL) -> str | None:
    """The schema revision of the database at ``url`` (None for an empty database)."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        return run_transaction(engine, _read_revision, write=False, what="revision check")
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply the migrations up to ``revision``; returns (revision before, revision after).

    Idempotent: a database already at the target is left alone.
    """
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def downgrade(url: str | URL, revision: str) -> tuple[str | None, str | None]:
    """Revert the schema to ``revision`` (``"base"`` drops every hpsearch table)."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        return _migrate(engine, "downgrade", revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """:func:`upgrade` on an existing engine."""
    return _migrate(engine, "upgrade", revision)


def ensure_schema(engine: Engine, *, upgrade: bool) -> str:
    """Check the database's revision when a Store opens it; migrate a new, empty one.

    StorageError when the database is at another revision than this code's head, when it
    holds foreign tables, or when it is empty and ``upgrade`` is False.
    """
    head = HEAD_REVISION
    # The tables first, then the revision: PostgreSQL reads each statement at its own
    # snapshot, and a migration that another process commits in between (tables and
    # revision together) must not look like tables without a revision.
    has_studies, current = run_transaction(
        engine,
        lambda conn: (_has_table(conn, "studies"), _read_revision(conn)),
        write=False,
        what="revision check",
    )
    if current == head:
        return head
    where = safe_url(engine.url)
    if current is None and not has_studies:
        if not upgrade:
            raise StorageError(
                f"the database {where} has no hpsearch schema yet; run "
                f"`hpsearch db upgrade --storage {where}` to create it"
            )
        before, after = upgrade_engine(engine)
        logger.info("schema created url=%s before=%s after=%s", where, before, after)
        return head
    if current is None:
        raise StorageError(
            f"the database {where} has a 'studies' table but no hpsearch schema revision; it "
            "was not created by hpsearch: point --storage at another database"
        )
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(current)
    except Exception as exc:
        raise StorageError(
            f"the database {where} is at schema revision {current}, which this version of "
            f"hpsearch (head {head}) does not know; upgrade hpsearch, or use another database"
        ) from exc
    raise StorageError(
        f"the database {where} is at schema revision {current}, older than this version of "
        f"hpsearch needs ({head}); run `hpsearch db upgrade --storage {where}` (back it up first)"
    )


def _read_revision(conn: Connection) -> str | None:
    """The revision in alembic_version (what Alembic's MigrationContext reads), or None."""
    if not _has_table(conn, "alembic_version"):
        return None
    revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(revisions) > 1:
        raise StorageError(
            f"the database {safe_url(conn.engine.url)} has several schema heads "
            f"{sorted(revisions)}; hpsearch expects one: repair alembic_version"
        )
    return revisions[0] if revisions else None


def _has_table(conn: Connection, name: str) -> bool:
    return inspect(conn).has_table(name)


def _migrate(engine: Engine, direction: str, revision: str) -> tuple[str | None, str | None]:
    def body(conn: Connection) -> tuple[str | None, str | None]:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        before = _read_revision(conn)
        if (
            direction == "upgrade"
            and revision in ("head", HEAD_REVISION)
            and (before == HEAD_REVISION)
        ):
            return before, before  # e.g. another process migrated it while we waited
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = conn
        if direction == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
        return before, _read_revision(conn)

    where = safe_url(engine.url)
    before, after = run_transaction(engine, body, write=True, what=f"schema {direction}")
    if before != after:
        logger.info(
            "schema migrated url=%s direction=%s from=%s to=%s", where, direction, before, after
        )
    return before, after
