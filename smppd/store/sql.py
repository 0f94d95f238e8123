"""Set-based statements for the writer: a batch's rows become one statement, not one
per row, on SQLite and PostgreSQL alike.

Why by hand: 10,000 receipts must not become 10,000 round trips, and SQLAlchemy's
per-row parameter processing cost more than the database's own work. Why one
statement and not executemany: sqlite3's executemany releases and re-takes the GIL
around every row, and with the reactor thread waiting for the GIL each row became a
thread switch (the daemon's CPU per message varied by half from run to run).

A statement is declared once, by column name, against the table in schema.py; its
rows are tuples in the declared order (for an update: the key first). On SQLite the
rows are a VALUES list, one marker per value.

On SQLite the statements go straight to the driver's connection (`Runner.execute`):
SQLAlchemy's exec_driver_sql cost about 20 µs per statement (an execution context, a
result, events) around sqlite3's own 2 µs, and a batch is five to seven statements.
Its errors are wrapped as SQLAlchemy's, so the writer tells an unavailable database
from a bad row exactly as before. PostgreSQL keeps SQLAlchemy's path, which also
notices a lost connection and invalidates it.

On PostgreSQL they are one array per column, read back with `unnest(...)`, so the
statement's text is the same whatever the row count. A VALUES list's text changes
with every batch size, and PostgreSQL parsed and planned each one afresh: in
bench/cluster.py's server log, 258 parses for 285 executions of the parts updates,
and the server used about twice the CPU per message of the daemon itself. With one
text per statement psycopg prepares it once per connection (after its
prepare_threshold) and the server reuses the plan. Each array is cast to its
column's type: an array of all NULLs, or of Python strings, has none of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

MAX_PARAMETERS = 30_000  # per statement: under SQLite's 32,766 and PostgreSQL's 65,535
ARRAY_ROWS = 10_000  # rows per statement on PostgreSQL (one parameter per column)
_LENGTH = re.compile(r"(?<=^VARCHAR)\(\d+\)$")
CHUNK = 500  # ids per IN (...) list in the reads the writer makes


def utc(moment: float | None = None) -> datetime:
    """Naive UTC, the one time zone the store speaks."""
    if moment is None:
        return datetime.now(UTC).replace(tzinfo=None)
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class BulkInsert:
    """INSERT of many rows; `constants` are columns every row gets as SQL literals."""

    table: Table
    columns: tuple[str, ...]
    constants: dict[str, str] = field(default_factory=dict)

    def render(self, rows: int, marker: str) -> str:
        names = list(self.columns) + list(self.constants)
        group = "(" + ", ".join([marker] * len(self.columns) + list(self.constants.values())) \
            + ")"
        return (f"INSERT INTO {self.table.name} ({', '.join(names)}) VALUES "
                + ", ".join([group] * rows))

    def render_arrays(self, marker: str) -> str:
        """PostgreSQL: the rows as one array per column, inserted in their order."""
        names = list(self.columns) + list(self.constants)
        values = [f"v.column{i}" for i in range(1, len(self.columns) + 1)]
        return (f"INSERT INTO {self.table.name} ({', '.join(names)}) SELECT "
                + ", ".join(values + list(self.constants.values()))
                + f" FROM {_unnest(self.table, self.columns, marker, insert=True)}"
                + " ORDER BY v.row_number")


@dataclass(frozen=True)
class BulkUpdate:
    """UPDATE of many rows by key from a VALUES list. `assign` maps a column to its new
    value: `{}` stands for the row's value (default: the value itself), and the
    table's current value is written `<table>.<column>`. Rows are (key..., values...)
    in the order of `key` then `assign`; a later row with the same key wins."""

    table: Table
    key: tuple[str, ...]
    assign: dict[str, str]

    @property
    def width(self) -> int:
        return len(self.key) + len(self.assign)

    def render(self, rows: int, marker: str) -> str:
        """SQLite: the rows as a VALUES list, whose columns are column1, column2, ..."""
        group = "(" + ", ".join([marker] * self.width) + ")"
        return (f"UPDATE {self.table.name} SET {self._sets()} FROM (VALUES "
                + ", ".join([group] * rows) + f") AS v WHERE {self._match()}")

    def render_arrays(self, marker: str) -> str:
        """PostgreSQL: the rows as one array per column (see the module's docstring)."""
        names = list(self.key) + list(self.assign)
        return (f"UPDATE {self.table.name} SET {self._sets()} "
                f"FROM {_unnest(self.table, names, marker)} WHERE {self._match()}")

    def _sets(self) -> str:
        """The assignments, reading the row's values as v.column<position>."""
        return ", ".join(f"{column} = " + (expression or "{}").format(f"v.column{i}")
                         for i, (column, expression) in enumerate(self.assign.items(),
                                                                  len(self.key) + 1))

    def _match(self) -> str:
        return " AND ".join(f"{self.table.name}.{name} = v.column{i}"
                            for i, name in enumerate(self.key, 1))


def _unnest(table: Table, names: Sequence[str], marker: str, insert: bool = False) -> str:
    """`unnest(<array per column>) AS v(column1, ...)`, each array cast to its column's
    type; for an `insert`, with the row's position as v.row_number."""
    kinds = [table.c[name].type.compile(dialect=postgresql.dialect()) for name in names]
    if insert:
        # An insert's VARCHAR without its length, as its VALUES list had no cast: a
        # cast to VARCHAR(n) would cut a longer value silently, where the column
        # refuses it ("value too long"). An update keeps the length its VALUES cast had.
        kinds = [_LENGTH.sub("", kind) for kind in kinds]
    arrays = ", ".join(f"CAST({marker} AS {kind}[])" for kind in kinds)
    columns = [f"column{i}" for i in range(1, len(names) + 1)]
    if insert:
        return f"unnest({arrays}) WITH ORDINALITY AS v({', '.join(columns)}, row_number)"
    return f"unnest({arrays}) AS v({', '.join(columns)})"


class Runner:
    """Runs bulk statements on one dialect; made once per writer."""

    def __init__(self, dialect_name: str, paramstyle: str) -> None:
        self.postgres = dialect_name == "postgresql"
        self.marker = "%s" if paramstyle in ("format", "pyformat") else "?"
        self._rendered: dict[tuple[int, int], str] = {}  # SQLite: per row count
        self._rendered_arrays: dict[int, str] = {}  # PostgreSQL: one per statement

    def ts(self, moment: datetime) -> Any:
        """A timestamp parameter: SQLite keeps DATETIME as text in SQLAlchemy's
        layout, PostgreSQL takes the object. isoformat writes that layout
        ("2026-11-30 02:40:00.000000", the microseconds always) in a third of
        strftime's time, and pads the year to four digits as SQLAlchemy does."""
        return moment if self.postgres else moment.isoformat(" ", "microseconds")

    def run(self, conn: Connection, statement: BulkInsert | BulkUpdate,
            rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if isinstance(statement, BulkUpdate):
            latest = {row[:len(statement.key)]: row for row in rows}
            rows = list(latest.values())
            width = statement.width
        else:
            width = len(statement.columns)
        if self.postgres:
            sql = self._arrays(statement)
            for start in range(0, len(rows), ARRAY_ROWS):
                chunk = rows[start:start + ARRAY_ROWS]
                conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*chunk,
                                                                                strict=True)))
            return
        per_statement = max(1, MAX_PARAMETERS // width)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            self.execute(conn, self._sql(statement, len(chunk), len(chunk) == per_statement),
                         tuple(chain.from_iterable(chunk)))

    def execute(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> None:
        """One statement in the batch's transaction (see the module's docstring)."""
        execute(conn, sql, params)

    def fetch(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read in the batch's transaction, as tuples."""
        if self.postgres:
            return [tuple(row) for row in conn.exec_driver_sql(sql, tuple(params))]
        return driver_execute(conn, sql, params).fetchall()

    def _arrays(self, statement: BulkInsert | BulkUpdate) -> str:
        sql = self._rendered_arrays.get(id(statement))
        if sql is None:
            sql = self._rendered_arrays[id(statement)] = statement.render_arrays(self.marker)
        return sql

    def _sql(self, statement: BulkInsert | BulkUpdate, rows: int, full: bool) -> str:
        # Rendered statements are kept for the sizes that recur (a full chunk, and
        # the small batches of a quiet daemon); others are rendered each time.
        key = (id(statement), rows)
        sql = self._rendered.get(key)
        if sql is None:
            sql = statement.render(rows, self.marker)
            if rows <= 64 or full:
                self._rendered[key] = sql
        return sql


def execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> None:
    """One statement of a batch: the driver's own path on SQLite, SQLAlchemy's on
    PostgreSQL (see the module's docstring)."""
    if conn.dialect.name == "sqlite":
        driver_execute(conn, sql, params)
    else:
        conn.exec_driver_sql(sql, tuple(params))


def driver_execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """`sql` on the DB-API connection under `conn` (SQLite: see the module's
    docstring); a driver error comes out as SQLAlchemy's (OperationalError for a
    locked or full database, IntegrityError for a bad row), as exec_driver_sql
    would raise it."""
    try:
        return conn.connection.driver_connection.execute(sql, params)  # type: ignore[union-attr]
    except conn.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy would: a connection the dialect calls broken ("Cannot operate
        # on a closed database") leaves the pool, and the error says so (unavailable).
        broken = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error,
                                  connection_invalidated=broken,
                                  dialect=conn.dialect) from exc
