"""`DuckDBStore`: event log, run snapshots and checkpoints in one DuckDB file (or `":memory:"`).

DuckDB errors never leave this module; they are translated at the boundary:

    duckdb.Error
     ├─ ConstraintException "Duplicate key" on append ─> SequenceConflict (as is an append
     │                                                   overlapping a stored row's seqs)
     ├─ IOException "Conflicting lock ... (PID n)"      ─> StoreLocked(path, pid)
     ├─ IOException "not a valid DuckDB database file"  ─> StoreError naming the path
     └─ anything else                                   ─> StoreError("<path>: <first line>")

Opening (the wait for a lock, refusing another program's database, read-only opens, schema
migration) is `themis.adapters.stores.duckdb_open`'s; the log's rows (one per appended batch,
read as one event a row through the view `events`) are `themis.adapters.stores.duckdb_log`'s.

When a batch ends an execution (`RunCompleted`, `RunPaused`), the write-ahead log is folded into
the file (`CHECKPOINT`) in a background thread: that work (~70 ms for 10,000 trials) would
otherwise come at `close`, after the report; in the background it overlaps the use case's
report and checkpoint encoding (calls meanwhile wait for the connection; `close` waits for it).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

import attrs

from themis.adapters.case_table_codec import decode_case_table, encode_case_table
from themis.adapters.checkpoint_codec import (
    chunked_parts,
    compressed_parts,
    decode_checkpoint,
    decode_checkpoint_summary,
    encode_checkpoint,
)
from themis.adapters.codec import (
    decode_event,
    decode_snapshot,
    encode_snapshot,
    snapshot_pieces,
)
from themis.adapters.derived_payloads import derived_texts
from themis.adapters.duckdb_engine import duckdb
from themis.adapters.duckdb_quiet import quiet
from themis.adapters.stores.duckdb_bound import (
    LONG_LOG_LIMIT,
    SAVE_LIMIT,
    bound,
    limit_to,
    shed,
    unbound,
)
from themis.adapters.stores.duckdb_generations import generation_columns, generations_at
from themis.adapters.stores.duckdb_held import Held, release
from themis.adapters.stores.duckdb_located import located_places
from themis.adapters.stores.duckdb_log import (
    FIRST_ROW_AFTER,
    INSERT_BATCHES,
    READ_BATCHES,
    STORED_WITHIN,
    batch_rows,
    batched,
    event_texts,
    first_of_kind,
    first_places_of_kind,
    split_row,
    text_rows,
)
from themis.adapters.stores.duckdb_open import (
    LOCK_WAIT_S,
    SCHEMA_VERSION,
    attach,
    connect,
    detach,
    prepare_schema,
)
from themis.adapters.stores.duckdb_outline import (
    keep_outline,
    keep_spliced,
    kept_outline,
    saved_as,
    stored_outline,
    text_digest,
)
from themis.adapters.stores.duckdb_snapshot import insert_parts, parted, stored_text
from themis.adapters.stores.duckdb_views import (
    create_views,
    holds_places,
    insert_places,
    insert_places_like,
    kept_places,
    outdated_views,
    runs_without_places,
    store_places,
)
from themis.core.case_table import CaseTable
from themis.core.checkpoint import Checkpoint, CheckpointSummary
from themis.core.compiled_facts import CompiledFacts, run_key
from themis.core.errors import SequenceConflict, StoreError
from themis.core.events import Event, GenerationCompleted, RunCompleted, RunPaused
from themis.core.generation import GenerationColumns, GenerationPlace
from themis.core.large_run import is_large_run
from themis.core.planner import TrialRef
from themis.core.snapshot import RunSnapshot, RunSummary, SnapshotOutline
from themis.core.trial_columns import DerivedTrials, EventTexts
from themis.threads import SignalSafeThread

__all__ = ["SCHEMA_VERSION", "DuckDBStore"]

# The log of a store written before `event_batches` (schema 1-3, read-only), one event a row.
_READ_EVENTS: Final = (
    "SELECT seq, kind, payload FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq"
)
# The same of a store written before `event_batches` (schema 1-3, read-only).
# One query for many keys; a key several runs hold resolves to the earliest-created run's
# earliest seq (runs without a snapshot last).
_FIND_GENERATIONS: Final = (
    "SELECT e.trial_key, e.run_id, e.payload FROM events e LEFT JOIN runs r ON r.run_id = e.run_id"
    " WHERE e.kind = $1 AND e.run_id <> $2 AND e.trial_key IN (SELECT unnest($3::VARCHAR[]))"
    " QUALIFY row_number() OVER ("
    "  PARTITION BY e.trial_key ORDER BY r.created_at NULLS LAST, e.run_id, e.seq) = 1"
)
_LOCATE_GENERATIONS: Final = _FIND_GENERATIONS.replace("e.payload", "e.seq")
# A schema 1-3 log's events of run `$1` from seq `$2` to `$3` (`read_generations`).
_EVENTS_BETWEEN: Final = (
    "SELECT seq, kind, payload FROM events WHERE run_id = $1 AND seq BETWEEN $2 AND $3"
)
_RUNS: Final = (
    "SELECT r.run_id, r.name, r.created_at, coalesce(sum(e.n), 0) FROM runs r"
    " LEFT JOIN (SELECT run_id, {count} AS n FROM {log}) e ON e.run_id = r.run_id"
    " GROUP BY r.run_id, r.name, r.created_at ORDER BY r.created_at, r.run_id"
)
_HAS_RUN: Final = "SELECT count(*) FROM runs WHERE run_id = $1"
# A trial's events in a plain run (generation, parse, score): a log of `LARGE_RUN_TRIALS` times
# as many is a large run's, which DuckDB's memory is bound lower for (ADR 0101).
TRIAL_EVENTS: Final = 3
# Numbers of the databases stores opened inside a host connection take (`attached`).
_ATTACHED = itertools.count()
_DUPLICATE_SEQ = re.compile(r"Duplicate key .*seq: (-?\d+)")
# The bytes of a checkpoint's compressed part per row of `checkpoint_chunks` (format 7): under
# DuckDB's 4 KiB inline limit, so that a checkpoint is kept under the writer's memory bound
# (`duckdb_bound`; a 1M-trial run's ~90 MB of parts held ~4x that in one unbounded
# transaction: ADR 0079).
CHUNK_BYTES: Final = 4000
# A part's chunks, numbered from 0: `$4` is the list of them, read once (unnesting it beside
# `range(len($4))` cost 3-4x the CPU: the list converted twice).
_INSERT_CHUNKS: Final = (
    "INSERT INTO checkpoint_chunks SELECT $1, $2, $3, number - 1, body"
    " FROM unnest($4::BLOB[]) WITH ORDINALITY AS chunks(body, number)"
)
# The same for a large checkpoint's report or case table (`checkpoint_texts`, ADR 0101): `$3`
# names it, `$4` numbers its first chunk here (a batch of them at a time).
_INSERT_TEXT: Final = (
    "INSERT INTO checkpoint_texts SELECT $1, $2, $3, $4 + number - 1, body"
    " FROM unnest($5::BLOB[]) WITH ORDINALITY AS chunks(body, number)"
)
# A large checkpoint's report or case table, joined from its chunks: `$3` names it; the seq is
# its head's, so the chunks a killed save left at another seq are never read.
_TEXT: Final = (
    "SELECT body FROM checkpoint_texts WHERE run_id = $1 AND name = $2"
    " AND seq = (SELECT seq FROM checkpoints WHERE run_id = $1) ORDER BY chunk"
)
# Chunks of a text inserted by one statement: ~1 MB, so a case table's bytes are never all
# copied into chunks at once.
_TEXT_BATCH: Final = 256
# The tables a run's checkpoint is kept in: whole ones, and those of a large checkpoint's
# chunks (told apart by their seq from a save's not yet headed).
_CHECKPOINT_TABLES: Final = (
    "checkpoints",
    "checkpoint_parts",
    "checkpoint_blobs",
    "checkpoint_cases",
)
_CHUNKED_TABLES: Final = ("checkpoint_chunks", "checkpoint_texts")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _rollback(con: Any) -> None:
    # A failed statement or commit may already have ended the transaction.
    with suppress(duckdb.Error):
        con.execute("ROLLBACK")


@contextmanager
def _committed(con: Any) -> Iterator[Any]:
    """`con` inside one transaction: committed on success, rolled back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise


def _checkpoint_parts(con: Any, run_id: str, compressed: bool) -> Iterator[str | bytes]:
    """The run's checkpoint parts in order (compressed, or texts: format 3), a few at a time,
    read only when taken (a head of format 2 holds its maps, and its store may lack the table:
    read-only opens)."""
    table = "checkpoint_blobs" if compressed else "checkpoint_parts"
    cursor = con.execute(f"SELECT body FROM {table} WHERE run_id = $1 ORDER BY part", [run_id])
    while rows := cursor.fetchmany(8):
        for (body,) in rows:
            yield body


def _chunked_parts(con: Any, run_id: str, seq: int) -> Iterator[bytes]:
    """The compressed parts of the run's checkpoint at `seq` (format 7) in order, each joined
    from its chunks as they are read; read only when taken."""
    cursor = con.execute(
        "SELECT part, body FROM checkpoint_chunks WHERE run_id = $1 AND seq = $2"
        " ORDER BY part, chunk",
        [run_id, seq],
    )
    part: int | None = None
    pieces: list[bytes] = []
    while rows := cursor.fetchmany(256):
        for number, body in rows:
            if number != part and pieces:
                yield b"".join(pieces)
                pieces = []
            part = number
            pieces.append(body)
    if pieces:
        yield b"".join(pieces)


def _chunks(body: bytes, start: int = 0, stop: int | None = None) -> list[bytes]:
    """`body[start:stop]` cut in chunks of `CHUNK_BYTES`."""
    end = len(body) if stop is None else min(stop, len(body))
    return [body[at : min(at + CHUNK_BYTES, end)] for at in range(start, end, CHUNK_BYTES)]


def _insert_text(con: Any, run_id: str, seq: int, name: str, body: bytes) -> None:
    """Keep `body` as the checkpoint's text `name` (`checkpoint_texts`), a batch of chunks at a
    time."""
    step = _TEXT_BATCH * CHUNK_BYTES
    for first, at in enumerate(range(0, len(body), step)):
        chunks = _chunks(body, at, at + step)
        con.execute(_INSERT_TEXT, [run_id, seq, name, first * _TEXT_BATCH, chunks])


def _stored_text(con: Any, run_id: str, name: str) -> bytes | None:
    """The run's checkpoint's text `name` joined from its chunks (ADR 0101); `None` if it has
    none, or the store no such table (written before it, opened read-only since)."""
    try:
        cursor = con.execute(_TEXT, [run_id, name])
    except duckdb.CatalogException:
        return None
    pieces: list[bytes] = []
    while rows := cursor.fetchmany(256):
        pieces.extend(body for (body,) in rows)
    return b"".join(pieces) if pieces else None


def _report_text(con: Any, run_id: str) -> str | None:
    """The report of the run's checkpoint kept in chunks (a large one's, longer than a chunk);
    `None` if it has none there."""
    body = _stored_text(con, run_id, "report")
    return None if body is None else body.decode()


def _dropped_checkpoint(con: Any, run_id: str, *, but_seq: int | None = None) -> None:
    """The run's checkpoint dropped from every table that keeps one: its head, parts and case
    table, and its chunks and texts (but those of seq `but_seq`, which a chunked save inserted
    first)."""
    for table in _CHECKPOINT_TABLES:
        con.execute(f"DELETE FROM {table} WHERE run_id = $1", [run_id])
    for table in _CHUNKED_TABLES:
        if but_seq is None:
            con.execute(f"DELETE FROM {table} WHERE run_id = $1", [run_id])
        else:
            con.execute(f"DELETE FROM {table} WHERE run_id = $1 AND seq <> $2", [run_id, but_seq])


def _replaced_checkpoint(
    con: Any, run_id: str, seq: int, cases: bytes | None, *, keep_chunks: bool = False
) -> None:
    """In a save's transaction: the run's earlier checkpoint dropped, head and parts (but the
    chunks and texts of this `seq`, which a chunked save inserted first, with `keep_chunks`),
    and its case table (read by the viewer alone, ADR 0072) replaced by `cases`."""
    _dropped_checkpoint(con, run_id, but_seq=seq if keep_chunks else None)
    if cases is not None:
        con.execute("INSERT INTO checkpoint_cases VALUES ($1, $2, $3)", [run_id, seq, cases])


class DuckDBStore:
    """A `StorePort` on one DuckDB connection, used by one caller at a time from any thread."""

    # The name of the store's database in its connection's instance (a held file's, ADR 0120;
    # one `attached` to a host's), else None.
    _database: str | None = None
    # The held file (`duckdb_held`) whose instance the connection is a cursor of, which `close`
    # releases; `_detaches`: `close` detaches `_database` (`attached` to a host's instance).
    _held: Held | None = None
    _detaches = False

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        lock_wait: float = LOCK_WAIT_S,
        migrate: bool = True,
    ) -> None:
        """Open (or create) the store at `path`; see `themis.adapters.stores.duckdb_open`.

        `read_only` opens an existing store without writing anything (nor taking the write
        lock); `lock_wait` is how long to wait for another process to release the file.
        `migrate=False` takes the write lock but writes nothing while opening: a store that
        needs its tables created or migrated is refused (`StoreNeedsWriting`), and the places
        of older runs wait for `finish_opening` (a command checks its input first, then writes).
        """
        self._path = str(path)
        self._lock = threading.Lock()
        # Held while a run's places are kept on a cursor of their own (`_places_transaction`):
        # `shed_memory` never lowers DuckDB's limit beside that transaction.
        self._placing = threading.Lock()
        self._folding: SignalSafeThread | None = None
        self._reader = False
        self._heads: dict[str, int] = {}  # run id -> its highest stored seq (`_head`)
        # A writer of a file bounds DuckDB's memory but while it keeps large values
        # (`duckdb_bound`); `_unbounded`: a checkpoint that would bring the bound back failed.
        self._bounds = not read_only and self._path != ":memory:"
        self._unbounded = self._bounds
        # The bound while the bound is on: `duckdb_bound.MEMORY_LIMIT` (None), else its lower
        # `LONG_LOG_LIMIT` once a large run's log is appended to (`_bound_long_log`).
        self._limit: str | None = None
        # A store this open created defines the log's views in its first write (or `close`),
        # off the path to a run's first call: DuckDB binds each view (~14 ms for all, ADR 0074).
        self._views_pending = False
        self._con, self._held = connect(self._path, read_only=read_only, lock_wait=lock_wait)
        if self._held is not None:
            self._database = self._held.name
            # A read-only open of a file this process writes: a cursor of the writer's
            # instance, which DuckDB lets write, so the store refuses writes itself.
            self._reader = read_only
        try:
            with self._connection() as con:
                created = prepare_schema(con, self._path, read_only=read_only, migrate=migrate)
                # Else a store written before, opened read-only: `events` is its log's table.
                self._batched = batched(con)
            if created:  # no runs to place yet
                self._views_pending = True
            elif not read_only and migrate:
                self._place_older_runs()
            with self._connection() as con:
                self._bound_again(con)
        except BaseException:
            self._con.close()
            if self._held is not None:
                release(self._held)
            raise

    def reader(self) -> DuckDBStore:
        """A read-only store on a connection of its own to this store's database (close it when
        done): how another thread of the process holding the file reads it, e.g. a viewer of
        the run it executes, without waiting for the writer's lock. It writes nothing: every
        write through it raises `StoreError`.

        DuckDB's memory bound is the database's, so it would bind the reader's queries too, and
        they read the run's snapshot in SQL (a viewer's outline and cases: past ~500k cases an
        `Out of Memory`). A store with a reader is no longer bounded (ADR 0062)."""
        with self._lock:
            if self._bounds:
                if not self._unbounded:
                    unbound(self._con)
                self._bounds = self._unbounded = False
        reader = DuckDBStore._reading(self._path)
        reader._batched = self._batched
        reader._con = self.cursor()
        reader._database = self._database
        return reader

    @classmethod
    def _reading(cls, path: str) -> DuckDBStore:
        """A store of `path` that only reads (every write raises `StoreError`), unbounded (the
        bound is a writer's connection's), its connection still to be given."""
        store = cls.__new__(cls)
        store._path = path
        store._lock = threading.Lock()
        store._placing = threading.Lock()
        store._folding = None
        store._reader = True
        store._bounds = store._unbounded = False
        store._heads = {}
        store._views_pending = False
        return store

    @classmethod
    def attached(
        cls, host: Any, path: str | Path, *, lock_wait: float = LOCK_WAIT_S
    ) -> DuckDBStore:
        """The store file at `path` opened read-only inside `host` (an in-memory DuckDB
        connection the caller keeps open, e.g. a viewer's): attached to its instance under a
        name of its own (`duckdb_open.attach`), which costs ~2 ms of CPU where a connection of
        its own costs ~18 (ADR 0066). It reads and refuses writes as a read-only open does;
        `close` detaches it, releasing the file."""
        store = cls._reading(str(path))
        name = f"themis_store_{next(_ATTACHED)}"
        store._con, store._held = attach(host, store._path, name, lock_wait=lock_wait)
        store._database = name if store._held is None else store._held.name
        store._detaches = store._held is None
        try:
            store._batched = batched(store._con)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def path(self) -> str:
        """Where the store lives: a file path, or `":memory:"`."""
        return self._path

    def cursor(self) -> Any:
        """A new cursor on the store's database, for another thread's own queries."""
        with self._connection() as con:
            self._define_pending_views(con)
            cursor = quiet(con.cursor())
        if self._database is not None:  # the host's default database is another one
            cursor.execute(f"USE {self._database}")
        return cursor

    @contextmanager
    def _connection(self, *, large: bool = False) -> Iterator[Any]:
        """The connection, held exclusively, with DuckDB errors turned into `StoreError`;
        `large`: for an operation keeping or reading values too large for the memory bound
        (`duckdb_bound`), which is lifted meanwhile and brought back once they are in the
        file."""
        with self._lock:
            try:
                if large and self._bounds and not self._unbounded:
                    unbound(self._con)
                    self._unbounded = True
                try:
                    yield self._con
                finally:
                    if large:
                        self._bound_again(self._con)
            except duckdb.Error as error:
                raise StoreError(f"{self._path}: {_first_line(error)}") from error

    def _define_pending_views(self, con: Any) -> None:
        """The log's views of a store this open created, defined (and committed) before its
        first write, so that whatever can see a run in the file can query them too."""
        if not self._views_pending:
            return
        with _committed(con):
            create_views(con)
        self._views_pending = False

    def _bound_again(self, con: Any) -> None:
        """Bring the memory bound back if it is lifted (see `_connection`)."""
        if self._unbounded:
            self._unbounded = not bound(con, self._limit)

    @contextmanager
    def _transaction(self, *, large: bool = False) -> Iterator[Any]:
        """`_connection` inside one transaction: committed on success, rolled back on any error."""
        if self._reader:
            raise StoreError(f"{self._path}: this connection only reads the store")
        with self._connection(large=large) as con:
            self._define_pending_views(con)
            with _committed(con):
                yield con

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        """Store `events` as seqs `first_seq, first_seq + 1, ...` in one statement; all or none
        (rows of a few events each: `themis.adapters.stores.duckdb_log`)."""
        if not events:
            return
        ends = isinstance(events[-1], RunCompleted | RunPaused)
        self._insert(run_id, first_seq, len(events), batch_rows(run_id, first_seq, events), ends)

    def append_texts(self, run_id: str, first_seq: int, texts: EventTexts) -> None:
        """`append` of the events `texts` are the stored texts of (a derived replay's chunk,
        `derived_texts`): their rows cut from the texts as they are, nothing encoded."""
        if not texts.payloads:
            return
        rows = text_rows(run_id, first_seq, texts)
        ends = texts.kinds[-1] in (RunCompleted.kind, RunPaused.kind)
        self._insert(run_id, first_seq, len(texts.payloads), rows, ends)

    def event_texts(self, events: Sequence[Event]) -> EventTexts:
        """The texts `append` stores for `events`, made in the caller's thread (a writer's
        while its loop is idle: ADR 0125), for `append_texts`."""
        return event_texts(events)

    def derived_texts(self, trials: DerivedTrials) -> EventTexts:
        """The codec's texts of `trials`' events (`derived_payloads`)."""
        return derived_texts(trials)

    def _insert(self, run_id: str, first_seq: int, count: int, rows: list[Any], ends: bool) -> None:
        """`count` events' `rows` (`INSERT_BATCHES`' parameters) at seqs from `first_seq`, in
        one transaction; `SequenceConflict` when one is stored already. `ends`: the last one
        ends an execution (the WAL is folded in then)."""
        last_seq = first_seq + count - 1
        try:
            with self._transaction() as con:
                head = self._head(con, run_id)
                # Seqs inside a stored row are no key: an append that is not past the run's
                # highest seq asks the table (~2 ms a query); the key still catches a writer
                # of another store object starting where this one does.
                if first_seq <= head:
                    taken = con.execute(STORED_WITHIN, [run_id, first_seq, last_seq]).fetchone()
                    if taken is not None and taken[0] is not None:
                        raise SequenceConflict(
                            f"{self._path}: run {run_id}: seq {taken[0]} is already stored; "
                            "another writer got there first"
                        )
                con.execute(INSERT_BATCHES, rows)
            if self._unbounded:  # a checkpoint to bring the bound back failed: again
                with self._connection() as con:
                    self._bound_again(con)
            elif self._limit is None and self._bounds and is_large_run(last_seq // TRIAL_EVENTS):
                self._bound_long_log()
            self._heads[run_id] = max(head, last_seq)
            if ends and self._path != ":memory:":
                self._fold_wal_in_background()
        except StoreError as error:
            cause = error.__cause__
            if isinstance(cause, duckdb.ConstraintException) and "Duplicate key" in str(cause):
                match = _DUPLICATE_SEQ.search(str(cause))
                seq = match.group(1) if match else f"in {first_seq}..{last_seq}"
                raise SequenceConflict(
                    f"{self._path}: run {run_id}: seq {seq} is already stored; "
                    "another writer got there first"
                ) from cause
            raise

    def _bound_long_log(self) -> None:
        """A large run's log is appended to: bound DuckDB's memory lower from now on (ADR
        0101)."""
        with self._connection() as con:
            self._limit = LONG_LOG_LIMIT
            if not self._unbounded:
                limit_to(con, LONG_LOG_LIMIT)

    def _head(self, con: Any, run_id: str) -> int:
        """The run's highest stored seq: asked once, then kept up by this store's appends."""
        head = self._heads.get(run_id)
        if head is None:
            row = con.execute(
                "SELECT coalesce(max(seq + n - 1), 0) FROM event_batches WHERE run_id = $1",
                [run_id],
            ).fetchone()
            head = int(row[0])
        return head

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Event]]:
        """The run's `(seq, event)` pairs after `after_seq`, in seq order."""
        if self._batched:
            events: list[tuple[int, Event]] = []
            with self._connection() as con:
                first = con.execute(FIRST_ROW_AFTER, [run_id, after_seq]).fetchone()[0]
                cursor = con.execute(READ_BATCHES, [run_id, after_seq, first])
                try:  # a few rows at a time: their texts are not all held at once
                    while rows := cursor.fetchmany(64):
                        for seq, kinds, payloads in rows:
                            events.extend(split_row(seq, kinds, payloads, after_seq))
                except StoreError as error:
                    raise StoreError(f"{self._path}: run {run_id} {error}") from error
            return events
        with self._connection() as con:
            rows = con.execute(_READ_EVENTS, [run_id, after_seq]).fetchall()
        events = []
        for seq, kind, payload in rows:
            try:
                events.append((seq, decode_event(kind, payload)))
            except StoreError as error:
                raise StoreError(f"{self._path}: run {run_id} seq {seq}: {error}") from error
        return events

    def last_seq(self, run_id: str) -> int:
        """The highest seq stored for the run; 0 when it has none."""
        last, log = ("seq + n - 1", "event_batches") if self._batched else ("seq", "events")
        with self._connection() as con:
            row = con.execute(
                f"SELECT coalesce(max({last}), 0) FROM {log} WHERE run_id = $1", [run_id]
            ).fetchone()
        return int(row[0])

    def save_snapshot(self, snapshot: RunSnapshot, *, places: bool = True) -> None:
        """Keep `snapshot` as its run's one snapshot, replacing any earlier one, and the run's
        trial places the first time (the log's views place events by them), planned from it;
        `places=False`: the caller gives them later (`save_places`), having planned the run.
        A large run's text is kept in parts (`duckdb_snapshot`, ADR 0096). A new run a replay
        derived from another (`derived_from`: its cases are its source's, the replay checked)
        takes its cases' text from its source's (`keep_spliced`, ADR 0112)."""
        if parted(snapshot):
            self._save_in_parts(snapshot, places=places)
            return
        source = snapshot.provenance.get("derived_from")
        if not places and not self._reader:
            with self._connection(large=True) as con:
                self._define_pending_views(con)  # before a reader can see the run
                if not con.execute(_HAS_RUN, [snapshot.run_id]).fetchone()[0]:
                    # A derived run's cases are its source's: taken from its text (ADR 0112).
                    if source is not None and keep_spliced(con, snapshot, source):
                        return
                    # One statement commits by itself: inside an explicit transaction DuckDB
                    # held the text ~3x more at once (+30 MiB for 100k cases: ADR 0048). Its
                    # outline first: a kill between leaves an outline of no stored text.
                    text = encode_snapshot(snapshot)
                    row = [snapshot.run_id, snapshot.spec.name, snapshot.created_at, text]
                    keep_outline(con, snapshot, text_digest(text))
                    con.execute("INSERT INTO runs VALUES ($1, $2, $3, $4)", row)
                    return
        text = encode_snapshot(snapshot)
        row = [snapshot.run_id, snapshot.spec.name, snapshot.created_at, text]
        with self._transaction(large=True) as con:
            con.execute("DELETE FROM snapshot_parts WHERE run_id = $1", [snapshot.run_id])
            con.execute("INSERT OR REPLACE INTO runs VALUES ($1, $2, $3, $4)", row)
            keep_outline(con, snapshot, text_digest(text))
            if places:
                store_places(con, snapshot)

    def _save_in_parts(self, snapshot: RunSnapshot, *, places: bool) -> None:
        """Keep a large run's snapshot text in parts, each under DuckDB's inline limit, made
        and inserted a batch at a time (no text of the whole run is ever held), with its
        outline and its row in `runs` (its text NULL), in one transaction under the memory
        bound: a kill leaves all of them or none. Its places, if asked, in a second one (a
        kill between leaves a run without places, which an open places: `finish_opening`)."""
        row = [snapshot.run_id, snapshot.spec.name, snapshot.created_at, None]
        if not self._reader:
            with self._connection() as con:
                self._define_pending_views(con)  # before a reader can see the run
        with self._transaction() as con:
            con.execute("DELETE FROM snapshot_parts WHERE run_id = $1", [snapshot.run_id])
            stored_as = insert_parts(con, snapshot.run_id, snapshot_pieces(snapshot))
            keep_outline(con, snapshot, stored_as)
            con.execute("INSERT OR REPLACE INTO runs VALUES ($1, $2, $3, $4)", row)
        if places:
            with self._transaction(large=True) as con:
                store_places(con, snapshot)

    def save_places(
        self, snapshot: RunSnapshot, places: Iterable[TrialRef], *, places_from: str | None = None
    ) -> None:
        """Keep the places of `snapshot`'s run (every trial, in plan order) unless they are
        kept already (`places` is not read then); a run a replay derived from another
        (`derived_from`) copies its source's when they are the same, without comparing them
        when the caller vouches they are (`places_from` is the source: ADR 0112)."""
        source = snapshot.provenance.get("derived_from")
        with self._places_transaction() as con:
            if holds_places(con, snapshot.run_id):
                return
            if source is None:
                insert_places(con, snapshot, places)
            else:
                insert_places_like(con, snapshot, places, source, places_from=places_from)

    def load_places(self, run_id: str) -> list[tuple[str, str]] | None:
        """Each trial's `(trial_id, trial_key)` of the run's kept places (`save_places`), in
        plan order; `None` if the store keeps none of the run (its places are kept in one
        transaction: all of them or none)."""
        with self._connection() as con:
            return kept_places(con, run_id)

    @contextmanager
    def _places_transaction(self) -> Iterator[Any]:
        """The transaction `save_places` keeps a run's places in: on a cursor of their own,
        beside the log's appends instead of holding the store's lock while the run's last
        events wait for it (an execution keeps them as soon as it has read its plan, while its
        last calls are out: ADR 0073), under DuckDB's memory bound, which its uncommitted rows
        spill to the file past (a 1M-trial run's: +42 MiB, where lifting the bound held +157
        MiB: ADR 0097). Committed once."""
        if self._reader:
            raise StoreError(f"{self._path}: this connection only reads the store")
        with self._placing:
            cursor = self.cursor()
            try:
                with _committed(cursor):
                    yield cursor
            except duckdb.Error as error:
                raise StoreError(f"{self._path}: {_first_line(error)}") from error
            finally:
                cursor.close()

    def finish_opening(self) -> None:
        """What an open with `migrate=False` left for later: the places of runs that have none
        (older and killed runs) and the log's views; for the caller to call once its input is
        checked."""
        self._place_older_runs()

    def _place_older_runs(self) -> None:
        """Create the log's views if missing, and keep the places of runs stored before
        `trial_places` existed (see `themis.adapters.stores.duckdb_views`)."""
        with self._transaction(large=True) as con:
            if outdated_views(con):
                create_views(con)
            for run_id in list(runs_without_places(con)):
                text = stored_text(con, run_id)
                if text is None:  # no snapshot kept: nothing to place it by
                    continue
                try:
                    snapshot = decode_snapshot(text)
                except StoreError:  # unreadable here: report and inspect say so, not an open
                    continue
                store_places(con, snapshot)

    def load_snapshot(self, run_id: str) -> RunSnapshot | None:
        """The run's snapshot, or `None` if none was saved."""
        with self._connection(large=True) as con:
            text = stored_text(con, run_id)
        if text is None:
            return None
        try:
            return decode_snapshot(text)
        except StoreError as error:
            raise StoreError(f"{self._path}: run {run_id}: {error}") from error

    def load_outline(self, run_id: str, *, vouched: bool = False) -> SnapshotOutline | None:
        """The run's snapshot without its datasets' cases, its cases' field names and the
        sha256 of its text (`duckdb_outline.stored_outline`; with `vouched`, the outline kept
        as it is, its text not hashed); `None` if none was saved."""
        try:
            with self._connection(large=True) as con:
                return stored_outline(con, run_id, vouched=vouched)
        except StoreError as error:
            raise StoreError(f"{self._path}: run {run_id}: {error}") from error

    def snapshot_saved_as(self, run_id: str) -> str | None:
        """The sha256 of the run's snapshot text as its outline was kept with it (else hashed
        now, by DuckDB); `None` if none was saved. A kept outline's hash is one short value,
        read under the bound; only hashing the text lifts it (ADR 0110)."""
        with self._connection() as con:
            if kept_outline(con, run_id):
                return saved_as(con, run_id)
        with self._connection(large=True) as con:
            return saved_as(con, run_id)

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        """Keep `checkpoint` as the run's one checkpoint, replacing any earlier one: its head in
        `checkpoints`, its per-trial maps as rows of `checkpoint_blobs`, or of `checkpoint_chunks`
        for a large checkpoint, each part encoded, compressed and inserted before the next is
        built (no text of the whole state: ADR 0040).

        Below a large run's trials (`is_large_run`), a part is a row, inserted with the head in
        one transaction (ADR 0086: the chunks cost ~70 ms of CPU at 100,000 trials and saved no
        memory there). A large checkpoint's parts go first, in a transaction of their own
        under DuckDB's memory bound (each row under 4 KiB, so DuckDB need not hold them whole:
        ADR 0079), beside the chunks of the checkpoint they replace (told apart by `seq`);
        then the head, in a second one, replaces the earlier checkpoint and drops its parts. A
        kill between leaves the earlier checkpoint whole (or none, if it was at the same
        `seq`): its reader folds the rest.

        A large checkpoint's case table, and its report if longer than a chunk, are chunks of
        `checkpoint_texts` beside the parts (its `checkpoints.report` NULL then): its head is
        then a few small values, kept under the bound too (the case table and report whole
        lifted it: the 1M run's peak, ADR 0101)."""
        encoded = encode_checkpoint(checkpoint)
        seq = checkpoint.seq
        report = encoded.report
        # Encoded before the transactions: its transients never stand beside what they hold.
        cases = None if checkpoint.cases is None else encode_case_table(checkpoint.cases)
        if not encoded.chunked:  # a row per part, all in one transaction (ADR 0086)
            row = [run_id, seq, encoded.summary, encoded.state, report]
            with self._transaction(large=True) as con:
                _replaced_checkpoint(con, run_id, seq, cases)
                for part, body in enumerate(encoded.parts):
                    con.execute(
                        "INSERT INTO checkpoint_blobs VALUES ($1, $2, $3)", [run_id, part, body]
                    )
                con.execute("INSERT INTO checkpoints VALUES ($1, $2, $3, $4, $5)", row)
            return
        long_report = report is not None and len(report) > CHUNK_BYTES
        with self._saving_chunks(), self._transaction() as con:
            # A head at this seq would read the chunks replaced here: it goes with them.
            con.execute("DELETE FROM checkpoints WHERE run_id = $1 AND seq = $2", [run_id, seq])
            for table in _CHUNKED_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = $1 AND seq = $2", [run_id, seq])
            for part, body in enumerate(encoded.parts):
                con.execute(_INSERT_CHUNKS, [run_id, seq, part, _chunks(body)])
            if long_report and report is not None:
                _insert_text(con, run_id, seq, "report", report.encode())
            if cases is not None:
                _insert_text(con, run_id, seq, "cases", cases)
        del cases
        row = [run_id, seq, encoded.summary, encoded.state, None if long_report else report]
        # Lifted only for a head value DuckDB keeps outside its blocks (a state of many earlier
        # failures or judgements); DELETE + INSERT: half the time of INSERT OR REPLACE for a
        # 30 MB state (measured).
        large = any(isinstance(value, str) and len(value) > CHUNK_BYTES for value in row)
        with self._transaction(large=large) as con:
            _replaced_checkpoint(con, run_id, seq, None, keep_chunks=True)
            con.execute("INSERT INTO checkpoints VALUES ($1, $2, $3, $4, $5)", row)

    @contextmanager
    def _saving_chunks(self) -> Iterator[None]:
        """A large checkpoint's chunks inserted and committed under `SAVE_LIMIT` (ADR 0101), the
        store's bound back after; not while a run's places are being kept on their own cursor
        (their rows need the bound's room: ADR 0098), nor if the bound is lifted."""
        lowered = self._bounds and not self._unbounded and self._placing.acquire(blocking=False)
        try:
            if lowered:
                with self._connection() as con:
                    limit_to(con, SAVE_LIMIT)
            yield
        finally:
            if lowered:
                try:
                    with self._connection() as con:
                        if not self._unbounded:
                            limit_to(con, self._limit)
                finally:
                    self._placing.release()

    def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        """The run's checkpoint, or `None` if none was saved (or another Themis format wrote it).
        Its parts are read with the memory bound lifted (~0.2 GiB at 1M trials)."""
        with self._connection(large=True) as con:
            row = con.execute(
                "SELECT seq, summary, state, report FROM checkpoints WHERE run_id = $1", [run_id]
            ).fetchone()
            if row is None:
                return None
            seq, summary, state, report = row
            if report is None:  # a large checkpoint's long report is in chunks (ADR 0101)
                report = _report_text(con, run_id)
            try:
                parts = (
                    _chunked_parts(con, run_id, seq)
                    if chunked_parts(state)
                    else _checkpoint_parts(con, run_id, compressed_parts(state))
                )
                return decode_checkpoint(seq, summary, state, report, parts)
            except StoreError as error:
                raise StoreError(f"{self._path}: run {run_id}: {error}") from error

    def load_case_table(self, run_id: str) -> CaseTable | None:
        """The case table the run's final checkpoint kept (ADR 0072), while no event was logged
        after it; `None` without one (a run of few trials, one whose rows are not plain, a
        checkpoint not final, a store written before), or one this Themis cannot read."""
        with self._connection() as con:
            try:
                row = con.execute(
                    "SELECT seq, body FROM checkpoint_cases WHERE run_id = $1", [run_id]
                ).fetchone()
            except duckdb.CatalogException:  # written before the table: not kept
                return None
            if row is None:  # a large checkpoint's, in chunks (ADR 0101)
                body = _stored_text(con, run_id, "cases")
                head = con.execute("SELECT seq FROM checkpoints WHERE run_id = $1", [run_id])
                row = None if body is None else (head.fetchone()[0], body)
        if row is None or row[0] != self.last_seq(run_id):
            return None
        try:
            return decode_case_table(row[1])
        except StoreError:
            return None

    def load_checkpoint_summary(self, run_id: str) -> CheckpointSummary | None:
        """The summary of the run's checkpoint, without reading its state column."""
        with self._connection() as con:
            row = con.execute(
                "SELECT seq, summary, report FROM checkpoints WHERE run_id = $1", [run_id]
            ).fetchone()
            if row is not None and row[2] is None:  # a long report in chunks (ADR 0101)
                row = (row[0], row[1], _report_text(con, run_id))
        if row is None:
            return None
        try:
            return decode_checkpoint_summary(*row)
        except StoreError as error:
            raise StoreError(f"{self._path}: run {run_id}: {error}") from error

    def find_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, tuple[str, GenerationCompleted]]:
        """Completed generations of `trial_keys` in other runs: the earliest-created run's first."""
        if not trial_keys:
            return {}
        kind, keys = GenerationCompleted.kind, list(trial_keys)
        with self._connection() as con:
            if self._batched:
                rows = list(first_of_kind(con, kind, exclude_run, keys))
            else:
                rows = con.execute(_FIND_GENERATIONS, [kind, exclude_run, keys]).fetchall()
        found: dict[str, tuple[str, GenerationCompleted]] = {}
        for trial_key, run_id, payload in rows:
            try:
                event = decode_event(GenerationCompleted.kind, payload)
            except StoreError as error:
                raise StoreError(f"{self._path}: run {run_id}: {error}") from error
            if isinstance(event, GenerationCompleted):
                found[trial_key] = (run_id, event)
        return found

    def locate_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, GenerationPlace]:
        """Where `find_generations` finds each of `trial_keys`' generation (no payload is
        read)."""
        if not trial_keys:
            return {}
        kind = GenerationCompleted.kind
        with self._connection() as con:
            if self._batched:
                places = first_places_of_kind(con, kind, exclude_run, trial_keys)
                return {
                    key: GenerationPlace(run_id, seq + index)
                    for key, (run_id, seq, index) in places.items()
                }
            parameters = [kind, exclude_run, list(trial_keys)]
            rows = con.execute(_LOCATE_GENERATIONS, parameters).fetchall()
        return {key: GenerationPlace(run_id, seq) for key, run_id, seq in rows}

    def locate_places(
        self, run_id: str, exclude_run: str
    ) -> tuple[list[tuple[str, str]], dict[str, GenerationPlace]] | None:
        """The run's kept places (`load_places`) and where `locate_generations(their keys,
        exclude_run)` finds each, read in one statement when the run is the first that search
        reads and its log holds every key's generation (`duckdb_located`); else `None`."""
        if not self._batched:
            return None
        with self._connection() as con:
            return located_places(con, run_id, GenerationCompleted.kind, exclude_run)

    def read_generations(
        self, places: Mapping[str, GenerationPlace]
    ) -> dict[str, tuple[str, GenerationCompleted]]:
        """The completed generation of each key at its place (`locate_generations`), read a
        run at a time."""
        by_run: dict[str, dict[int, str]] = {}
        for key, (run_id, seq) in places.items():
            by_run.setdefault(run_id, {})[seq] = key
        found: dict[str, tuple[str, GenerationCompleted]] = {}
        with self._connection() as con:
            for run_id, keys in by_run.items():
                try:
                    for seq, event in self._generations_at(con, run_id, keys):
                        if event.trial_key == keys[seq]:
                            found[keys[seq]] = (run_id, event)
                except StoreError as error:
                    raise StoreError(f"{self._path}: run {run_id}: {error}") from error
        return found

    def read_generation_columns(
        self, run_id: str, seqs: Sequence[int], keys: Sequence[str]
    ) -> GenerationColumns | None:
        """Run `run_id`'s completed generations at `seqs` as columns, parsed by DuckDB
        (`duckdb_generations.generation_columns`, `keys` the plans' strings held for theirs);
        `None` for a log of schema 1-3 (no batch rows to read them from)."""
        if not self._batched:
            return None
        with self._connection() as con:
            return generation_columns(con, run_id, seqs, keys)

    def _generations_at(
        self, con: Any, run_id: str, keys: Mapping[int, str]
    ) -> Iterator[tuple[int, GenerationCompleted]]:
        """Run `run_id`'s completed generations at the seqs of `keys`: parsed by DuckDB from a
        log of batch rows (ADR 0091), decoded one by one from a schema 1-3 log."""
        if self._batched:
            yield from generations_at(con, run_id, keys.keys(), keys)
            return
        stored = con.execute(_EVENTS_BETWEEN, [run_id, min(keys), max(keys)]).fetchall()
        for seq, kind, payload in stored:
            if seq in keys and kind == GenerationCompleted.kind:
                event = decode_event(kind, payload)
                if isinstance(event, GenerationCompleted):
                    yield seq, event

    def runs(self) -> list[RunSummary]:
        """One summary per saved snapshot, oldest first (ties by run id)."""
        log = ("n", "event_batches") if self._batched else ("1", "events")
        with self._connection() as con:
            rows = con.execute(_RUNS.format(count=log[0], log=log[1])).fetchall()
        return [
            RunSummary(run_id=run_id, name=name, created_at=created_at, event_count=count)
            for run_id, name, created_at, count in rows
        ]

    def delete_run(self, run_id: str) -> None:
        """Remove the run's events, snapshot and checkpoint at once; unknown runs are ignored."""
        self._heads.pop(run_id, None)
        with self._transaction(large=True) as con:
            con.execute("DELETE FROM event_batches WHERE run_id = $1", [run_id])
            con.execute("DELETE FROM runs WHERE run_id = $1", [run_id])
            con.execute("DELETE FROM snapshot_parts WHERE run_id = $1", [run_id])
            con.execute("DELETE FROM run_outlines WHERE run_id = $1", [run_id])
            _dropped_checkpoint(con, run_id)
            con.execute("DELETE FROM trial_places WHERE run_id = $1", [run_id])
            con.execute("DELETE FROM compiled_facts WHERE key = $1", [run_key(run_id)])

    def save_facts(self, key: str, facts: CompiledFacts) -> None:
        """Keep `facts` under `key`, replacing any earlier entry."""
        text = json.dumps(attrs.asdict(facts, recurse=True), separators=(",", ":"))
        with self._transaction() as con:
            con.execute("INSERT OR REPLACE INTO compiled_facts VALUES ($1, $2)", [key, text])

    def load_facts(self, key: str) -> CompiledFacts | None:
        """The entry under `key`; `None` if there is none, or the store has no such table yet
        (written before it existed, and opened read-only since), or the entry is unreadable."""
        with self._lock:
            try:
                row = self._con.execute(
                    "SELECT facts FROM compiled_facts WHERE key = $1", [key]
                ).fetchone()
            except duckdb.CatalogException:
                return None
            except duckdb.Error as error:
                raise StoreError(f"{self._path}: {_first_line(error)}") from error
        if row is None:
            return None
        try:
            return CompiledFacts(**json.loads(row[0]))
        except (TypeError, ValueError):  # a cache: an entry it cannot read is no entry
            return None

    def _fold_wal_in_background(self) -> None:
        """`CHECKPOINT` in a thread (see the module docstring); a failure leaves the log in the
        write-ahead file, where the next checkpoint (or `close`) folds it."""

        previous = self._folding

        def fold() -> None:
            if previous is not None:
                previous.join()  # `close` joins the last one only
            with self._lock, suppress(duckdb.Error):
                self._con.execute("CHECKPOINT")

        # Signal-safe (`themis.threads`): a join interrupted by Ctrl-C leaves it alive, so
        # `close` can still wait for DuckDB to finish.
        self._folding = SignalSafeThread(fold, name="themis-duckdb-checkpoint")
        self._folding.start()

    def shed_memory(self) -> None:
        """A run's appends are done: give back the blocks DuckDB keeps of the log it wrote and
        read (`duckdb_bound.shed`), so that the run's end (its report, case table and final
        checkpoint) is built beside none of them. Nothing when the store is not bounded. Waits
        for places being kept on their own cursor: the limit is never lowered beside them."""
        with self._placing, self._connection() as con:
            if self._bounds and not self._unbounded:
                shed(con, self._limit)

    def close(self) -> None:
        """Release the connection (and the file lock) once the background fold has ended; later
        calls raise `StoreError`. A Ctrl-C while it waits is let out after the fold and the
        close (a process ending with DuckDB still folding may crash); a second one is not."""
        try:
            if self._folding is not None:
                self._folding.join_through_interrupt()
        finally:
            with self._connection() as con:
                try:
                    self._define_pending_views(con)  # a new store closed before any write
                finally:
                    if self._detaches and self._database is not None:
                        detach(con, self._database)
                    held, self._held = self._held, None
                    try:
                        con.close()
                    finally:
                        if held is not None:  # once: a second `close` releases nothing
                            release(held)
