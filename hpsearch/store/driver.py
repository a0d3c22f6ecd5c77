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
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.elements import ClauseElement

from hpsearch.store.engine import driver_error, statements_watched


class DriverStatement:
    """One statement, compiled for ``dialect``, run on the DBAPI cursor."""

    __slots__ = (
        "_columns",
        "_defaults",
        "_names",
        "_processors",
        "_results",
        "_row",
        "sql",
        "statement",
    )

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        self.statement = statement
        compiled: Any = statement.compile(dialect=dialect)  # an SQLCompiler
        self.sql = compiled.string
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
        values = {**self._defaults, **params}
        for name, processor in self._processors.items():
            values[name] = processor(values[name])
        args: Any = values if self._names is None else [values[n] for n in self._names]
        driver = conn.connection.driver_connection
        assert driver is not None
        dialect = conn.dialect
        cursor = driver.cursor()
        try:
            cursor.execute(self.sql, args)
            rows = cursor.fetchall() if self._row is not None else []
            if self._results is None and self._row is not None:
                self._results = tuple(
                    column.type.dialect_impl(dialect).result_processor(dialect, described[1])
                    for column, described in zip(self._columns, cursor.description, strict=True)
                )
        except dialect.loaded_dbapi.Error as exc:
            raise driver_error(conn, exc, self.sql, args, cursor) from exc
        finally:
            cursor.close()
        return [self._convert(raw) for raw in rows]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first returned row, or None."""
        rows = self.execute(conn, params)
        return rows[0] if rows else None

    def _convert(self, raw: Iterable[Any]) -> Any:
        return self._row._make(
            value if processor is None else processor(value)
            for value, processor in zip(raw, self._results or (), strict=True)
        )


__all__ = ["DriverStatement"]
