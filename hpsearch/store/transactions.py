"""Transactions with retries, and what became of a commit whose connection was lost.

:func:`run_transaction` runs a function in one transaction and commits.  Transactions that
lose a lock race (SQLite busy, PostgreSQL serialization failure or deadlock) are retried a
bounded number of times with jittered backoff.  When the connection dies during COMMIT the
server may have committed, and running the transaction again could apply it twice: on
PostgreSQL the transaction's id, asked for with its BEGIN, lets the server say whether it
committed (``txid_status``).  A write transaction runs a :class:`Guard` first (a fenced
chief's check) and may send an :class:`Opening` (a group's statements) with its BEGIN.

Separate from :mod:`hpsearch.store.engine` (setting a database up, once) because this runs
per transaction; :mod:`hpsearch.store.group_commit` builds on it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from hpsearch.errors import StorageError
from hpsearch.store.driver import BatchMissed, driver_run, statements_watched
from hpsearch.store.engine import (
    WRITE_OPTION,
    first_line,
    is_memory_sqlite,
    safe_url,
    storage_error,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of one transaction that keeps losing lock races before StorageError.
MAX_TRANSACTION_ATTEMPTS = 8

_PG_RETRY_SQLSTATES = ("40001", "40P01")  # serialization_failure, deadlock_detected


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
                first_line(exc.orig),
            )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


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
