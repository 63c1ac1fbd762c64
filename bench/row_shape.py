"""The event log's row shape (ADR 0046): one row per event against one row per appended batch.

Builds N trials' events (a generation, a parse and a score each, as `bench/trial_path.py`
does), then:
- writes them to a DuckDB file in 1,000-event appends, encoding included, then `CHECKPOINT`
  (what a run's writer and its end pay), CPU µs per trial: one row per event (the statement
  Themis used before, schema 3) and `DuckDBStore.append` (one row per batch), alternated;
- reads them back from the same log in both shapes (the batched file, and a copy turned into
  schema 3's table): the fold's input (`read`), a reopen's tail after a checkpoint (`read`
  after the last 1,000), `last_seq`, `runs`, the lookups of another run's generations
  (`locate_generations`, `find_generations`, 1,000 keys), the `trials` log view, and the viewer's
  trial rows (`LogBrowser.kept`), CPU seconds each.

Usage: `python bench/row_shape.py [N]` (default 100,000). Prints the load average: under load
trust the CPU figures, not wall time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli_process import load_average
from trial_events import answered

BATCH = 1000
_ONE_ROW_PER_EVENT = (
    "INSERT INTO events SELECT $1, unnest($2::BIGINT[]), unnest($3::VARCHAR[]),"
    " unnest($4::VARCHAR[]), unnest($5::VARCHAR[]), unnest($6::DOUBLE[]), unnest($7::VARCHAR[])"
)


def trial_events(n: int) -> tuple[Any, list[Any], list[str]]:
    """The compiled run, N trials' events in the order a run writes them, and the trial keys."""
    from resume import experiment

    from themis.core.planner import PlanRecord, pending, plan
    from themis.core.state import RunState

    compiled = experiment(n).compiled
    trials = list(pending(PlanRecord().tap(plan(compiled)), RunState()))
    events = answered(compiled, (item.plan for item in trials))
    return compiled, events, [item.plan.trial_key for item in trials]


def write_one_row_per_event(path: str, run_id: str, events: list[Any]) -> None:
    import duckdb

    from tests.older_stores import OLD_EVENTS_TABLE
    from themis.adapters.codec import encode_event
    from themis.core.events import subject_key

    con = duckdb.connect(path)
    con.execute(OLD_EVENTS_TABLE.replace("old_events", "events"))
    for first in range(0, len(events), BATCH):
        part = events[first : first + BATCH]
        columns = [
            run_id,
            list(range(first + 1, first + 1 + len(part))),
            [type(event).kind for event in part],
            [subject_key(event) for event in part],
            [None if (s := type(event).stage) is None else s.value for event in part],
            [event.at for event in part],
            [encode_event(event) for event in part],
        ]
        con.execute("BEGIN TRANSACTION")
        con.execute(_ONE_ROW_PER_EVENT, columns)
        con.execute("COMMIT")
    con.execute("CHECKPOINT")
    con.close()


def write_batches(path: str, run_id: str, events: list[Any]) -> None:
    from themis.adapters.stores.duckdb import DuckDBStore

    store = DuckDBStore(path)
    for first in range(0, len(events), BATCH):
        store.append(run_id, first + 1, events[first : first + BATCH])
    store.close()  # folds the write-ahead log into the file, as a run's end does


def save_run(path: str, compiled: Any) -> None:
    """The run's snapshot and trial places, as a run keeps them (the log views read them)."""
    from themis.adapters.stores.duckdb import DuckDBStore
    from themis.app.usecases.runs import RunRequest, new_snapshot
    from themis.core.runtime import RuntimeConfig
    from themis.core.stages import Stage

    store = DuckDBStore(path)
    store.save_snapshot(new_snapshot(RunRequest(compiled, RuntimeConfig(), Stage.SCORE), 0.0))
    store.close()


def cpu(work: Callable[[], Any]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def reads(path: str, run_id: str, keys: list[str], events: int) -> dict[str, float]:
    import themis
    from themis.adapters.stores.duckdb import DuckDBStore
    from themis.adapters.stores.duckdb_browse import LogBrowser

    store = DuckDBStore(path, read_only=True)
    lookups = keys[:BATCH]
    try:
        figures = {
            "read: the whole log (the fold's input)": cpu(lambda: store.read(run_id)),
            "read: after a checkpoint (last 1,000)": cpu(
                lambda: store.read(run_id, events - BATCH)
            ),
            "last_seq": cpu(lambda: store.last_seq(run_id)),
            "runs (event counts)": cpu(store.runs),
            "locate_generations (1,000 keys)": cpu(
                lambda: store.locate_generations(lookups, "other")
            ),
            "find_generations (1,000 keys)": cpu(lambda: store.find_generations(lookups, "other")),
        }
    finally:
        store.close()
    figures["log view `trials` (log_table)"] = cpu(lambda: themis.log_table(run_id, store=path))
    figures["viewer trial rows (LogBrowser.kept)"] = cpu(lambda: LogBrowser(path).kept(run_id))
    return figures


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    compiled, events, keys = trial_events(n)
    run_id = compiled.run_id
    print(f"event log row shape, {n:,} trials (load average {load_average()})")
    print("write, encoding included, CPU µs per trial:")
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(2):
            for shape, (label, write) in enumerate(
                (
                    ("one row per event (schema 3)", write_one_row_per_event),
                    ("one row per batch (schema 4)", write_batches),
                )
            ):
                path = os.path.join(folder, f"{round_}-{shape}.duckdb")
                spent = cpu(lambda path=path, write=write: write(path, run_id, events))
                size = os.path.getsize(path) / n
                print(
                    f"  {label:<34} {spent / n * 1e6:7.1f}   ({size:,.0f} B per trial in the file)"
                )
        batched = os.path.join(folder, "reads-batched.duckdb")
        write_batches(batched, run_id, events)
        save_run(batched, compiled)
        old = os.path.join(folder, "reads-old.duckdb")
        shutil.copy(batched, old)
        _as_schema_3(old)
        print(f"read, CPU s (load average {load_average()}):   one row per event / per batch")
        before, after = (
            reads(old, run_id, keys, len(events)),
            reads(batched, run_id, keys, len(events)),
        )
        for label, spent in before.items():
            print(f"  {label:<40} {spent:7.3f}  {after[label]:7.3f}")


def _as_schema_3(path: str) -> None:
    import duckdb

    from tests.older_stores import as_schema_3

    with duckdb.connect(path) as con:
        as_schema_3(con)


if __name__ == "__main__":
    main()
