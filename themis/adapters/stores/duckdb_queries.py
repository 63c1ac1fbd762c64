"""Users' own SQL on a DuckDB store (`Orchestrator.db_manager`).

A DuckDB file admits one process at a time, so where the connection comes from depends on who
holds the file:
- this process (the orchestrator's open store): a cursor of the store's own connection (a cursor
  may be used from any thread), read-only while a run of the owner executes;
- nobody: a read-only connection of its own, opened for the block and closed after it;
- another process: `StoreLocked`, one line naming its PID (after the usual short lock wait).
A read-only connection parses each statement first and lets only queries (`SELECT`, `SHOW`,
`DESCRIBE`, `SUMMARIZE`, `EXPLAIN`) through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any, Final

from themis.adapters.duckdb_engine import duckdb, with_relations
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.errors import StoreError

__all__ = ["DuckDBConnections", "ReadOnlyConnection"]

_READING: Final = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class ReadOnlyConnection:
    """A cursor that runs queries only; anything that could write raises `StoreError`."""

    def __init__(
        self, cursor: Any, path: str, why: str = "read-only while a run holds the store"
    ) -> None:
        self._cursor = cursor
        self._path = path
        self._why = why

    def _check(self, query: str) -> None:
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as error:
            raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from None
        for statement in statements:
            if statement.type not in _READING:
                kind = statement.type.name.lower()
                raise StoreError(f"{self._path}: {self._why}; a {kind} statement is refused")

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
    """Hands out connections to the store's database for the caller's own queries: through the
    store `held()` returns when this process holds it, else read-only from the file at `path`."""

    def __init__(
        self, path: str, held: Callable[[], DuckDBStore | None], running: Callable[[], bool]
    ) -> None:
        self._path = path
        self._held = held
        self._running = running

    @property
    def path(self) -> str:
        return self._path

    @contextmanager
    def connect(self, *, read_only: bool | None = None) -> Iterator[Any]:
        """A connection, closed on exit (see the module docstring). `read_only` defaults to
        whether a run is executing, or to true when the store is not held; asking to write
        then raises `StoreError`."""
        with_relations()  # (the caller's connection, with DuckDB's whole API: `sql`, `df`, ...)
        store = self._held()
        if store is None:
            if read_only is False:
                raise StoreError(
                    f"{self._path}: read-only: this orchestrator does not hold the store "
                    "(open it with orchestrator.store to write)"
                )
            with closing(DuckDBStore(self._path, read_only=True)) as opened:
                cursor = opened.cursor()
                try:
                    yield ReadOnlyConnection(cursor, self._path, "opened read-only")
                finally:
                    cursor.close()
            return
        running = self._running()
        if read_only is False and running:
            raise StoreError(f"{self._path}: read-only while a run holds the store")
        cursor = store.cursor()
        connection: Any = ReadOnlyConnection(cursor, self._path)
        if read_only is False or (read_only is None and not running):
            connection = cursor
        try:
            yield connection
        finally:
            cursor.close()
