"""Engines, the database clock and transaction retries for the study store.

SQLite (the default, ``sqlite:///hpsearch.db``) runs in WAL mode with a busy timeout and
foreign keys on; every write transaction starts with ``BEGIN IMMEDIATE`` so that
concurrent writers queue on the database lock instead of failing half-way with
"database is locked".  PostgreSQL is reached with psycopg 3 (``postgresql+psycopg://``;
plain ``postgresql://`` is rewritten to it).  Transactions that lose a lock race
(SQLite busy, PostgreSQL serialization failure or deadlock) are retried a bounded number
of times with jittered backoff.

Durability: SQLite runs with ``synchronous=NORMAL`` (WAL), so a commit survives a crash
of the process but an OS crash or power loss may lose the last moments of commits (the
file stays consistent); ``FULL`` would cost a disk flush per commit.  PostgreSQL keeps
its server settings (by default a commit is flushed to disk before it returns).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Double, Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from hpsearch.errors import HpsearchError, InvalidArgumentError, StorageError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a SQLite connection waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0
#: Attempts of one transaction that keeps losing lock races before StorageError.
MAX_TRANSACTION_ATTEMPTS = 8

WRITE_OPTION = "hpsearch_write"
_PG_RETRY_SQLSTATES = ("40001", "40P01")  # serialization_failure, deadlock_detected


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


def statements_watched(conn: Connection) -> bool:
    """Whether someone watches the engine's statements (``echo``, a cursor-execute event
    listener): then statements the store would send straight to the driver go through
    SQLAlchemy, so that they see them."""
    dispatch = conn.dispatch
    return bool(
        dispatch.before_cursor_execute or dispatch.after_cursor_execute or conn.engine.echo
    )


# -- transactions with retries --------------------------------------------------------------
def process_write_lock(engine: Engine) -> AbstractContextManager[Any] | None:
    """A lock that serializes this process's write transactions on a SQLite database.

    SQLite has one writer at a time anyway.  Threads that queue on a Python lock are
    handed the database as soon as it is free; threads that queue in SQLite's busy
    handler poll it with sleeps of up to 100 ms, which caps 32 threads at a fraction of
    one thread's rate.  Other processes still wait in the busy handler.  PostgreSQL
    locks rows, not the database: no lock there.  An in-memory SQLite database is one
    shared connection, so there every transaction, reads included, takes the lock.
    """
    return threading.Lock() if engine.dialect.name == "sqlite" else None


class WriteConnections:
    """Write connections kept open between transactions, for the group-commit leaders.

    Checking a connection out of SQLAlchemy's pool, setting its options and returning it
    (with the pool's reset) costs more than a SQLite commit; the leaders of
    :class:`GroupCommit` run back to back, so they keep theirs.  A connection is kept
    only after a transaction that ended normally, and for at most ``max_age`` seconds
    (it then goes back to the pool, which recycles it as configured); one
    whose transaction raised is closed, so that a retry gets another.
    """

    def __init__(self, engine: Engine, *, keep: int, max_age: float = 60.0) -> None:
        self._engine = engine
        self._keep = keep
        self._max_age = max_age
        self._lock = threading.Lock()
        self._free: list[tuple[Connection, float]] = []

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with self._lock:
            kept = self._free.pop() if self._free else None
        now = time.monotonic()
        if kept is not None and now - kept[1] > self._max_age:
            kept[0].close()
            kept = None
        if kept is None:
            kept = (write_connection(self._engine), now)
        try:
            yield kept[0]
        except BaseException:
            kept[0].close()
            raise
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(kept)
                return
        kept[0].close()

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for conn, _ in free:
            conn.close()


def write_connection(engine: Engine) -> Connection:
    """A connection for write transactions.  On PostgreSQL the driver is in autocommit
    mode and :func:`run_transaction` sends BEGIN itself, so that a guard's statements
    can go with it in one round trip (psycopg would send its own BEGIN alone)."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="AUTOCOMMIT", **{WRITE_OPTION: True})
    return conn.execution_options(**{WRITE_OPTION: True})


@dataclass(frozen=True, slots=True)
class Guard:
    """Run first in every write transaction (a fenced chief's check); raising fails every
    write of the transaction with that error.

    ``check(conn)`` runs as the transaction's first statements.  On PostgreSQL, when
    ``postgres_sql`` is set (statements without parameters), they are sent together with
    the BEGIN, in one round trip, and ``postgres_check(conn, rows)`` gets the rows of the
    last one instead; where someone watches the statements, ``check`` runs as elsewhere.
    """

    check: Callable[[Connection], None]
    postgres_sql: str | None = None
    postgres_check: Callable[[Connection, list[Any]], None] | None = None


class Opening(Protocol):
    """Statements that a PostgreSQL write transaction sends with its BEGIN (after the
    guard's), and that read their own results (see :class:`hpsearch.store.driver.Batch`)."""

    results: list[Any]  # what ``take`` made of them

    @property
    def count(self) -> int: ...  # how many statements (and results)

    def sql(self, conn: Connection) -> str: ...

    def take(self, conn: Connection, results: list[tuple[Any, list[Any]]]) -> None: ...

    def failed(self, conn: Connection) -> None: ...  # the query that held them failed


class BatchMissed(Exception):
    """A batch could not give every write its result: run its group the usual way."""


def _open_write(
    conn: Connection, guard: Guard | None, opening: Opening | None = None
) -> int | None:
    """Start a write transaction's work: on PostgreSQL send its BEGIN (the connection is in
    autocommit mode, see :func:`write_connection`) and ask for its transaction id, with the
    guard's statements when it has them and then ``opening``'s, in one round trip; then
    run the guard.  An opening that cannot go (SQLite, or someone watches the statements)
    raises BatchMissed.  Returns the transaction id (PostgreSQL), for
    :func:`_commit_status`."""
    if conn.dialect.name != "postgresql":
        if opening is not None:
            raise BatchMissed("statements go with BEGIN on PostgreSQL only")
        if guard is not None:
            guard.check(conn)  # after the BEGIN IMMEDIATE of the "begin" event
        return None
    if statements_watched(conn):
        if opening is not None:
            raise BatchMissed("someone watches the statements: they go one by one")
        conn.exec_driver_sql("BEGIN")  # let them see it
        if guard is not None:
            guard.check(conn)
        return None
    fused_sql = guard.postgres_sql if guard is not None else None
    fused_check = guard.postgres_check if guard is not None else None
    parts = ["BEGIN", "SELECT txid_current()"]
    if fused_sql and fused_check:
        parts.append(fused_sql)
    try:
        if opening is not None:
            parts.append(opening.sql(conn))
        results = driver_run(conn, "; ".join(parts))
    except DBAPIError:
        if opening is not None:
            opening.failed(conn)
        raise
    tail = opening.count if opening is not None else 0
    if fused_sql and fused_check:
        fused_check(conn, results[-1 - tail][1])
    elif guard is not None:
        guard.check(conn)
    if opening is not None:
        opening.take(conn, results[len(results) - tail :])
    return int(results[1][1][0][0])


def _commit_status(engine: Engine, xid: int, wait: float = 2.0) -> str | None:
    """What became of PostgreSQL transaction ``xid`` whose COMMIT lost its connection:
    ``"committed"``, ``"aborted"``, or None when the server cannot tell us (unreachable,
    or still in progress after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with engine.connect() as conn:
                status = conn.execute(text("SELECT txid_status(:xid)"), {"xid": xid}).scalar()
        except DBAPIError:
            status = None  # e.g. another pooled connection that died with it: try again
        if status in ("committed", "aborted"):
            return str(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def driver_run(conn: Connection, sql: str) -> list[tuple[Any, list[Any]]]:
    """Send ``sql`` (one or more statements, no parameters) on the driver's cursor; the
    description and rows of each statement, in order (no rows for one that returns none)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    results = []
    try:
        cursor.execute(sql, prepare=False)
        while True:
            description = cursor.description
            results.append((description, list(cursor.fetchall()) if description else []))
            if not cursor.nextset():
                return results
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn, exc, sql, (), cursor) from exc
    finally:
        cursor.close()


def driver_error(conn: Connection, exc: Any, sql: str, args: Any, cursor: Any) -> Exception:
    """What :meth:`Connection.execute` would raise for a driver error: a DBAPIError (the
    retry logic reads it), with a dead connection invalidated so that the pool drops it."""
    dialect = conn.dialect
    invalidated = dialect.is_disconnect(exc, conn.connection.driver_connection, cursor)
    if invalidated:
        conn.invalidate(exc)
    return DBAPIError.instance(
        sql,
        args,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=invalidated,
        dialect=dialect,
    )


def run_transaction(
    engine: Engine,
    fn: Callable[[Connection], T],
    *,
    write: bool,
    what: str = "transaction",
    write_lock: AbstractContextManager[Any] | None = None,
    connections: WriteConnections | None = None,
    guard: Guard | None = None,
    opening: Opening | None = None,
) -> T:
    """Run ``fn(conn)`` in one transaction and commit; retry it when it lost a lock race.

    ``fn`` may run more than once, so it must have no effect outside the connection.
    Database errors that are not lock races become StorageError with a hint.  A write
    transaction holds ``write_lock`` (see :func:`process_write_lock`) while it runs, on a
    connection from ``connections`` when given, else from the engine's pool, and runs
    ``guard`` first, then ``opening`` (PostgreSQL: sent with the BEGIN; see
    :func:`_open_write`).
    """
    delay = 0.005
    for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
        committing = False
        xid: int | None = None
        try:
            if not write and not is_memory_sqlite(engine.url):
                with engine.connect() as conn, conn.begin():
                    return fn(conn)
            if connections is not None:
                with write_lock or nullcontext(), connections.connection() as conn:
                    with conn.begin():
                        xid = _open_write(conn, guard, opening)
                        result = fn(conn)
                        committing = True
                    return result
            with write_lock or nullcontext(), write_connection(engine) as conn:
                with conn.begin():
                    xid = _open_write(conn, guard, opening)
                    result = fn(conn)
                    committing = True
                return result
        except PoolTimeoutError as exc:
            raise StorageError(
                f"database {what} on {safe_url(engine.url)} waited too long for a free "
                f"connection ({exc}); open the Store with a larger pool_size/max_overflow or "
                "run fewer threads"
            ) from exc
        except DBAPIError as exc:
            if committing and exc.connection_invalidated:
                # The connection died during COMMIT: the server may have committed.  Running
                # the transaction again could apply it twice (a second trial created), so
                # ask the server what became of it (PostgreSQL), else say so.
                status = None if xid is None else _commit_status(engine, xid)
                logger.warning(
                    "connection lost while committing what=%s xid=%s outcome=%s",
                    what,
                    xid,
                    status or "unknown",
                )
                if status == "committed":
                    return result
                if status != "aborted":
                    raise StorageError(
                        f"the connection to {safe_url(engine.url)} was lost while committing "
                        f"({what}): the change may or may not have been saved; check its "
                        "state (e.g. `hpsearch trials STUDY`) before repeating it"
                    ) from exc
            retry = is_retryable(exc)
            if not retry or attempt == MAX_TRANSACTION_ATTEMPTS:
                raise storage_error(exc, engine.url, what) from exc
            logger.info(
                "transaction retried what=%s attempt=%d reason=%s",
                what,
                attempt,
                _first_line(exc.orig),
            )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


_UNSET: Any = object()


class _Write:
    """One caller's write in the group-commit queue."""

    __slots__ = ("error", "fn", "group", "part", "result", "served", "what")

    def __init__(self, fn: Callable[[Connection], Any], what: str, part: Any) -> None:
        self.fn = fn
        self.what = what
        self.part = part  # the write as one statement, for a batch (None: it is not)
        self.served = threading.Lock()
        self.served.acquire()  # released by the leader that ran it, or to make it lead
        self.group: list[_Write] | None = None  # the group it is to lead, when handed one
        self.result: Any = _UNSET
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.error is not None or self.result is not _UNSET


class _WriteFailed(Exception):
    """One write of a group raised: the group is rolled back and run one by one."""


class GroupCommit:
    """Write transactions of concurrent threads, committed together.

    Up to ``keep_connections`` write connections stay open between groups
    (:class:`WriteConnections`).

    A caller that finds fewer than ``max_leaders`` groups running becomes a leader: it
    takes the writes queued so far (up to ``max_group``, its own included), runs them in
    one transaction, commits once, and hands each caller its own result; callers that
    arrive while every leader is busy queue up, and the first of them leads the next
    group.  One leader on SQLite (one writer at a time anyway); a few on PostgreSQL, where
    a group's commit waits for a disk flush and other groups can run meanwhile.

    Each caller still returns only after the commit that holds its write (a result is
    committed before the RPC that reported it returns), and the outcome of each write is
    what it would have been alone, run in that order.  What it saves: the per-transaction
    cost (pool checkout, BEGIN, COMMIT, on PostgreSQL a flush to disk per commit) is paid
    once per group, and threads no longer convoy on the database's write lock one
    transaction at a time.

    When any write of a group raises (a domain error, a constraint violation, a lost lock
    race inside it), the group is rolled back and its writes are run again one per
    transaction, so that each caller gets its own outcome; a write may therefore run more
    than once, which :func:`run_transaction` already asks of it.

    Where every write of a group also comes as one statement (``part``) and ``batch``
    is set (PostgreSQL: :class:`hpsearch.store.driver.Batch`), the group's statements
    are sent with its BEGIN in one round trip; when that cannot give every write its
    result, the transaction is rolled back before its commit and the group runs as above.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        write_lock: AbstractContextManager[Any] | None = None,
        max_group: int = 64,
        max_leaders: int = 1,
        keep_connections: int = 0,
    ) -> None:
        self._engine = engine
        self._write_lock = write_lock
        self.connections = WriteConnections(engine, keep=keep_connections)
        # Run first in every write transaction (a fenced chief's check).
        self.guard: Guard | None = None
        # Makes the Opening that sends a group's statements at once (None: never batch).
        self.batch: Callable[[list[Any]], Opening] | None = None
        self._max_group = max_group
        self._max_leaders = max_leaders
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._leaders = 0
        self.groups = 0  # transactions committed for groups (statistics)
        self.writes = 0  # writes run
        self.batched = 0  # writes run in batches (one round trip for a group's statements)

    def run(self, fn: Callable[[Connection], T], what: str, part: Any = None) -> T:
        """Run ``fn`` in a group's transaction; ``part``, when given, is the same write as
        one statement for a batch (see the class)."""
        write = _Write(fn, what, part)
        with self._mutex:
            self._queue.append(write)
            group = None
            if self._leaders < self._max_leaders:
                self._leaders += 1
                group = self._take(write)
        if group is None:
            write.served.acquire()  # until a leader ran it, or handed this thread a group
            group = write.group
        if group is not None:
            self._lead(group, write)
            with self._mutex:
                if self._queue:  # the next queued caller leads the next group
                    successor = self._queue[0]
                    successor.group = self._take(successor)
                    successor.served.release()
                else:
                    self._leaders -= 1
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[no-any-return]

    def _take(self, own: _Write) -> list[_Write]:
        """The next group, which holds ``own`` (the leader's write): the queue's first
        ``max_group`` writes, or ``own`` and the first ones before it.  Concurrent writes
        have no order among them; one caller has one write in flight at a time."""
        queue, size = self._queue, self._max_group
        window = queue[:size]
        if any(w is own for w in window):
            del queue[:size]
            return window
        queue.remove(own)
        group = [*queue[: size - 1], own]
        del queue[: size - 1]
        return group

    def _lead(self, group: list[_Write], own: _Write) -> None:
        try:
            self._run_group(group)
        finally:
            with self._mutex:
                self.groups += 1
                self.writes += len(group)
            for write in group:
                if not write.done:
                    write.error = StorageError(f"database {write.what} was interrupted")
                if write is not own:
                    write.served.release()

    def _transaction(
        self, fn: Callable[[Connection], T], what: str, opening: Opening | None = None
    ) -> T:
        return run_transaction(
            self._engine,
            fn,
            write=True,
            what=what,
            write_lock=self._write_lock,
            connections=self.connections,
            guard=self.guard,
            opening=opening,
        )

    def _run_group(self, group: list[_Write]) -> None:
        batch = self.batch
        if (
            batch is not None
            and len(group) > 1
            and all(write.part is not None for write in group)
            and self._run_batch(group, batch([write.part for write in group]))
        ):
            return
        if len(group) > 1:

            def body(conn: Connection) -> list[Any]:
                results = []
                for write in group:
                    try:
                        results.append(write.fn(conn))
                    except Exception as exc:
                        raise _WriteFailed from exc
                return results

            try:
                results = self._transaction(body, _group_what(group))
            except _WriteFailed:
                pass  # rolled back: run them one by one below
            except BaseException as exc:  # every caller gets the failure
                for write in group:
                    write.error = exc
                return
            else:
                for write, result in zip(group, results, strict=True):
                    write.result = result
                return
        for write in group:
            try:
                write.result = self._transaction(write.fn, write.what)
            except BaseException as exc:  # handed to its caller
                write.error = exc

    def _run_batch(self, group: list[_Write], opening: Opening) -> bool:
        """Run ``group`` as one batch; False when it must run the usual way (nothing of
        it was committed then)."""
        taken = False

        def body(conn: Connection) -> list[Any]:
            nonlocal taken
            taken = True  # the opening gave every write its result: next is the commit
            return opening.results

        try:
            results = self._transaction(body, _group_what(group), opening)
        except Exception as exc:
            if isinstance(exc, BatchMissed) or not taken:
                return False  # rolled back before any commit: the usual way decides
            for write in group:  # a commit failed: every caller gets the failure
                write.error = exc
            return True
        except BaseException as exc:
            for write in group:
                write.error = exc
            return True
        for write, result in zip(group, results, strict=True):
            write.result = result
        with self._mutex:
            self.batched += len(group)
        return True


def _group_what(group: list[_Write]) -> str:
    return f"{len(group)} writes ({group[0].what}, ...)"


def is_retryable(exc: DBAPIError) -> bool:
    """Whether a failed transaction lost a race and may succeed when run again."""
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _PG_RETRY_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return (
        "database is locked" in message
        or "database is busy" in message
        or ("database table is locked" in message)
    )


def storage_error(exc: BaseException, url: URL, what: str = "operation") -> HpsearchError:
    """A StorageError for a database failure, saying what to check; InvalidArgumentError
    for a value the database cannot hold (a NUL character in a text on PostgreSQL)."""
    orig = getattr(exc, "orig", None) or exc
    detail = _first_line(orig)
    where = safe_url(url)
    if "cannot contain NUL" in detail:
        return InvalidArgumentError(
            "a text value (a name, an id, a message or a tag) contains a NUL character "
            "(\\x00), which PostgreSQL cannot store: remove it"
        )
    if url.get_backend_name() == "sqlite":
        if "unable to open database file" in detail or "readonly" in detail:
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


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
