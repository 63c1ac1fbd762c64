"""Pages of one run's log for the viewer (`themis view`): trials a page at a time, failures
grouped by kind, and the cases where two sides of a comparison disagree.

Every call opens the store read-only as every reader does (`DuckDBStore(read_only=True)`: a
held store raises `StoreLocked` at once, another program's file is refused), runs one query over
the log's views (`duckdb_views`) with `LIMIT`/`OFFSET`, and closes it again, so a viewer never
keeps a writer waiting for more than one query. Given an open store instead (the process holding
the file, viewing the run it executes), each query takes a cursor of it. Nothing here loops over
trials in Python, and nothing is written to the store: a run whose trial places the store does
not keep yet (one executing now, or one killed before its execution ended) is placed by places
planned from its snapshot into this browser's own memory (ADR 0044).
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final

import attrs

from themis.adapters.codec import decode_event
from themis.adapters.duckdb_engine import duckdb, with_relations
from themis.adapters.duckdb_quiet import quiet_connection
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_case import KEYED_EVENTS, CaseReading, read_case
from themis.adapters.stores.duckdb_log import events_of_rows, keyed_rows
from themis.adapters.stores.duckdb_trial_rows import (
    LogParts,
    NarrowRows,
    PlannedPlaces,
    case_values,
    metric_path,
    metric_rows,
    search_rows,
    timing_rows,
    trial_rows,
)
from themis.adapters.stores.duckdb_views import holds_places, ref_columns
from themis.core.case_table import CaseTable
from themis.core.errors import StoreError
from themis.core.events import Event, RunResumed
from themis.core.planner import TrialRef
from themis.core.snapshot import RunSnapshot

# Whether the store file keeps a run's places.
__all__ = ["TRIAL_SORTS", "FailureKind", "LogBrowser", "Page"]

# Columns a page of trials may be sorted by (anything else is refused by the caller).
TRIAL_SORTS = ("position", "case_id", "model", "prompt", "status", "latency_s", "output_tokens")
# Names of the memory databases browsers of open stores attach (one each).
_ATTACHED = itertools.count()
# How many of the log's newest events `latest` reads first.
_NEWEST = 4096
# Numbers of the copies of trial rows (a name is never used twice in a process).
_COPIES = itertools.count()


@attrs.frozen
class Page:
    """Rows `offset …` of `total` matching rows, each a column → value mapping."""

    total: int
    offset: int
    rows: tuple[dict[str, Any], ...]


@attrs.frozen
class _Copy:
    """A copy of a run's trial rows: its table, the last seq of the log it reflects and that
    event's `recorded_at` (what tells a grown log from another one)."""

    name: str
    upto: int
    stamp: Any


@attrs.frozen
class FailureKind:
    """How many trials of a run failed for good with `error_kind`, and a few of their cases."""

    error_kind: str
    count: int
    cases: tuple[str, ...]


class LogBrowser:
    """Read-only, paginated queries on the DuckDB store at `source` (a path), or on the open
    store `source` (whose owner closes it).

    From a path, each run's trial rows are computed once per state of its log (its last seq)
    into this browser's own in-memory DuckDB database, and every page is a query of that copy
    (ADR 0033): the store file is only opened to see whether the log grew, and never written.
    """

    def __init__(self, source: str | DuckDBStore) -> None:
        self._source = source
        self._path = source if isinstance(source, str) else source.path
        self._memory: Any = None
        self._tables: dict[str, tuple[int, _Copy]] = {}  # run id -> (event count, its copy)
        self._building = threading.Lock()
        # Places of runs the store keeps none of: in the memory database from a path; from an
        # open store, in a memory database attached to its instance (never in the file).
        self._own = "" if isinstance(source, str) else f"themis_viewer_{next(_ATTACHED)}"
        self._planned = PlannedPlaces(self._own_database if self._own else lambda con: "")
        self._own_attached: bool | None = None  # unknown until first needed
        self._attach = threading.Lock()
        # Answers computed from a few trials' rows of a run not kept yet (`_rows_of`), by the
        # run's event count: a page asked for again before the run is kept is not recomputed.
        self._narrowed: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        # What a comparison, a search or a sort reads of a run not kept yet (`_made_table`),
        # by (run id, what it holds) -> (its event count, the table).
        self._narrowed_tables: dict[tuple[str, tuple[str, ...]], tuple[int, str]] = {}
        # The case table each run's final checkpoint keeps (ADR 0072), or `None` for none, by
        # (run id, its event count).
        self._stored_cases: dict[tuple[str, int | None], CaseTable | None] = {}
        self._log_batched = False
        # Each run's event count as the caller last read it (`kept` trusts it when given).
        self.versions: dict[str, int] = {}
        # How the narrow reads (`_rows_of`, `failure_kinds`) name the store's tables: attached
        # as `store` from a path, the cursor's own from an open store.
        self._store = "" if isinstance(source, DuckDBStore) else "store."

    def _places(self, run_id: str) -> str:
        """From an open store: the table of the run's places (see `PlannedPlaces`)."""
        assert isinstance(self._source, DuckDBStore)
        cursor = self._source.cursor()
        try:
            return self._planned.table(cursor, run_id)
        except duckdb.Error as error:
            raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
        finally:
            cursor.close()

    def _own_database(self, con: Any) -> str:
        """The memory database attached to the open store's instance (at the first need)."""
        with self._attach:
            if not self._own_attached:
                con.execute(f"ATTACH ':memory:' AS {self._own}")
                self._own_attached = True
        return f"{self._own}."

    def _attached(
        self, sql: str, parameters: dict[str, Any], run_id: str | None
    ) -> list[dict[str, Any]]:
        """From a path: `sql` on this browser's memory database with the store attached
        read-only as `store`, `{places}` standing for the table of the places of run `run_id`
        (`None`: `sql` reads no places). From an open store: `sql` on a cursor of it, its
        tables named without a prefix (`_store`)."""
        if isinstance(self._source, DuckDBStore):
            if run_id is not None:
                sql = sql.format(places=self._places(run_id))
            return self._query(sql, parameters)
        with self._building:
            cursor = self._memory_database().cursor()
            try:
                cursor.execute("ATTACH $path AS store (READ_ONLY)", {"path": self._path})
            except duckdb.Error as error:
                cursor.close()
                raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
            try:
                if run_id is not None:
                    sql = sql.format(places=self._planned.table(cursor, run_id, "store.main."))
                return self._run(cursor, sql, parameters, close=False)
            finally:
                with suppress(duckdb.Error):
                    cursor.execute("DETACH store")
                cursor.close()

    def _query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        with self.opened() as store:
            return self._run(store.cursor(), sql, parameters)

    @contextmanager
    def opened(self) -> Iterator[DuckDBStore]:
        """The store, open for a few reads: the open store this browser was given (left open),
        or the file attached read-only inside this browser's memory database
        (`DuckDBStore.attached`: ~2 ms of CPU where a connection of its own costs ~18, ADR
        0066; `StoreLocked` at once while another process holds it, as every read-only open),
        and closed (detached) afterwards."""
        if isinstance(self._source, DuckDBStore):
            yield self._source
            return
        store = DuckDBStore.attached(self._host(), self._path, lock_wait=0.0)
        try:
            yield store
        finally:
            store.close()

    def _host(self) -> Any:
        """This browser's memory database (made at its first need)."""
        with self._building:
            return self._memory_database()

    def _memory_database(self) -> Any:
        """This browser's memory database, made at its first need (the caller holds
        `_building`)."""
        if self._memory is None:
            self._memory = quiet_connection()
        return self._memory

    def _run(
        self, cursor: Any, sql: str, parameters: dict[str, Any], *, close: bool = True
    ) -> list[dict[str, Any]]:
        try:
            result = cursor.execute(sql, parameters)
            names = [column[0] for column in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        except Exception as error:
            raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
        finally:
            if close:
                cursor.close()

    def _over_rows(
        self, sql: str, parameters: dict[str, Any], runs: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Run `sql`, whose `{name}` placeholders stand for the trial rows of `runs[name]`: the
        kept copies of them (see `kept`), or, from an open store that cannot attach a memory
        database (a read-only one), the rows computed in the store for this query."""
        if not self._keeps_copies():  # computed once per query, however named
            rows = ", ".join(
                f"rows_{name} AS MATERIALIZED ({trial_rows(name, places=self._places(run))})"
                for name, run in runs.items()
            )
            sources = {name: f"rows_{name}" for name in runs}
            query = sql.format(**sources)
            if not rows:
                return self._query(query, parameters)
            query = (
                f"WITH {rows}, {query[5:]}" if query.startswith("WITH ") else f"WITH {rows} {query}"
            )
            return self._query(query, {**parameters, **runs})
        sources = {name: self.kept(run, self.versions.get(run)) for name, run in runs.items()}
        return self._run(self._copies(), sql.format(**sources), parameters)

    def _metric_table(self, run_id: str, metrics: Sequence[str]) -> str:
        """From a path, for a run whose trial rows are not kept: a table of this browser's own
        with what a comparison reads of each trial (`metric_rows`: place, status if settled,
        its value on each of `metrics`), made without parsing a generation or a parse, nor a
        score's other metrics (ADR 0067)."""

        def made(cursor: Any, places: str) -> tuple[str, dict[str, Any]]:
            return _metric_query(cursor, run_id, "store.", places, metrics)

        return self._made_table(run_id, ("metric_rows", *metrics), made)

    def _case_table(self, run_id: str, metrics: Sequence[str]) -> str:
        """From a path, for a run whose trial rows are not kept: a table of this browser's own
        with each case's values on `metrics` (`case_values` of its `metric_rows`, ADR 0067)."""

        def made(cursor: Any, places: str) -> tuple[str, dict[str, Any]]:
            rows, parameters = _metric_query(cursor, run_id, "store.", places, metrics)
            return case_values(f"({rows})", len(metrics)), parameters

        return self._made_table(run_id, ("case_values", *metrics), made)

    def _stored_table(self, run_id: str, stored: CaseTable) -> str:
        """A table of this browser's own with each case's values as the run's final checkpoint
        keeps them (ADR 0072), in `case_values`' columns that a disagreement reads (`n`, and per
        metric `a<i>`, `c<i>`), made from its arrays without reading the log."""
        import numpy as np

        # Texts as Python objects: DuckDB reads numpy's fixed-width texts ~5x slower.
        sizes = np.diff(stored.bounds)
        columns: dict[str, Any] = {
            name: np.repeat(np.asarray([group[at] for group in stored.groups], object), sizes)
            for at, name in enumerate(("dataset", "model", "prompt"))
        }
        columns |= {"case_id": stored.cases.astype(object), "n": stored.settled}
        # A case none of whose values is present sums to NULL, as `case_values`' `sum`.
        chosen = ["dataset", "model", "prompt", "case_id", "n"]
        for i in range(len(stored.metrics)):
            columns |= {f"a{i}": stored.present_sums[i], f"c{i}": stored.present_counts[i]}
            chosen += [f"CASE WHEN c{i} > 0 THEN a{i} END AS a{i}", f"c{i}"]

        def make(cursor: Any, name: str) -> None:
            cursor.register("stored", columns)
            cursor.execute(f"CREATE TABLE {name} AS SELECT {', '.join(chosen)} FROM stored")
            cursor.unregister("stored")

        return self._kept_table(run_id, ("stored_cases",), make)

    def _narrow_table(self, run_id: str, query: NarrowRows) -> str:
        """From a path, for a run whose trial rows are not kept: a table of this browser's own
        with the rows `query` (`search_rows`, `timing_rows`) gives of each of its trials."""

        def made(cursor: Any, places: str) -> tuple[str, dict[str, Any]]:
            parts, parameters = _log_parts(cursor, run_id, "store.", _READS[query.name])
            return query("run", places, parts), parameters

        return self._made_table(run_id, (query.name,), made)

    def _made_table(
        self,
        run_id: str,
        what: tuple[str, ...],
        made: Callable[[Any, str], tuple[str, dict[str, Any]]],
    ) -> str:
        """A table of this browser's own made by the query `made(cursor, places)` gives (with
        its parameters; `$run` is the run, `store.` the store file attached, `places` the
        run's places), kept by (run, `what`) while the run's event count is as last listed."""

        def make(cursor: Any, name: str) -> None:
            cursor.execute("ATTACH $path AS store (READ_ONLY)", {"path": self._path})
            try:
                places = self._planned.table(cursor, run_id, "store.main.")
                sql, parameters = made(cursor, places)
                cursor.execute(f"CREATE TABLE {name} AS {sql}", {**parameters, "run": run_id})
            finally:
                cursor.execute("DETACH store")

        return self._kept_table(run_id, what, make)

    def _kept_table(
        self, run_id: str, what: tuple[str, ...], make: Callable[[Any, str], None]
    ) -> str:
        """The table of this browser's own that `make(cursor, name)` creates, kept by (run,
        `what`) while the run's event count is as last listed (the one it replaces dropped)."""
        version = self.versions.get(run_id)
        with self._building:
            held = self._narrowed_tables.get((run_id, what))
            if held is not None and version is not None and held[0] == version:
                return held[1]
            name = _quoted(f"{what[0]}_{next(_COPIES)}_{run_id[:16]}")
            cursor = self._memory_database().cursor()
            try:
                make(cursor, name)
                if held is not None:
                    cursor.execute(f"DROP TABLE {held[1]}")
            except duckdb.Error as error:
                raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
            finally:
                cursor.close()
            if version is not None:
                self._narrowed_tables[(run_id, what)] = (version, name)
        return name

    def _keeps_copies(self) -> bool:
        """Whether the trial rows are kept in a database of this browser's own: always from a
        path; from an open store, when its instance can attach a memory database."""
        if not isinstance(self._source, DuckDBStore):
            return True
        if self._own_attached is None:
            cursor = self._source.cursor()
            try:
                self._own_database(cursor)
            except duckdb.Error:
                self._own_attached = False
            finally:
                cursor.close()
        return bool(self._own_attached)

    def _copies(self) -> Any:
        """A cursor that sees the kept copies (close it when done)."""
        if isinstance(self._source, DuckDBStore):
            return self._source.cursor()
        return self._memory.cursor()

    def _batched(self) -> bool:
        """Whether the store keeps its log in `event_batches` (once seen, for good)."""
        if not self._log_batched:
            with self.opened() as store:
                cursor = store.cursor()
                try:
                    self._log_batched = _batched(cursor, "")
                finally:
                    cursor.close()
        return self._log_batched

    def close(self) -> None:
        """Drop what this browser keeps (its copies and planned places; from an open store, the
        memory database it attached to the store's instance, which its owner keeps open)."""
        with self._building:
            if isinstance(self._source, DuckDBStore):
                if self._own_attached:
                    cursor = self._source.cursor()
                    try:
                        cursor.execute(f"DETACH {self._own}")
                    except duckdb.Error:
                        pass  # the store is closed already, and its instance with it
                    finally:
                        cursor.close()
            elif self._memory is not None:
                self._memory.close()
                self._memory = None
            self._own_attached = None
            self._tables.clear()
            self._narrowed.clear()
            self._narrowed_tables.clear()
            self._stored_cases.clear()
            self._planned = PlannedPlaces(self._own_database if self._own else lambda con: "")

    def fingerprint(self) -> tuple[int, ...] | None:
        """What changes whenever the store file's content can have changed (the size and
        modification time of the file and of its write-ahead log); `None` for an open store."""
        if isinstance(self._source, DuckDBStore):
            return None
        stamps: list[int] = []
        for path in (self._path, self._path + ".wal"):
            try:
                status = os.stat(path)
            except FileNotFoundError:
                stamps.extend((-1, -1))
            else:
                stamps.extend((status.st_size, status.st_mtime_ns))
        return tuple(stamps)

    def kept(self, run_id: str, version: int | None = None) -> str:
        """The table holding the run's trial rows as its log stands now (computed when the log
        has grown since, or never was), in this browser's memory database (from an open store,
        the one attached to its instance). `version` is the run's event count when the caller
        knows it; else the store is asked for its last seq."""
        if version is None:
            counted = (
                "SELECT coalesce(sum(n), 0) AS n FROM event_batches"
                if self._batched()
                else "SELECT count(*) AS n FROM events"
            )
            version = int(self._query(f"{counted} WHERE run_id = $run", {"run": run_id})[0]["n"])
        with self._building:
            version_held, held = self._tables.get(run_id, (None, None))
            if held is not None and version_held == version:
                return held.name
            if isinstance(self._source, DuckDBStore):
                cursor, store = self._source.cursor(), ""
            else:
                cursor, store = self._memory_database().cursor(), "store."
            try:
                if store:
                    cursor.execute("ATTACH $path AS store (READ_ONLY)", {"path": self._path})
                try:
                    places = self._planned.table(cursor, run_id, f"{store}main." if store else "")
                    copied = self._copy(cursor, run_id, (store, places), held)
                finally:
                    if store:
                        cursor.execute("DETACH store")
            except duckdb.Error as error:
                raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
            finally:
                cursor.close()
            self._tables[run_id] = (version, copied)
            return copied.name

    def _copy(self, cursor: Any, run_id: str, source: tuple[str, str], held: _Copy | None) -> _Copy:
        """The run's trial rows through its log's last seq now, in a table of this browser's
        own: `held` (a copy through an earlier seq) brought up to date when the log only grew
        (its event at the copy's last seq is still the one copied) by events other than resets
        — the rows of the trials whose keys the new events name are computed again, nothing
        else (ADR 0052) — else a new copy."""
        store, places = source
        parameters: dict[str, Any] = {"run": run_id, "after": 0 if held is None else held.upto}
        batched = _batched(cursor, store)
        since = f"{store}events"
        if batched:  # the rows from the one holding seq `after` on: a bound on `seq` itself,
            # which DuckDB applies before reading payloads (ADR 0054)
            parameters["first"] = cursor.execute(
                f"SELECT coalesce(max(seq), $after) FROM {store}event_batches"
                " WHERE run_id = $run AND seq <= $after",
                parameters,
            ).fetchone()[0]
            since = events_of_rows(store, " AND seq >= $first AND seq + n > $after")
        upto, stamp, resets, then = cursor.execute(
            "SELECT max(seq), arg_max(recorded_at, seq),"
            " count(*) FILTER (WHERE kind = 'stage_reset' AND seq > $after),"
            f" max(recorded_at) FILTER (WHERE seq = $after) FROM {since}"
            " WHERE run_id = $run AND seq >= $after",
            parameters,
        ).fetchone()
        grown = held is not None and then is not None and then == held.stamp
        if held is not None and grown and upto == held.upto:
            return held
        parameters["upto"] = upto = upto or 0
        bounded = " AND seq <= $upto"
        if held is not None and grown and not resets:
            found = cursor.execute(
                f"SELECT list(DISTINCT trial_key) FROM {since} WHERE run_id = $run"
                " AND seq > $after AND seq <= $upto AND trial_key IS NOT NULL",
                parameters,
            ).fetchone()
            keys = {"run": run_id, "upto": upto, "keys": found[0] if found and found[0] else []}
            touched = "(SELECT unnest($keys::VARCHAR[]))"
            only = f" AND (trial_key IS NULL OR trial_key IN {touched})"
            # Only the log's rows that hold an event of those trials (or a reset) are split.
            log = (
                events_of_rows(
                    store,
                    " AND (list_has_any(CAST(json(trial_keys) AS VARCHAR[]),"
                    " $keys::VARCHAR[]) OR contains(kinds, 'stage_reset'))",
                    timed=False,
                )
                if batched
                else None
            )
            rows = trial_rows(
                "run", store, places, bounded + only, f" AND trial_key IN {touched}", log
            )
            cursor.execute("BEGIN TRANSACTION")
            cursor.execute(
                f"DELETE FROM {held.name} WHERE trial_key IN {touched}", {"keys": keys["keys"]}
            )
            cursor.execute(f"INSERT INTO {held.name} {rows}", keys)
            cursor.execute("COMMIT")
            return _Copy(held.name, upto, stamp)
        name = _quoted(f"trials_{next(_COPIES)}_{upto}_{run_id[:16]}")
        if not store:
            name = f"{self._own}.{name}"
        if held is not None:
            cursor.execute(f"DROP TABLE {held.name}")
        del parameters["after"]
        parameters.pop("first", None)
        rows = trial_rows("run", store, places, bounded, log=_untimed(cursor, store))
        cursor.execute(f"CREATE TABLE {name} AS {rows}", parameters)
        return _Copy(name, upto, stamp)

    def give_places(self, snapshot: RunSnapshot, refs: Iterable[TrialRef]) -> None:
        """Where the trials of the run `snapshot` names belong, as a plan already read gives
        them (`refs`, every trial in plan order): a run whose store keeps no places yet (one
        executing now) is then placed from them, not planned again (ADR 0057)."""
        self._planned.give(snapshot.run_id, functools.partial(ref_columns, snapshot, refs))

    def place(self, run_id: str) -> None:
        """From an open store: make the table of the run's places ready now (planned places of
        a run the store keeps none of yet; see `give_places`), before a page needs it."""
        if isinstance(self._source, DuckDBStore) and self._keeps_copies():
            self._places(run_id)

    def outline(self, run_id: str) -> tuple[RunSnapshot, tuple[str, ...]] | None:
        """The run's snapshot without its datasets' cases, and its cases' field names (the
        outline kept with the snapshot, else cut out of it: `duckdb_outline`); `None` for a
        run the store has no snapshot of."""
        with self.opened() as store:
            found = store.load_outline(run_id)
        return None if found is None else (found.snapshot, found.fields)

    def stored_cases(self, run_id: str) -> CaseTable | None:
        """The case table the run's final checkpoint keeps (`DuckDBStore.load_case_table`),
        read once per state of its log as last listed; `None` for none (an open store: its
        owner reads its own)."""
        if isinstance(self._source, DuckDBStore):
            return None
        key = (run_id, self.versions.get(run_id))
        if key not in self._stored_cases:
            with self.opened() as store:
                found = store.load_case_table(run_id)
            if key[1] is None:
                return found
            with self._building:
                for old in [old for old in self._stored_cases if old[0] == run_id]:
                    del self._stored_cases[old]
                self._stored_cases[key] = found
        return self._stored_cases[key]

    def hand_over(self, other: LogBrowser) -> None:
        """Give `other` (a browser of this store's file, once the store is released) this
        browser's copies of trial rows, each brought up to date first: the pages of a run
        followed while it ran then answer at once from the file (ADR 0052)."""
        if self._tables:
            with_relations()  # `sql` and `to_arrow_table` below (ADR 0123)
        for run_id in list(self._tables):
            try:
                self.kept(run_id)  # through the log's last seq now
            except StoreError:
                continue
            version, copy = self._tables[run_id]
            cursor = self._copies()
            try:  # as Arrow: no row passes through Python
                rows = cursor.sql(f"SELECT * FROM {copy.name}").to_arrow_table()
            except duckdb.Error:
                continue  # not handed over: the other browser copies the run itself
            finally:
                cursor.close()
            other.receive(run_id, version, attrs.evolve(copy, name=""), rows)

    def receive(self, run_id: str, version: int, copy: _Copy, rows: Any) -> None:
        """Keep `rows` (an Arrow table) as the run's copy `copy` of trial rows (a browser from
        a path; see `hand_over`)."""
        name = _quoted(f"trials_{next(_COPIES)}_{copy.upto}_{run_id[:16]}")
        with self._building:
            cursor = self._memory_database().cursor()
            try:
                cursor.register("handed", rows)
                cursor.execute(f"CREATE TABLE {name} AS SELECT * FROM handed")
                cursor.unregister("handed")
            finally:
                cursor.close()
            self._tables[run_id] = (version, attrs.evolve(copy, name=name))
            self.versions[run_id] = version

    def holds(self, run_id: str, version: int | None) -> bool:
        """Whether the run's trial rows are kept for the log's state `version`."""
        held = self._tables.get(run_id)
        return held is not None and held[0] == version

    def trials(
        self,
        run_id: str,
        *,
        offset: int = 0,
        limit: int = 50,
        search: str = "",
        sort: str = "position",
        descending: bool = False,
    ) -> Page:
        """A page of the run's trials (`trials` view columns, `scores` as a mapping, and the first
        `RESPONSE_CHARS` of the response), optionally only those whose case, model, prompt,
        status or answer contains every word of `search`."""
        if sort not in TRIAL_SORTS:
            raise StoreError(f"sort: must be one of {', '.join(TRIAL_SORTS)}; got {sort!r}")
        words = search.lower().split()
        plan_order = sort == "position" and not words
        if plan_order and (self._narrow(run_id) or self._open_narrow(run_id)):
            return self._plan_page(run_id, offset, limit, descending=descending)
        where = "".join(f" AND t.haystack LIKE $w{index}" for index in range(len(words)))
        direction = "DESC" if descending else "ASC"
        order = f"t.{sort} {direction} NULLS LAST, t.position"
        words_given = {f"w{index}": f"%{word}%" for index, word in enumerate(words)}
        if self._narrow(run_id):
            return self._searched_page(run_id, (where, words_given), order, offset, limit)
        # The page's positions first (a narrow sort), then only those rows in full.
        sql = (
            "SELECT t.* EXCLUDE (position, haystack) FROM {run} t JOIN"
            f" (SELECT t.position FROM {{run}} t WHERE true{where} ORDER BY {order}"
            f"  LIMIT $limit OFFSET $offset) page ON page.position = t.position ORDER BY {order}"
        )
        parameters: dict[str, Any] = {"limit": limit, "offset": offset}
        rows = self._over_rows(sql, parameters | words_given, {"run": run_id})
        counted = f"SELECT count(*) AS n FROM {{run}} t WHERE true{where}"
        total = int(self._over_rows(counted, words_given, {"run": run_id})[0]["n"])
        for row in rows:
            row["scores"] = dict(row["scores"] or {})
        return Page(total=total, offset=offset, rows=tuple(rows))

    def _searched_page(
        self,
        run_id: str,
        matching: tuple[str, dict[str, str]],
        order: str,
        offset: int,
        limit: int,
    ) -> Page:
        """A page of the run's trials that match (`matching`: a filter of `t.haystack` and its
        parameters) in `order`, before the run's trial rows are kept (ADR 0064): the page's
        positions and the count from what a search reads of each trial (`search_rows`) or a sort
        by latency or output tokens (`timing_rows`), or both, then the rows of the page's trials
        alone."""
        where, words_given = matching
        timed = order.startswith(("t.latency_s ", "t.output_tokens "))
        table = self._narrow_table(run_id, timing_rows if timed else search_rows)
        if timed and where:
            searched = self._narrow_table(run_id, search_rows)
            table = f"(SELECT * FROM {searched} JOIN {table} USING (position))"
        chosen = f"SELECT t.position FROM {table} t WHERE true{where} ORDER BY {order}"
        page = self._run(
            self._copies(),
            chosen + " LIMIT $limit OFFSET $offset",
            {**words_given, "limit": limit, "offset": offset},
        )
        counted = f"SELECT count(*) AS n FROM {table} t WHERE true{where}"
        total = int(self._run(self._copies(), counted, words_given)[0]["n"])
        positions = [int(row["position"]) for row in page]
        rows: list[dict[str, Any]] = []
        if positions:
            given = {"positions": positions}
            keys = "{places} WHERE run_id = $run AND list_contains($positions::BIGINT[], position)"
            sql = (
                "SELECT * EXCLUDE (haystack) FROM {run} t"
                " WHERE list_contains($positions::BIGINT[], t.position)"
            )
            rows = self._rows_of(run_id, (keys, given), sql, given)
        at = {position: index for index, position in enumerate(positions)}
        rows.sort(key=lambda row: at[row["position"]])
        for row in rows:
            del row["position"]
            row["scores"] = dict(row["scores"] or {})
        return Page(total=total, offset=offset, rows=tuple(rows))

    def _narrow(self, run_id: str) -> bool:
        """Whether a page of the run reads only its own rows from the store file (ADR 0051):
        from a path, while the run's trial rows are not kept for its log as last listed."""
        return not isinstance(self._source, DuckDBStore) and not self.holds(
            run_id, self.versions.get(run_id)
        )

    def _open_narrow(self, run_id: str) -> bool:
        """Whether a page of trials in plan order, or the failures, of the run read only their
        own rows from an open store (ADR 0068): while its trial rows are not kept for its log
        as last listed, where this browser can keep places (a memory database attached to the
        store's instance). While the run executes in the process holding the store its log
        grows at every page (a copy would be made again and again); once it has ended, a copy
        of every trial's rows for the failures alone cost ~0.9 s at 100,000 trials (ADR 0072):
        such pages never copy; a search or a sort still does."""
        return (
            isinstance(self._source, DuckDBStore)
            and not self.holds(run_id, self.versions.get(run_id))
            and self._keeps_copies()
        )

    def _rows_of(
        self, run_id: str, keys: tuple[str, dict[str, Any]], sql: str, parameters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """`sql`, `{run}` standing for the trial rows of the run's trials whose keys the
        subquery `keys[0]` (with its parameters `keys[1]`) selects, `{places}` in it naming the
        run's places and `store.events` the store's log (from an open store, its own): computed
        from the store for this query alone. The keys are read first and given as a list, so
        that only their events' payloads are read (a subquery would read every payload of the
        run)."""
        version = self.versions.get(run_id)
        asked = _hashable({**keys[1], **parameters})
        key = (run_id, version, keys[0], sql, *sorted(asked.items()))
        found = self._narrowed.get(key)
        if found is None:
            listed = self._attached(
                f"SELECT DISTINCT trial_key FROM {keys[0]}", {**keys[1], "run": run_id}, run_id
            )
            chosen = "list_contains($keys::VARCHAR[], trial_key)"
            events = f" AND (trial_key IS NULL OR {chosen})"
            given = [row["trial_key"] for row in listed]
            log: str | None = None
            needles: dict[str, list[str]] = {}
            if self._batched():  # only the log's rows holding those keys' events are split,
                # none for no key (no trial: e.g. the failures of a run none of whose failed)
                rows_kept, needles = keyed_rows(given, self._store) if given else (" AND false", {})
                log = events_of_rows(self._store, rows_kept, timed=False)
            rows = trial_rows("run", self._store, "{places}", events, f" AND {chosen}", log)
            query = sql.replace("{run}", f"({rows})")
            found = self._attached(
                query, {**parameters, **needles, "run": run_id, "keys": given}, run_id
            )
            if version is not None:  # kept while the run's log is as last listed
                with self._attach:
                    for old in [old for old in self._narrowed if old[0] == run_id]:
                        if old[1] != version:
                            del self._narrowed[old]
                    self._narrowed[key] = found
        return [dict(row) for row in found]

    def _plan_page(self, run_id: str, offset: int, limit: int, *, descending: bool) -> Page:
        """`trials` in plan order, from the rows of the page's trials alone."""
        direction = "DESC" if descending else "ASC"
        positions = (
            "SELECT position FROM {places} WHERE run_id = $run"
            f" ORDER BY position {direction} LIMIT $limit OFFSET $offset"
        )
        keys = f"{{places}} WHERE run_id = $run AND position IN ({positions})"
        chosen = {"limit": limit, "offset": offset}
        sql = (
            "SELECT * EXCLUDE (position, haystack) FROM {run} t"
            f" WHERE t.position IN ({positions}) ORDER BY t.position {direction}"
        )
        rows = self._rows_of(run_id, (keys, chosen), sql, chosen)
        counted = "SELECT count(*) AS n FROM {places} WHERE run_id = $run"
        total = int(self._attached(counted, {"run": run_id}, run_id)[0]["n"])
        for row in rows:
            row["scores"] = dict(row["scores"] or {})
        return Page(total=total, offset=offset, rows=tuple(rows))

    def trial_scores(self, run_id: str, metrics: Sequence[str]) -> list[tuple[Any, ...]]:
        """Every trial of the run in plan order: dataset, model, prompt, case id, status (for
        a trial not settled, maybe `None`) and its score on each of `metrics` (`None` where it
        has none)."""
        columns = "".join(f", t.scores[$m{index}] AS m{index}" for index in range(len(metrics)))
        sql = (
            f"SELECT t.dataset, t.model, t.prompt, t.case_id, t.status{columns}"
            " FROM {run} t ORDER BY t.position"
        )
        parameters = {f"m{index}": metric for index, metric in enumerate(metrics)}
        if not self._keeps_copies():
            rows = self._over_rows(sql, parameters, {"run": run_id})
            return [tuple(row.values()) for row in rows]
        if self._narrow(run_id):
            values = "".join(f", v{index}" for index in range(len(metrics)))
            sql = (
                f"SELECT dataset, model, prompt, case_id, status{values}"
                f" FROM {self._metric_table(run_id, metrics)} ORDER BY position"
            )
            parameters = {}
        else:
            sql = sql.format(run=self.kept(run_id, self.versions.get(run_id)))
        cursor = self._copies()
        try:  # 100,000 rows: as tuples, without a mapping each
            return list(cursor.execute(sql, parameters).fetchall())
        except duckdb.Error as error:
            raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
        finally:
            cursor.close()

    def case_sums(
        self, run_id: str, metrics: Sequence[str], *, copy: bool = True
    ) -> list[tuple[tuple[str, str, str], dict[str, Any]]] | None:
        """Per (dataset, model, prompt), as numpy columns sorted by case id: each case with a
        trial, how many settled ones it has (`n`, maybe 0) and, per metric `i`, their scores'
        sum (`s{i}`) and whether all are whole numbers (`w{i}`), counted as `trial_scores`
        counts them (a failed trial 0, a scored one 0 for a metric it lacks): `case_values`.
        From the kept trial rows when they are kept; else, with `copy`, from each case's values
        read from the log and kept (`_case_table`); without `copy`, summed in the store file
        itself (one read-only query of the same rows, for a caller that reads the run once).
        `None` for an open store, or a run the store keeps no places of."""
        if isinstance(self._source, DuckDBStore):
            return None
        sums = "".join(f", s{index}, w{index}" for index in range(len(metrics)))
        chosen = f"SELECT dataset, model, prompt, case_id, n{sums} FROM {{cases}}"
        # Sorted here, not where the table is made: DuckDB keeps no order a table is made in.
        sql = chosen + " ORDER BY dataset, model, prompt, case_id"
        version = self.versions.get(run_id)
        if self.holds(run_id, version):
            scores = "".join(f", scores[$m{i}] AS v{i}" for i in range(len(metrics)))
            trials = f"(SELECT *{scores} FROM {self.kept(run_id, version)})"
            cases = f"({case_values(trials, len(metrics))})"
            parameters = {f"m{i}": metric for i, metric in enumerate(metrics)}
            columns = self._columns(self._memory.cursor(), sql.format(cases=cases), parameters)
        elif copy:
            cases = self._case_table(run_id, metrics)
            columns = self._columns(self._memory.cursor(), sql.format(cases=cases), {})
        else:
            store = DuckDBStore(self._path, read_only=True, lock_wait=0.0)
            try:
                cursor = store.cursor()
                try:
                    placed = holds_places(cursor, run_id)
                except duckdb.Error:  # an older store without places: not from here
                    placed = False
                if not placed:  # places only a plan could give: not from here
                    cursor.close()
                    return None
                try:
                    rows, parameters = _metric_query(cursor, run_id, "", "trial_places", metrics)
                except duckdb.Error as error:
                    cursor.close()
                    raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
                cases = f"({case_values(f'({rows})', len(metrics))})"
                columns = self._columns(
                    cursor, sql.format(cases=cases), {**parameters, "run": run_id}
                )
            finally:
                store.close()
        return _split_groups(columns)

    def _columns(self, cursor: Any, sql: str, parameters: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(cursor.execute(sql, parameters).fetchnumpy())
        except duckdb.Error as error:
            raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
        finally:
            cursor.close()

    def case_events(self, run_id: str, case_id: str) -> list[tuple[int, Event]]:
        """The run's own events and those of the trial keys of case `case_id`, decoded, in
        seq order: what the fold needs to show that case's trials. The case's keys come first
        (from its places, or the kept rows); then only the log's rows holding their events (or
        the run's own) are split."""
        case_keys = "SELECT DISTINCT trial_key FROM {run} WHERE case_id = $case"
        chosen = {"case": case_id, "run": run_id}
        if isinstance(self._source, DuckDBStore):
            places = self._places(run_id)
            keys = self._query(case_keys.format(run=places) + " AND run_id = $run", chosen)
        elif self._narrow(run_id):
            keys = self._attached(
                case_keys.format(run="{places}") + " AND run_id = $run", chosen, run_id
            )
        else:
            keys = self._over_rows(case_keys, {"case": case_id}, {"run": run_id})
        given = [row["trial_key"] for row in keys]
        parameters: dict[str, Any] = {"run": run_id, "keys": given}
        log = "events"
        if self._batched():
            rows_kept, needles = keyed_rows(given)
            log = events_of_rows("", rows_kept)
            parameters |= needles
        rows = self._query(KEYED_EVENTS.format(log=log), parameters)
        return [(row["seq"], decode_event(row["kind"], row["payload"])) for row in rows]

    def case_alone(self, run_id: str, case_id: str) -> CaseReading | None:
        """Case `case_id` of the run read alone, in one open of the store (`read_case`: the
        snapshot cut to the case, its trials as the store placed them, their events); `None`
        when its trials would have to be planned from the whole run."""
        with self.opened() as store:
            cursor = store.cursor()
            try:
                return read_case(cursor, run_id, case_id)
            except duckdb.Error as error:
                raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
            finally:
                cursor.close()

    def latest(self, run_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The run's trials that most recently finished (scored, or failed for good), newest
        first: `seq`, `at`, place columns, `status`, `scores` and `error_kind`. A query of the
        log's newest events only, cheap while a run proceeds (the live viewer polls it)."""
        sql = (
            "SELECT e.seq, e.recorded_at AS at, p.dataset, p.case_id, p.model, p.prompt, p.sample,"
            " CASE WHEN e.kind = 'score_completed' THEN 'scored' ELSE 'failed' END AS status,"
            " CAST(e.p->'scores' AS MAP(VARCHAR, DOUBLE)) AS scores,"
            " e.p->>'error_kind' AS error_kind"
            " FROM (SELECT seq, recorded_at, kind, trial_key, payload::JSON AS p FROM {log}"
            "   WHERE run_id = $run AND kind IN ('score_completed', 'generation_failed')"
            "   ORDER BY seq DESC LIMIT $limit) e"
            " JOIN {places} p ON p.run_id = $run AND CASE WHEN e.kind = 'score_completed'"
            "   THEN p.trial_id = e.p->>'trial_id' ELSE p.trial_key = e.trial_key END"
            " ORDER BY e.seq DESC, p.position LIMIT $limit"
        )
        parameters = {"run": run_id, "limit": limit}
        held = isinstance(self._source, DuckDBStore)
        prefix = "" if held else "store."
        # The log's newest rows first (ADR 0046: a row is a batch, split only when read).
        newest = (
            f" AND seq + n > (SELECT max(seq + n) FROM {prefix}event_batches"
            f" WHERE run_id = $run) - {_NEWEST}"
        )
        logs = [events_of_rows(prefix, newest), f"{prefix}events"] if self._batched() else []
        rows: list[dict[str, Any]] = []
        for log in logs or [f"{prefix}events"]:
            if held:
                rows = self._query(sql.format(places=self._places(run_id), log=log), parameters)
            else:
                rows = self._attached(sql.replace("{log}", log), parameters, run_id)
            if len(rows) >= limit:
                break
        for row in rows:
            row["scores"] = dict(row["scores"] or {})
        return rows

    def resumes(self, run_id: str) -> list[RunResumed]:
        """The run's `RunResumed` events, oldest first: what each later execution changed of
        its runtime. Of a batched log only the rows holding one are split (ADR 0046)."""
        held = isinstance(self._source, DuckDBStore)
        store = "" if held else "store."
        only = " AND contains(kinds, 'run_resumed')"
        log = events_of_rows(store, only) if self._batched() else f"{store}events"
        sql = (
            f"SELECT kind, payload FROM {log} WHERE run_id = $run AND kind = 'run_resumed'"
            " ORDER BY seq"
        )
        parameters = {"run": run_id}
        rows = self._query(sql, parameters) if held else self._attached(sql, parameters, None)
        return [
            event
            for row in rows
            if isinstance(event := decode_event(row["kind"], row["payload"]), RunResumed)
        ]

    def failure_kinds(self, run_id: str, *, cases: int = 5) -> list[FailureKind]:
        """The run's trials that failed for good, grouped by error kind, most frequent first."""
        sql = (
            "SELECT error_kind, count(*) AS n,"
            " list(DISTINCT case_id ORDER BY case_id)[1:$cases] AS cases"
            " FROM {run} WHERE status = 'failed'"
            " GROUP BY error_kind ORDER BY n DESC, error_kind"
        )
        if self._narrow(run_id) or self._open_narrow(run_id):  # the failed trials alone
            failed = f"{self._store}events WHERE run_id = $run AND kind = 'generation_failed'"
            if self._batched():  # only the log's rows holding a failure are split
                failed = (
                    events_of_rows(self._store, " AND contains(kinds, 'generation_failed')")
                    + " WHERE kind = 'generation_failed'"
                )
            rows = self._rows_of(run_id, (failed, {}), sql, {"cases": cases})
        else:
            rows = self._over_rows(sql, {"cases": cases}, {"run": run_id})
        return [
            FailureKind(str(row["error_kind"]), int(row["n"]), tuple(row["cases"])) for row in rows
        ]

    def disagreements(
        self,
        sides: Sequence[tuple[str, str | None]],
        metric: str,
        *,
        metrics: Mapping[str, Sequence[str]] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page:
        """The cases (dataset, case) whose mean `metric` differs between side A and side B, each
        side a run and optionally one model of it; a failed trial counts 0, as in the report.
        `metrics` may name the metrics each run's case values were read for (`case_sums`): a
        run not kept then answers from those, not from another read of its log."""
        (run_a, model_a), (run_b, model_b) = sides
        side = (
            "SELECT dataset, case_id, sum(a{at}) / sum(c{at}) AS mean FROM {cases}"
            " WHERE (CAST(${model} AS VARCHAR) IS NULL OR model = CAST(${model} AS VARCHAR))"
            " GROUP BY dataset, case_id HAVING sum(n) > 0"
        )
        runs: dict[str, str] = {}
        chosen: list[str] = []
        for name, run_id in (("ra", run_a), ("rb", run_b)):
            stored = self.stored_cases(run_id)
            if stored is not None and metric in stored.metrics:
                cases, at = self._stored_table(run_id, stored), stored.metrics.index(metric)
            elif self._keeps_copies() and self._narrow(run_id):
                named = tuple((metrics or {}).get(run_id, ()))
                named = named if metric in named else (metric,)
                cases, at = self._case_table(run_id, named), named.index(metric)
            else:  # each case's values of the kept rows (or of rows computed for this query)
                trials = f"(SELECT *, scores[$metric] AS v0 FROM {{{name}}})"
                cases, at = f"({case_values(trials, 1)})", 0
                runs[name] = run_id
            chosen.append(side.format(at=at, cases=cases, model=f"m{name[1]}"))
        sql = (
            f"WITH a AS ({chosen[0]}), b AS ({chosen[1]})"
            " SELECT a.dataset, a.case_id, a.mean AS a, b.mean AS b, b.mean - a.mean AS delta,"
            " count(*) OVER () AS matching"
            " FROM a JOIN b ON a.dataset = b.dataset AND a.case_id = b.case_id"
            " WHERE a.mean IS DISTINCT FROM b.mean"
            " ORDER BY abs(b.mean - a.mean) DESC, a.dataset, a.case_id"
            " LIMIT $limit OFFSET $offset"
        )
        parameters: dict[str, Any] = {"ma": model_a, "mb": model_b, "limit": limit}
        parameters |= {"offset": offset} | ({"metric": metric} if runs else {})
        rows = self._over_rows(sql, parameters, runs)
        total = int(rows[0]["matching"]) if rows else 0
        for row in rows:
            del row["matching"]
        return Page(total=total, offset=offset, rows=tuple(rows))


def _batched(cursor: Any, store: str) -> bool:
    """Whether the store (attached as `store`, or the cursor's own) keeps its log in
    `event_batches` (ADR 0046) rather than an `events` table (an older store read as it is)."""
    row = cursor.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'event_batches'"
        " AND database_name = coalesce($db, current_database())",
        {"db": store.rstrip(".") or None},
    ).fetchone()
    return bool(row and row[0])


# What each narrow query reads of a batched log: the kinds whose payloads it splits (without
# their keys), and which generations it asks about: every key's, the failed keys' or none.
_READS: Final = {
    "metric_rows": (("score_completed",), "failed"),
    "search_rows": (("parse_completed", "score_completed", "stage_reset"), "every"),
    "timing_rows": (("generation_completed",), "none"),
}


def _log_parts(
    cursor: Any, run_id: str, store: str, reads: tuple[tuple[str, ...], str]
) -> tuple[LogParts, dict[str, Any]]:
    """The parts of the run's log (`$run`) in the store attached as `store` (`""`: the
    cursor's own) a narrow query reads (`_READS`), with their parameters: of a batched log,
    each from the rows holding it, split with only the columns read: the payloads of `reads`'
    kinds without keys, the resets and failures from their own rows, the generations as kinds
    and keys alone, of every row or only of the rows holding the failed keys (read first); of
    an older log, its `events` for each."""
    if not _batched(cursor, store):
        log = f"(SELECT * FROM {store}events WHERE run_id = $run)"
        return LogParts(log, log, log, log), {}
    kinds, generated = reads

    def holding(*held: str, keyed: bool = False, payloads: bool = True) -> str:
        where = " AND (" + " OR ".join(f"contains(kinds, '{kind}')" for kind in held) + ")"
        return events_of_rows(store, where, timed=False, keyed=keyed, payloads=payloads)

    failures = holding("generation_failed", keyed=True)
    needles: dict[str, Any] = {}
    generations = failures  # not read
    if generated == "every":
        generations = holding("generation_completed", keyed=True, payloads=False)
    elif generated == "failed":
        found = cursor.execute(
            f"SELECT list(DISTINCT trial_key) FROM {failures} WHERE kind = 'generation_failed'",
            {"run": run_id},
        ).fetchone()
        failed = [key for key in (found[0] if found and found[0] else []) if key is not None]
        rows, needles = keyed_rows(failed, store) if failed else (" AND false", {})
        generations = events_of_rows(store, rows, timed=False, payloads=False)
    parts = LogParts(holding("stage_reset"), holding(*kinds), failures, generations)
    return parts, needles


def _metric_query(
    cursor: Any, run_id: str, store: str, places: str, metrics: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """`metric_rows` of the run (`$run`) in the store attached as `store` for `metrics`, its
    places in `places`, with its parameters but `run` (`_log_parts`)."""
    parts, parameters = _log_parts(cursor, run_id, store, _READS["metric_rows"])
    parameters |= {
        f"metric_path{index}": metric_path(metric) for index, metric in enumerate(metrics)
    }
    return metric_rows("run", len(metrics), places, parts), parameters


def _hashable(parameters: dict[str, Any]) -> dict[str, Any]:
    """`parameters` with each list as a tuple (a part of a key)."""
    return {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in parameters.items()
    }


def _untimed(cursor: Any, store: str) -> str | None:
    """What the trial rows of a whole run read its events from: the store's batch rows split
    without each event's stage and time (ADR 0064), or, for a log kept one event a row (an
    older store), `None` (its `events`)."""
    return events_of_rows(store, timed=False) if _batched(cursor, store) else None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _split_groups(columns: dict[str, Any]) -> list[tuple[tuple[str, str, str], dict[str, Any]]]:
    """Columns sorted by (dataset, model, prompt), cut into one slice of every column per
    group."""
    import numpy as np

    keys = [np.asarray(columns[name]) for name in ("dataset", "model", "prompt")]
    if not len(keys[0]):
        return []
    changed = np.zeros(len(keys[0]) - 1, dtype=bool)
    for key in keys:
        changed |= key[1:] != key[:-1]
    bounds = [0, *(np.flatnonzero(changed) + 1).tolist(), len(keys[0])]
    return [
        (
            (str(keys[0][start]), str(keys[1][start]), str(keys[2][start])),
            {name: np.asarray(column)[start:end] for name, column in columns.items()},
        )
        for start, end in itertools.pairwise(bounds)
    ]
