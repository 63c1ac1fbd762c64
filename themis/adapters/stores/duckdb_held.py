"""The store files this process holds read-write: one in-memory DuckDB instance per file, the
file attached to it in row groups of `ROW_GROUP_ROWS` rows (ADR 0120).

DuckDB writes a table in row groups of 122,880 rows by default, and each automatic checkpoint
(every 16 MiB of write-ahead log) rewrote the table's last, partly filled group: a 100k-trial
log's whole `event_batches` again at each one (~0.75 of the 1.9 CPU s a 100k replay's appends
took). The group's size is an option of `ATTACH` alone (not of `duckdb.connect`, nor kept in the
file), so a writer attaches its file to an in-memory instance of its own.

DuckDB refuses a second attach of one file in one process ("Unique file handle conflict"), and a
`duckdb.connect` of the path no longer shares the writer's instance (its instance cache is keyed
by the path connected to). So every open of a file the process holds (a second writer, a
read-only open, `DuckDBStore.attached`) takes a cursor of the one instance holding it, and the
last of them to close detaches the file (which folds its write-ahead log in) and closes the
instance. A file no instance holds is opened as before.
"""

from __future__ import annotations

import itertools
import os
import threading
from contextlib import suppress
from typing import Any, Final

import attrs

from themis.adapters.duckdb_engine import duckdb
from themis.adapters.duckdb_quiet import quiet, quiet_connection

__all__ = ["ROW_GROUP_ROWS", "Held", "hold", "release", "share"]

# The rows of a row group a writer's file is written in (DuckDB's default: 122,880).
ROW_GROUP_ROWS: Final = 2048

# Names of the held files' databases in their instances (a name is never used twice).
_NAMES = itertools.count()


@attrs.define(eq=False)
class Held:
    """A store file attached read-write as `name` to the in-memory instance of `host`, and how
    many stores use it."""

    key: str
    host: Any
    name: str
    users: int = 0

    def cursor(self) -> Any:
        """A new connection to the instance, its default database the file."""
        cursor = quiet(self.host.cursor())
        try:
            cursor.execute(f"USE {self.name}")
        except BaseException:
            cursor.close()
            raise
        return cursor

    def used(self) -> Any:
        """A new cursor (`cursor`) for one more store using the file (under `_HOLDING`)."""
        cursor = self.cursor()
        self.users += 1
        return cursor


# Held files by their resolved path; `_HOLDING` guards it and each one's `users`.
_HELD: dict[str, Held] = {}
_HOLDING = threading.Lock()


def _key(path: str) -> str:
    return os.path.realpath(path)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def hold(path: str) -> tuple[Held, Any]:
    """A cursor of the instance holding the file at `path` (attaching it read-write first, in
    row groups of `ROW_GROUP_ROWS` rows, when none does), and its `Held` to `release` once the
    cursor is closed. `duckdb.Error` as `ATTACH` raises it (another process's lock, a file that
    is not DuckDB's)."""
    key = _key(path)
    with _HOLDING:
        held = _HELD.get(key)
        if held is None:
            host = quiet_connection()
            name = f"themis_file_{next(_NAMES)}"
            try:
                # Where DuckDB spills past its memory bound, as for a connection to the file
                # (an in-memory instance's default is `.tmp` in the working directory).
                host.execute(f"SET temp_directory = {_literal(path + '.tmp')}")
                host.execute(
                    f"ATTACH $path AS {name} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})", {"path": path}
                )
            except BaseException:
                host.close()
                raise
            held = Held(key, host, name)
            _HELD[key] = held
        return held, held.used()


def share(path: str) -> tuple[Held, Any] | None:
    """A cursor of the instance holding the file at `path` and its `Held` (as `hold`), or
    `None` when this process holds no such file."""
    with _HOLDING:
        held = _HELD.get(_key(path))
        if held is None:
            return None
        return held, held.used()


def release(held: Held) -> None:
    """A store using `held` closed (its cursor closed first): the last one detaches the file,
    which folds what its write-ahead log holds into it, and closes the instance."""
    with _HOLDING:
        held.users -= 1
        if held.users > 0:
            return
        del _HELD[held.key]
        try:
            with suppress(duckdb.Error):
                held.host.execute("USE memory")
                held.host.execute(f"DETACH {held.name}")
        finally:
            held.host.close()
