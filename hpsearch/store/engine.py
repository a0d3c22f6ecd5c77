"""Engines, storage URLs, the database clock and storage errors for the study store.

SQLite (the default, ``sqlite:///hpsearch.db``) runs in WAL mode with a busy timeout and
foreign keys on; every write transaction starts with ``BEGIN IMMEDIATE`` so that
concurrent writers queue on the database lock instead of failing half-way with
"database is locked".  PostgreSQL is reached with psycopg 3 (``postgresql+psycopg://``;
plain ``postgresql://`` is rewritten to it).

Durability: SQLite runs with ``synchronous=NORMAL`` (WAL), so a commit survives a crash
of the process but an OS crash or power loss may lose the last moments of commits (the
file stays consistent); ``FULL`` would cost a disk flush per commit.  PostgreSQL keeps
its server settings (by default a commit is flushed to disk before it returns).

This module sets a database up; what runs per transaction is elsewhere:
:mod:`hpsearch.store.transactions` (retries, a commit whose connection was lost) and
:mod:`hpsearch.store.group_commit` (concurrent writes committed together).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Double, Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from hpsearch.errors import HpsearchError, InvalidArgumentError, StorageError
from hpsearch.store.driver import statements_watched

#: Seconds a SQLite connection waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0

#: The execution option of a write connection: SQLite's "begin" event below starts its
#: transactions with BEGIN IMMEDIATE (see :func:`hpsearch.store.transactions.write_connection`).
WRITE_OPTION = "hpsearch_write"


# -- the database clock ----------------------------------------------------------------------
class db_now(FunctionElement[float]):
    """The database clock as epoch seconds (a float), compiled per dialect.

    SQLite: ``julianday('now')`` (millisecond resolution).  PostgreSQL:
    ``clock_timestamp()``, the wall clock at evaluation time rather than the start of the
    transaction, so a lease compared in a long transaction is still compared with now.
    """

    type = Double()
    inherit_cache = True
    name = "hpsearch_db_now"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _db_now_postgresql(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(db_now)
def _db_now_default(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    raise StorageError(
        f"hpsearch supports SQLite and PostgreSQL only, not {compiler.dialect.name}; "
        "use sqlite:///path.db or postgresql+psycopg://user@host/db"
    )


# -- URLs and engines ---------------------------------------------------------------------------
def normalize_url(url: str | URL) -> URL:
    """Parse a storage URL; ``postgresql://`` and ``postgres://`` become psycopg 3 URLs.

    StorageError for a URL that is not SQLite or PostgreSQL.
    """
    text = str(url) if isinstance(url, URL) else url.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except ArgumentError as exc:
        raise StorageError(
            f"storage URL {text!r} is not a database URL; use sqlite:///path/to/file.db or "
            "postgresql+psycopg://user:password@host:5432/database"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise StorageError(
                f"storage URL driver {parsed.drivername!r} is not supported; "
                "use postgresql+psycopg://... (psycopg 3)"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise StorageError(
                f"storage URL driver {parsed.drivername!r} is not supported; use sqlite:///path.db"
            )
        return parsed
    raise StorageError(
        f"storage URL {safe_url(parsed)!r} names {backend!r}; hpsearch stores studies in SQLite "
        "(sqlite:///path.db) or PostgreSQL (postgresql+psycopg://user@host/db)"
    )


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return (url if isinstance(url, URL) else make_url(url)).render_as_string(
            hide_password=True
        )
    except ArgumentError:
        return "<unparseable URL>"


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 8,
    max_overflow: int = 40,
    sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT_S,
) -> Engine:
    """An engine for a storage URL, configured for many threads and short transactions.

    A SQLite file's parent directories are created.  ``pool_size + max_overflow`` bounds
    the connections one process opens (48 by default: enough for 32+ RPC threads).
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            busy_timeout=sqlite_busy_timeout,
        )
    try:
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=60,
            pool_recycle=1800,
        )
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise StorageError(
            f"cannot use {safe_url(parsed)}: {exc}; "
            "install psycopg 3 (pip install 'psycopg[binary]')"
        ) from exc
    return engine


def _sqlite_engine(url: URL, *, pool_size: int, max_overflow: int, busy_timeout: float) -> Engine:
    connect_args: dict[str, Any] = {"timeout": busy_timeout, "check_same_thread": False}
    if is_memory_sqlite(url):
        # One shared connection: an in-memory database exists once per connection.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        path = Path(url.database or "").expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the directory {str(path.parent)!r} for the SQLite database "
                f"{str(path)!r}: {exc.strerror or exc}; choose a writable path with --storage"
            ) from exc
        if str(path) != url.database:
            url = url.set(database=str(path))  # sqlite3 does not expand "~"
        engine = create_engine(
            url,
            connect_args=connect_args,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=60,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" event below issues BEGIN
        # itself, so pysqlite never starts a deferred transaction behind our back.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if not is_memory_sqlite(url):
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    driver_error = engine.dialect.loaded_dbapi.Error

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front: waiting for it is governed by
        # busy_timeout.  A deferred transaction that upgrades to a writer later fails with
        # SQLITE_BUSY at once in WAL mode; that is the "database is locked" we avoid.
        statement = (
            "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN"
        )
        if statements_watched(conn):
            conn.exec_driver_sql(statement)  # someone watches the statements: let them see it
            return
        # Straight to the driver (hot path: once per transaction).  A lock timeout is still
        # the DBAPIError that run_transaction retries.
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            driver.execute(statement)
        except driver_error as exc:
            raise DBAPIError.instance(
                statement, (), exc, driver_error, dialect=conn.dialect
            ) from exc

    return engine


# -- the process write lock and storage errors ----------------------------------------------
def process_write_lock(engine: Engine) -> AbstractContextManager[Any] | None:
    """A lock that serializes this process's write transactions on a SQLite database.

    SQLite has one writer at a time anyway.  Threads that queue on a Python lock are
    handed the database as soon as it is free; threads that queue in SQLite's busy
    handler poll it with sleeps of up to 100 ms, so many threads together write more
    slowly than one alone (measured: benchmarks/results/design_figures.md, "A process
    write lock for SQLite").  Other processes still wait in the busy handler.
    PostgreSQL locks rows, not the database: no lock there.  An in-memory SQLite
    database is one shared connection, so there every transaction, reads included,
    takes the lock.
    """
    return threading.Lock() if engine.dialect.name == "sqlite" else None


def storage_error(exc: BaseException, url: URL, what: str = "operation") -> HpsearchError:
    """A StorageError for a database failure, saying what to check; InvalidArgumentError
    for a value the database cannot hold (a NUL character in a text on PostgreSQL)."""
    orig = getattr(exc, "orig", None) or exc
    detail = first_line(orig)
    where = safe_url(url)
    if "cannot contain NUL" in detail:
        return InvalidArgumentError(
            "a text value (a name, an id, a message or a tag) contains a NUL character "
            "(\\x00), which PostgreSQL cannot store: remove it"
        )
    if url.get_backend_name() == "sqlite":
        if "disk is full" in detail:
            hint = (
                "free space on the disk that holds the file (what is committed is kept; "
                "writes go on once there is room)"
            )
        elif "unable to open database file" in detail or "readonly" in detail:
            hint = "check that the path exists and is writable, or pass another --storage"
        elif "locked" in detail or "busy" in detail:
            hint = "another process held the database too long; retry, or use PostgreSQL"
        else:
            hint = "check the file, or run `hpsearch db upgrade --storage URL`"
    else:
        lowered = detail.lower()
        if "connection" in lowered or "connect" in lowered or "server" in lowered:
            return StorageError(
                f"cannot reach the database {where}: {detail}; is PostgreSQL running and "
                "reachable? check host, port, user, password and database in --storage "
                "(or $HPSEARCH_STORAGE)"
            )
        elif "does not exist" in lowered and ("relation" in lowered or "column" in lowered):
            hint = f"run `hpsearch db upgrade --storage {where}`"
        else:
            hint = "check the database server's log"
    return StorageError(f"database {what} failed on {where}: {detail}; {hint}")


def first_line(exc: object) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
