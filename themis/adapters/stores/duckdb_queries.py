"""Users' own SQL on a DuckDB store this process holds (`Orchestrator.db_manager`).

A DuckDB file admits one process at a time, so queries go through a cursor of the store's own
connection (a cursor may be used from any thread). While a run of the owner executes, the
connections are read-only: each statement is parsed first and only queries (`SELECT`, `SHOW`,
`DESCRIBE`, `SUMMARIZE`, `EXPLAIN`) are let through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import duckdb

from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.errors import StoreError

__all__ = ["DuckDBConnections", "ReadOnlyConnection"]

_READING: Final = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class ReadOnlyConnection:
    """A cursor that runs queries only; anything that could write raises `StoreError`."""

    def __init__(self, cursor: Any, path: str) -> None:
        self._cursor = cursor
        self._path = path

    def _check(self, query: str) -> None:
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as error:
            raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from None
        for statement in statements:
            if statement.type not in _READING:
                kind = statement.type.name.lower()
                raise StoreError(
                    f"{self._path}: read-only while a run holds the store; "
                    f"a {kind} statement is refused"
                )

    def execute(self, query: str, parameters: Any = None) -> Any:
        """Run a query (checked first) and return the cursor, as `duckdb`'s `execute` does."""
        self._check(query)
        return self._cursor.execute(query, parameters)

    def sql(self, query: str) -> Any:
        """A `DuckDBPyRelation` of the query (checked first): `.fetchall()`, `.df()`, ..."""
        self._check(query)
        return self._cursor.sql(query)

    def close(self) -> None:
        self._cursor.close()


class DuckDBConnections:
    """Hands out connections to the store's database for the caller's own queries."""

    def __init__(self, store: DuckDBStore, running: Callable[[], bool]) -> None:
        self._store = store
        self._running = running

    @property
    def path(self) -> str:
        return self._store.path

    @contextmanager
    def connect(self, *, read_only: bool | None = None) -> Iterator[Any]:
        """A connection, closed on exit. `read_only` defaults to whether a run is executing;
        asking to write while one is raises `StoreError`."""
        running = self._running()
        if read_only is False and running:
            raise StoreError(f"{self._store.path}: read-only while a run holds the store")
        cursor = self._store.cursor()
        connection: Any = ReadOnlyConnection(cursor, self._store.path)
        if read_only is False or (read_only is None and not running):
            connection = cursor
        try:
            yield connection
        finally:
            cursor.close()
