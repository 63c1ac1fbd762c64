"""One run's log views as in-memory DuckDB relations, and written out as Parquet, CSV or JSONL.

The store is first opened as every reader opens it (`DuckDBStore(read_only=True)`: another
program's file is refused, a held file named with its PID), then attached read-only to an
in-memory database, the run's rows copied there, and the file detached: the relations a user
keeps hold no lock on the store. A run without kept places (a store written before the views
existed, schema version 2, or a run killed before its execution ended) gets them computed here.

In the per-run `trials` table the `scores` map becomes one `score_<metric>` column per metric
of the run, scored as the report scores (a failed generation is 0; pending trials are NULL).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from themis.adapters.duckdb_engine import duckdb, with_relations
from themis.adapters.duckdb_quiet import quiet_connection
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_log import events_of_rows
from themis.adapters.stores.duckdb_open import open_error
from themis.adapters.stores.duckdb_snapshot import snapshots
from themis.adapters.stores.duckdb_views import (
    INSERT_PLACES,
    PLACES_TABLE,
    VIEW_NAMES,
    holds_places,
    place_columns,
    view_sql,
)
from themis.core.errors import StoreError

if TYPE_CHECKING:
    from duckdb import DuckDBPyRelation

__all__ = ["EXPORT_FORMATS", "LogTable", "export_log", "read_log"]

EXPORT_FORMATS = ("parquet", "csv", "jsonl")


class LogTable:
    """One view of one run as a DuckDB relation (`relation`, and every relation method), with
    `to_pandas()`, `to_polars()` and `to_arrow()` (pandas, polars and pyarrow are the `data`
    extra: `pip install 'themis[data]'`)."""

    def __init__(self, name: str, relation: DuckDBPyRelation, connection: Any) -> None:
        self.name = name
        self.relation = relation
        self._connection = connection  # the in-memory database holding the rows

    def write(self, target: Path, file_format: str) -> None:
        """Write the rows to `target` as `parquet`, `csv` or `jsonl` (one JSON object a line)."""
        if file_format == "parquet":
            self.relation.to_parquet(str(target))
        elif file_format == "csv":
            self.relation.to_csv(str(target))
        else:
            self._connection.execute(
                f"COPY {_quoted(self.name)} TO {_literal(str(target))} (FORMAT json)"
            )

    def to_pandas(self) -> Any:
        """A pandas DataFrame (needs pandas)."""
        return self.relation.df()

    def to_polars(self) -> Any:
        """A polars DataFrame (needs polars and pyarrow)."""
        return self.relation.pl()

    def to_arrow(self) -> Any:
        """A pyarrow Table (needs pyarrow)."""
        return self.relation.to_arrow_table()

    def __len__(self) -> int:
        return int(self.relation.count("*").fetchall()[0][0])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.relation, name)

    def __repr__(self) -> str:
        return f"LogTable({self.name!r}, {len(self)} rows)"


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _per_run(name: str, source: str, metrics: Sequence[str]) -> str:
    """The query of view `name` for one run (`$1`), with the trials' metric columns."""
    if name != "trials":
        return f"SELECT * FROM ({source}) WHERE run_id = $1"
    columns = "".join(
        f", CASE WHEN status = 'failed' THEN 0.0 ELSE scores[{_literal(metric)}] END"
        f" AS {_quoted('score_' + metric)}"
        for metric in metrics
    )
    return f"SELECT * EXCLUDE (scores){columns} FROM ({source}) WHERE run_id = $1"


def read_log(path: str, run_id: str, names: Sequence[str] = VIEW_NAMES) -> dict[str, LogTable]:
    """The run's rows of each view in `names`, copied into an in-memory DuckDB."""
    with_relations()  # (the tables are relations: the user's, with their whole API)
    store = DuckDBStore(path, read_only=True, lock_wait=0.0)
    try:
        snapshot = store.load_snapshot(run_id)
    finally:
        store.close()
    if snapshot is None:
        raise StoreError(f"{path}: no run {run_id!r}")
    memory = quiet_connection()
    try:
        memory.execute("ATTACH " + _literal(path) + " AS store (READ_ONLY)")
    except duckdb.Error as error:
        memory.close()
        raise open_error(path, error) from error
    try:
        places = "store.main.trial_places"
        table = memory.execute(
            "SELECT count(*) FROM duckdb_tables()"
            " WHERE database_name = 'store' AND table_name = 'trial_places'"
        ).fetchone()
        held = table is not None and table[0] > 0 and holds_places(memory, run_id, table=places)
        if not held:  # an older store, or a run killed before its places were kept
            memory.execute(PLACES_TABLE.replace("trial_places", "computed_places"))
            columns = place_columns(snapshot)
            if columns is not None:
                memory.execute(INSERT_PLACES.replace("trial_places", "computed_places"), columns)
            places = "computed_places"
        metrics = [metric.name for metric in snapshot.spec.metrics]
        events = "store.main.events"
        batched = memory.execute(
            "SELECT count(*) FROM duckdb_tables()"
            " WHERE database_name = 'store' AND table_name = 'event_batches'"
        ).fetchone()
        if batched is not None and batched[0]:  # the run's rows split once, for every view
            split = events_of_rows("store.main.")
            memory.execute(
                f"CREATE TEMP TABLE run_events AS SELECT * FROM {split}", {"run": run_id}
            )
            events = "run_events"
        runs = snapshots(memory, "store.main.")
        for name in names:
            source = view_sql(name, events=events, places=places, runs=runs)
            memory.execute(
                f"CREATE TABLE {_quoted(name)} AS {_per_run(name, source, metrics)}", [run_id]
            )
        memory.execute("DROP TABLE IF EXISTS run_events")
        memory.execute("DETACH store")
    except duckdb.Error as error:
        memory.close()
        raise StoreError(f"{path}: run {run_id[:12]}: {error}") from error
    return {name: LogTable(name, memory.table(_quoted(name)), memory) for name in names}


def export_log(path: str, run_id: str, file_format: str, directory: Path) -> list[Path]:
    """Write every view of the run to `directory/<view>.<format>`; the files written."""
    if file_format not in EXPORT_FORMATS:
        raise StoreError(f"--format {file_format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    tables = read_log(path, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        target = directory / f"{name}.{file_format}"
        table.write(target, file_format)
        written.append(target)
    return written
