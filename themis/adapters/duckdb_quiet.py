"""DuckDB connections that print nothing: every connection Themis opens comes from here.

DuckDB draws a progress bar on stdout, a pipe or a file too, for a query running over 2 s. It
broke `--json` output once (a 100k replay on a loaded machine), so every connection turns it
off as it opens. The setting belongs to one connection: a cursor needs it again (`quiet`).
"""

from __future__ import annotations

from typing import Any

from themis.adapters.duckdb_engine import duckdb

__all__ = ["quiet", "quiet_connection"]


def quiet(connection: Any) -> Any:
    """`connection` (or a cursor of it), its progress bar turned off."""
    connection.execute("SET enable_progress_bar = false")
    return connection


def quiet_connection(database: str = ":memory:", *, read_only: bool = False) -> Any:
    """A DuckDB connection to `database` (a fresh in-memory one by default) that draws no
    progress bar. `duckdb.Error` as `duckdb.connect` raises it."""
    return quiet(duckdb.connect(database, read_only=read_only))
