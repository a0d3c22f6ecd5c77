"""Hot-path statements compiled once and run on the DBAPI connection.

A trial's life (create it RUNNING, report a measurement, complete it) is six small
statements; through :meth:`sqlalchemy.engine.Connection.execute` each one costs far more
Python than SQLite takes to run it (the compiled-cache lookup, an execution context,
event dispatch, a ``Result`` and its row objects), and the chief is bound by one core's
worth of Python.  A :class:`DriverStatement` is the same SQLAlchemy statement, compiled
once for the engine's dialect; executing it converts the parameters with the types'
own bind processors, runs the SQL string on the driver's cursor inside the caller's
transaction (the SQLAlchemy connection that began it) and converts the returned columns
with the types' own result processors.  The SQL is exactly what SQLAlchemy would send.

The helpers that send SQL on the driver's cursor (:func:`driver_run`, :func:`driver_error`,
:func:`statements_watched`) and :class:`BatchMissed` live here as well: this module is the
store's lowest layer, which the engine set-up, the transactions and group commit import,
never the other way round.
"""

from __future__ import annotations

import hashlib
import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ClauseElement

#: Where a connection's record (SQLAlchemy's ``connection.info``, kept as long as the
#: DBAPI connection) lists the statements prepared on it for batches.
PREPARED_KEY = "hpsearch_prepared"
_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")


class DriverStatement:
    """One statement, compiled for ``dialect``, run on the DBAPI cursor."""

    __slots__ = (
        "_columns",
        "_defaults",
        "_execute",
        "_names",
        "_order",
        "_prepare",
        "_processors",
        "_results",
        "_row",
        "name",
        "sql",
        "statement",
    )

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        self.statement = statement
        compiled: Any = statement.compile(dialect=dialect)  # an SQLCompiler
        self.sql = compiled.string
        self.name = "hpsearch_" + hashlib.sha1(self.sql.encode()).hexdigest()[:16]
        # The same statement as PREPARE / EXECUTE with $1, $2, ... (pyformat dialects).
        order: list[str] = []

        def numbered(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "%"
            if name not in order:
                order.append(name)
            return f"${order.index(name) + 1}"

        self._prepare = f"PREPARE {self.name} AS {_PYFORMAT.sub(numbered, self.sql)}"
        self._order = tuple(order)
        self._execute = f"EXECUTE {self.name}({', '.join(['%s'] * len(order))})"
        # Literal values of the statement (``state = 'RUNNING'``) are bind parameters
        # with a value; the caller's ``b_*`` parameters are the ones without.
        self._defaults = dict(compiled.params)
        self._names: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            if name in self._defaults:
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
        self._processors = processors
        self._columns = list(getattr(statement, "exported_columns", ()) or ())
        # Built at the first execution, from the cursor's column types (PostgreSQL's
        # numeric result processors depend on them).
        self._results: tuple[Callable[[Any], Any] | None, ...] | None = None
        self._row: Any = (
            namedtuple("Row", [c.key for c in self._columns], rename=True)  # type: ignore[misc]
            if self._columns
            else None
        )

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Run with ``params`` in ``conn``'s transaction; the returned rows, if any.

        Where someone watches the engine's statements (``echo``, a cursor-execute event
        listener), the statement goes through SQLAlchemy instead, so they see it.
        """
        if statements_watched(conn):
            result = conn.execute(self.statement, params)  # type: ignore[call-overload]
            return list(result) if result.returns_rows else []
        args = self._args(params)
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            cursor.execute(self.sql, args)
            rows = cursor.fetchall() if self._row is not None else []
            description = cursor.description
        except conn.dialect.loaded_dbapi.Error as exc:
            raise driver_error(conn, exc, self.sql, args, cursor) from exc
        finally:
            cursor.close()
        return self.convert(conn, description, rows)

    @property
    def prepare_sql(self) -> str:
        """``PREPARE`` of this statement, for :meth:`execute_sql` (PostgreSQL)."""
        return self._prepare

    def execute_sql(self, client_cursor: Any, params: Mapping[str, Any]) -> str:
        """``EXECUTE`` of the prepared statement with ``params`` rendered in as literals by
        the driver's own quoting (psycopg's ``ClientCursor.mogrify``), to be sent with
        others in one query (PostgreSQL)."""
        args = self._args(params)
        return str(client_cursor.mogrify(self._execute, [args[name] for name in self._order]))

    def convert(self, conn: Connection, description: Any, rows: Iterable[Any]) -> list[Any]:
        """Rows the driver returned for this statement, as SQLAlchemy would give them."""
        if self._row is None:
            return []
        if self._results is None:
            dialect = conn.dialect
            self._results = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, described[1])
                for column, described in zip(self._columns, description, strict=True)
            )
        return [self._convert(raw) for raw in rows]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first returned row, or None."""
        rows = self.execute(conn, params)
        return rows[0] if rows else None

    def _args(self, params: Mapping[str, Any]) -> Any:
        values = {**self._defaults, **params}
        for name, processor in self._processors.items():
            values[name] = processor(values[name])
        return values if self._names is None else [values[n] for n in self._names]

    def _convert(self, raw: Iterable[Any]) -> Any:
        return self._row._make(
            value if processor is None else processor(value)
            for value, processor in zip(raw, self._results or (), strict=True)
        )


class BatchPart(NamedTuple):
    """One write of a :class:`Batch`: a statement, its parameters, and what makes the
    write's result of the statement's first row."""

    statement: DriverStatement
    params: Mapping[str, Any]
    finish: Callable[[Any], Any]


class Batch:
    """A group's writes sent at once, with the transaction's BEGIN (PostgreSQL).

    Each write of the group is one statement whose first returned row gives its result
    (create a RUNNING trial, add a measurement, complete a trial).  The statements are
    prepared on the connection once (``PREPARE hpsearch_<hash> AS ...``, outside any
    transaction); the group's ``EXECUTE`` statements, their parameters rendered in by
    psycopg's own quoting, go in the simple query that opens the transaction
    (:func:`hpsearch.store.transactions.run_transaction`): one round trip for the group's
    statements instead of one each, and no new plan for any of them.  They run in order in
    one transaction, as they would one by one.  Where a statement returns no row (the
    write is refused or replayed, which asks for more statements) the batch raises
    :class:`BatchMissed` and the group runs the usual way.
    """

    __slots__ = ("parts", "results")

    def __init__(self, parts: Sequence[BatchPart]) -> None:
        self.parts = parts
        self.results: list[Any] = []

    @property
    def count(self) -> int:
        return len(self.parts)

    def sql(self, conn: Connection) -> str:
        """The EXECUTEs of the group's statements; those not yet prepared on ``conn`` are
        prepared first (once per connection, outside the transaction)."""
        import psycopg  # the batch is for PostgreSQL only

        prepared = _prepared(conn)
        missing = {
            part.statement.name: part.statement.prepare_sql
            for part in self.parts
            if part.statement.name not in prepared
        }
        if missing:
            driver_run(conn, "; ".join(missing.values()))
            prepared.update(missing)
        driver = conn.connection.driver_connection
        assert driver is not None
        with psycopg.ClientCursor(driver) as client:
            return "; ".join(
                part.statement.execute_sql(client, part.params) for part in self.parts
            )

    def failed(self, conn: Connection) -> None:
        """The batch's query failed: read what ``conn`` has prepared afresh next time (a
        connection that was lost starts with a new record anyway)."""
        if not conn.invalidated:
            conn.connection.info.pop(PREPARED_KEY, None)

    def take(self, conn: Connection, results: Sequence[tuple[Any, list[Any]]]) -> None:
        """Read the statements' results (description and rows of each, in order)."""
        outcomes = []
        for part, (description, rows) in zip(self.parts, results, strict=True):
            converted = part.statement.convert(conn, description, rows)
            if not converted:
                raise BatchMissed(part.statement.sql)
            outcomes.append(part.finish(converted[0]))
        self.results = outcomes


class BatchMissed(Exception):
    """A batch could not give every write its result: run its group the usual way."""


def _prepared(conn: Connection) -> set[str]:
    """The batch statements prepared on ``conn``'s DBAPI connection: kept in its record,
    read from the server the first time (and after a failed batch)."""
    info = conn.connection.info
    prepared: set[str] | None = info.get(PREPARED_KEY)
    if prepared is None:
        rows = driver_run(
            conn, "SELECT name FROM pg_prepared_statements WHERE name LIKE 'hpsearch\\_%'"
        )[-1][1]
        prepared = info[PREPARED_KEY] = {row[0] for row in rows}
    return prepared


# -- the driver's cursor, for every layer of the store --------------------------------------
def statements_watched(conn: Connection) -> bool:
    """Whether someone watches the engine's statements (``echo``, a cursor-execute event
    listener): then statements the store would send straight to the driver go through
    SQLAlchemy, so that they see them."""
    dispatch = conn.dispatch
    return bool(
        dispatch.before_cursor_execute or dispatch.after_cursor_execute or conn.engine.echo
    )


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


__all__ = [
    "Batch",
    "BatchMissed",
    "BatchPart",
    "DriverStatement",
    "driver_error",
    "driver_run",
    "statements_watched",
]
