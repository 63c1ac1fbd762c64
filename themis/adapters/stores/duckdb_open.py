"""Opening a DuckDB file as a Themis store: the lock wait, the schema, and what is refused.

- A file another process holds (`Conflicting lock ... (PID n)`) is retried for up to
  `lock_wait` seconds (an inspection holds a store for milliseconds), then `StoreLocked`.
- A database with tables but no Themis `meta` table is another program's: it is refused
  before anything is written to it (`not a Themis store`), read-write or not.
- Read-only opens (what `report`, `inspect`, `quickcheck` and `runs` need) never create or
  migrate tables, so a store on read-only media can be read, and a missing file is an error;
  they read stores from `READABLE_FROM` on.
- A writer's file is attached to an in-memory instance the process holds it by, in row groups
  of 2,048 rows, and every other open of it in the process takes a cursor of that instance
  (`duckdb_held`, ADR 0120).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Final, TypeVar

from themis.adapters.duckdb_engine import duckdb
from themis.adapters.duckdb_quiet import quiet, quiet_connection
from themis.adapters.stores.duckdb_held import Held, hold, release, share
from themis.adapters.stores.duckdb_log import BATCHES_TABLE, migrate_events
from themis.adapters.stores.duckdb_outline import OUTLINES_TABLE
from themis.adapters.stores.duckdb_snapshot import PARTS_TABLE
from themis.adapters.stores.duckdb_views import PLACES_TABLE
from themis.core.errors import StoreError, StoreLocked

T = TypeVar("T")

__all__ = [
    "LOCK_WAIT_S",
    "READABLE_FROM",
    "SCHEMA_VERSION",
    "StoreNeedsWriting",
    "attach",
    "connect",
    "open_error",
    "prepare_schema",
    "stored_version",
]

# 1: meta, runs, events. 2: + checkpoints. 3: + trial_places and the views over the log
# (`duckdb_views`). 4: the log one row per appended batch (`event_batches`), `events` a view
# of it (`duckdb_log`, ADR 0046). 5: the same, its payloads kept uncompressed (ADR 0054). 6: every
# row under 4 KiB of text, so DuckDB keeps it inline and can evict it (ADR 0062). An older file
# is migrated in place when a writer opens it.
SCHEMA_VERSION: Final = 6
# The oldest version a read-only open reads: version 2 lacks only the places and views, which
# the data API computes in memory instead; versions 2 and 3 keep `events` as a table, which
# every reader reads as the view of version 4 (and 5).
READABLE_FROM: Final = 2
# How long an open waits for another process to release the file before `StoreLocked`.
LOCK_WAIT_S: Final = 2.0

_META: Final = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)"
_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS runs ("
    " run_id VARCHAR PRIMARY KEY, name VARCHAR, created_at DOUBLE, snapshot VARCHAR)",
    BATCHES_TABLE,
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    " run_id VARCHAR PRIMARY KEY, seq BIGINT, summary VARCHAR, state VARCHAR, report VARCHAR)",
    PLACES_TABLE,
    # A checkpoint's per-trial maps in parts (ADR 0040); absent from older files until a writer
    # opens them, whose checkpoints keep their maps inside `checkpoints.state`.
    "CREATE TABLE IF NOT EXISTS checkpoint_parts (run_id VARCHAR, part INTEGER, body VARCHAR)",
    # The same parts compressed (checkpoint format 4, ADR 0048); absent from older files until
    # a writer opens them, whose checkpoints keep their parts in `checkpoint_parts`.
    "CREATE TABLE IF NOT EXISTS checkpoint_blobs (run_id VARCHAR, part INTEGER, body BLOB)",
    # The same parts cut in rows under 4 KiB, by the checkpoint's seq (format 7, ADR 0079);
    # absent from older files until a writer opens them, whose parts are in `checkpoint_blobs`.
    "CREATE TABLE IF NOT EXISTS checkpoint_chunks ("
    " run_id VARCHAR, seq BIGINT, part INTEGER, chunk INTEGER, body BLOB)",
    # Compiled facts of runs and configs (a cache, ADR 0034); absent from older files until a
    # writer opens them, which readers treat as an empty cache.
    "CREATE TABLE IF NOT EXISTS compiled_facts (key VARCHAR PRIMARY KEY, facts VARCHAR)",
    # Each run's outline, kept as its snapshot is saved (ADR 0077); absent from older files
    # until a writer opens them, whose runs' outlines are cut out of their snapshots.
    OUTLINES_TABLE,
    # Each case's values of a run, kept by its final checkpoint as of its `seq` (ADR 0072);
    # absent from older files until a writer opens them, whose runs the viewer reads from
    # their logs.
    "CREATE TABLE IF NOT EXISTS checkpoint_cases (run_id VARCHAR, seq BIGINT, body BLOB)",
    # A large run's snapshot text in parts, its `runs.snapshot` NULL (ADR 0096); absent from
    # older files until a writer opens them, whose snapshots are all in `runs.snapshot`.
    PARTS_TABLE,
    # A large checkpoint's report (longer than a chunk: its `checkpoints.report` NULL) and case
    # table (no `checkpoint_cases` row), cut in rows under 4 KiB by the checkpoint's seq, so
    # that no write of a checkpoint lifts the writer's memory bound (ADR 0101); absent from
    # older files until a writer opens them, whose checkpoints keep both whole.
    "CREATE TABLE IF NOT EXISTS checkpoint_texts ("
    " run_id VARCHAR, seq BIGINT, name VARCHAR, chunk INTEGER, body BLOB)",
)
_USER_TABLES: Final = (
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    " UNION ALL SELECT view_name FROM duckdb_views()"
    " WHERE database_name = current_database() AND NOT internal"
)
_LOCK_PID = re.compile(r"Conflicting lock is held in .*\(PID (\d+)\)")


class StoreNeedsWriting(StoreError):
    """A read-write open asked to write nothing found a store it would have to write to."""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def open_error(path: str, error: duckdb.Error) -> StoreError:
    """The Themis error for a failed `duckdb.connect` of `path`."""
    message = str(error)
    if match := _LOCK_PID.search(message):
        return StoreLocked(path, int(match.group(1)))
    if "not a valid DuckDB database file" in message:
        return StoreError(f"{path} is not a Themis store (not a DuckDB database file)")
    return StoreError(f"{path}: cannot open store: {_first_line(error)}")


def connect(path: str, *, read_only: bool, lock_wait: float) -> tuple[Any, Held | None]:
    """A connection to `path`, waiting up to `lock_wait` seconds while another process holds
    it, and the `Held` file to `release` once it is closed: a writer's (and any open of a file
    this process holds) is a cursor of the one instance holding the file (`duckdb_held`, ADR
    0120); a read-only open of any other file, a connection of its own (and `None`)."""
    if path == ":memory:":
        return quiet_connection(path), None
    if read_only:
        if (shared := share(path)) is not None:
            return shared[1], shared[0]
        if not _exists(path):
            raise StoreError(f"{path}: no such store")
        return _waiting_for_lock(
            path, lock_wait, lambda: quiet_connection(path, read_only=True)
        ), None
    held, cursor = _waiting_for_lock(path, lock_wait, lambda: hold(path))
    return cursor, held


def _waiting_for_lock(path: str, lock_wait: float, attempt: Callable[[], T]) -> T:
    """What `attempt` returns, retried with a growing pause while another process holds the
    file at `path`, for up to `lock_wait` seconds; any other DuckDB error as `open_error`."""
    deadline = time.monotonic() + lock_wait
    pause = 0.005
    while True:
        try:
            return attempt()
        except duckdb.Error as error:
            failure = open_error(path, error)
            if not isinstance(failure, StoreLocked) or time.monotonic() + pause > deadline:
                raise failure from error
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def attach(host: Any, path: str, name: str, *, lock_wait: float) -> tuple[Any, Held | None]:
    """A cursor of `host` (an in-memory DuckDB connection of the caller's) whose default
    database is the store file at `path`, attached read-only as `name` and checked as a
    read-only open checks it, waiting up to `lock_wait` seconds while another process holds
    it, as `connect` does; or, for a file this process holds (`duckdb_held`), a cursor of the
    instance holding it and its `Held` to `release` once the cursor is closed.
    Attaching costs ~2 ms of CPU where a connection of its own costs ~18 (ADR 0066)."""
    if (shared := share(path)) is not None:
        held, cursor = shared
        try:
            prepare_schema(cursor, path, read_only=True)
        except BaseException:
            cursor.close()
            release(held)
            raise
        return cursor, held
    if not _exists(path):
        raise StoreError(f"{path}: no such store")
    cursor = quiet(host.cursor())
    try:
        _waiting_for_lock(
            path,
            lock_wait,
            lambda: cursor.execute(f"ATTACH $path AS {name} (READ_ONLY)", {"path": path}),
        )
        try:
            cursor.execute(f"USE {name}")
            prepare_schema(cursor, path, read_only=True)
        except BaseException:
            detach(cursor, name)
            raise
    except BaseException:
        cursor.close()
        raise
    return cursor, None


def detach(cursor: Any, name: str) -> None:
    """Detach the database `attach` attached as `name` (the cursor stays open)."""
    with suppress(duckdb.Error):
        cursor.execute("USE memory")
        cursor.execute(f"DETACH {name}")


def _exists(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except FileNotFoundError:
        return False
    except OSError:  # unreadable: let DuckDB say why
        return True


def prepare_schema(con: Any, path: str, *, read_only: bool, migrate: bool = True) -> bool:
    """Check that `con` holds a Themis store this version reads, and (read-write) create or
    migrate its tables; whether it created the store (an empty database made one). Refuses
    another program's database before writing anything. Without `migrate`, a read-write open
    writes nothing either: a store that lacks a table this version keeps (or is new) is
    refused with `StoreNeedsWriting`. The log's views are the caller's (`duckdb_views`)."""
    tables = {name for (name,) in con.execute(_USER_TABLES).fetchall()}
    if tables and "meta" not in tables:
        shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise StoreError(
            f"{path} is not a Themis store (a DuckDB database with other tables: {shown}); "
            "it was left untouched: pass another --store"
        )
    if not tables and read_only:
        raise StoreError(f"{path} is not a Themis store (an empty DuckDB database)")
    stored = stored_version(con, path) if tables else None
    if tables and stored is None:
        raise StoreError(
            f"{path} is not a Themis store (its meta table has no schema_version); "
            "it was left untouched: pass another --store"
        )
    if stored is not None and stored > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: store schema version {stored} is newer than this Themis "
            f"supports ({SCHEMA_VERSION}); upgrade Themis"
        )
    if not read_only and not migrate and (stored != SCHEMA_VERSION or _missing(tables)):
        raise StoreNeedsWriting(f"{path}: the store needs its tables created or migrated")
    if read_only:
        if stored is not None and stored < READABLE_FROM:
            raise StoreError(
                f"{path}: store schema version {stored} needs an upgrade, which a read-only "
                "open cannot make; resume one of its runs once where the store is writable"
            )
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(_META)
        if stored is None:
            con.execute("INSERT INTO meta VALUES ('schema_version', $1)", [str(SCHEMA_VERSION)])
        elif stored < SCHEMA_VERSION:  # tables added (below), and the log's rows moved
            con.execute(
                "UPDATE meta SET value = $1 WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
            )
        for statement in _TABLES:
            con.execute(statement)
        migrate_events(con, stored)
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # a failed statement may already have ended it
            con.execute("ROLLBACK")
        raise
    return stored is None


def _missing(tables: set[str]) -> bool:
    """Whether a table (or the `events` view) this version keeps is not among `tables` (added
    since it was written)."""
    names = {"events", *(_table_name(statement) for statement in _TABLES)}
    return not names <= tables


def _table_name(statement: str) -> str:
    return statement.removeprefix("CREATE TABLE IF NOT EXISTS ").split(" ", 1)[0]


def stored_version(con: Any, path: str) -> int | None:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except duckdb.Error:  # a `meta` table of another shape: another program's
        return None
    if row is None:
        return None
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise StoreError(f"{path}: store schema version {row[0]!r} is not an integer") from None
