"""What only the DuckDB store promises: a durable file, its layout, and clear errors when the file
is newer, locked by another process or not a store at all."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import trio

from tests.contract.test_store_contract import SAMPLE_EVENTS, answers, make_snapshot
from tests.holders import holding
from tests.interrupts import interrupted_as_by_ctrl_c
from themis.adapters.stores.duckdb import SCHEMA_VERSION, DuckDBStore
from themis.adapters.stores.duckdb_views import VIEW_NAMES, VIEWS_VERSION
from themis.core.errors import SequenceConflict, StoreError, StoreLocked
from themis.core.events import RunCompleted, RunStarted, ScoreCompleted
from themis.core.stages import Stage
from themis.threads import SignalSafeThread


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds `path` open read-write, as a running Themis would."""
    DuckDBStore(path).close()
    with holding(path) as process:
        yield process


def test_reopened_file_store_has_the_same_events_and_snapshot(path: Path) -> None:
    store = DuckDBStore(path)
    store.save_snapshot(make_snapshot("run-a"))
    store.append("run-a", 1, SAMPLE_EVENTS)
    store.close()
    reopened = DuckDBStore(str(path))
    try:
        assert reopened.read("run-a") == list(enumerate(SAMPLE_EVENTS, start=1))
        assert reopened.load_snapshot("run-a") == make_snapshot("run-a")
        with pytest.raises(SequenceConflict):
            reopened.append("run-a", 1, answers(1))
    finally:
        reopened.close()


def test_a_new_store_records_its_schema_version_and_layout(path: Path) -> None:
    DuckDBStore(path).close()
    with duckdb.connect(str(path)) as con:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        columns = con.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'events' ORDER BY ordinal_position"
        ).fetchall()
    assert version == [(str(SCHEMA_VERSION),)]
    assert [name for (name,) in columns] == [
        "run_id", "seq", "kind", "trial_key", "stage", "recorded_at", "payload",
    ]  # fmt: skip


def _defined_views(path: Path) -> set[str]:
    """The views a plain DuckDB client finds in the store file at `path`."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {name for (name,) in rows}


def _views_in(store: DuckDBStore) -> set[str]:
    """The views the open store `store` holds, asked on its own connection."""
    with store._connection() as con:
        rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {name for (name,) in rows}


def test_a_new_stores_views_come_with_its_first_write_before_any_run(path: Path) -> None:
    # Opening a new file defines no view (off the path to a run's first call, ADR 0074); the
    # first write, here a run's snapshot, commits them before the run's row.
    store = DuckDBStore(path)
    try:
        assert "trials" not in _views_in(store)
        store.save_snapshot(make_snapshot("run-a"), places=False)
        assert _views_in(store) >= {"events", *VIEW_NAMES}
    finally:
        store.close()


def test_a_new_store_defines_its_views_before_a_reader_can_see_a_run(path: Path) -> None:
    store = DuckDBStore(path)
    try:
        assert "trials" not in _views_in(store)
        reader = store.reader()
        try:
            assert _views_in(reader) >= set(VIEW_NAMES)
        finally:
            reader.close()
    finally:
        store.close()


def test_a_new_store_closed_without_a_write_has_its_views(path: Path) -> None:
    DuckDBStore(path).close()
    assert _defined_views(path) >= {"events", *VIEW_NAMES}
    with duckdb.connect(str(path), read_only=True) as con:
        version = con.execute("SELECT value FROM meta WHERE key = 'views_version'").fetchone()
    assert version == (str(VIEWS_VERSION),)


def test_a_new_store_killed_before_its_first_write_gains_its_views_on_the_next_open(
    path: Path,
) -> None:
    script = (
        "import os, sys\n"
        "from themis.adapters.stores.duckdb import DuckDBStore\n"
        "DuckDBStore(sys.argv[1])\n"
        "os._exit(0)  # as a kill would: no close, no write\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert "trials" not in _defined_views(path)
    DuckDBStore(path).close()
    assert _defined_views(path) >= {"events", *VIEW_NAMES}


def test_event_rows_fill_the_query_columns(path: Path) -> None:
    store = DuckDBStore(path)
    store.append("run-a", 1, [RunStarted(at=10.0, planned=2)])
    store.append("run-a", 2, [ScoreCompleted(at=11.5, trial_id="t", trial_key="k", scores={})])
    store.close()
    with duckdb.connect(str(path)) as con:
        rows = con.execute(
            "SELECT run_id, seq, kind, trial_key, stage, recorded_at FROM events ORDER BY seq"
        ).fetchall()
    assert rows == [
        ("run-a", 1, "run_started", None, None, 10.0),
        ("run-a", 2, "score_completed", "k", Stage.SCORE.value, 11.5),
    ]


def test_a_store_with_a_newer_schema_version_is_refused(path: Path) -> None:
    DuckDBStore(path).close()
    newer = SCHEMA_VERSION + 1
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE meta SET value = $1 WHERE key = 'schema_version'", [str(newer)])
    expected = (
        f"{path}: store schema version {newer} is newer than this Themis supports "
        f"({SCHEMA_VERSION}); upgrade Themis"
    )
    with pytest.raises(StoreError) as raised:
        DuckDBStore(path)
    assert str(raised.value) == expected


@pytest.mark.slow
def test_a_file_held_by_another_process_names_its_pid(
    path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(StoreLocked) as raised:
        DuckDBStore(path)
    assert isinstance(raised.value, StoreError)
    assert (raised.value.pid, raised.value.path) == (holder.pid, str(path))
    assert str(raised.value) == (
        f"{path} is in use by another Themis process (PID {holder.pid}); "
        "wait for it to finish or use another store"
    )


def test_a_file_that_is_not_a_duckdb_database_is_refused(path: Path) -> None:
    path.write_text('{"this": "is json, not a store"}\n' * 200)
    with pytest.raises(StoreError, match="not a Themis store") as raised:
        DuckDBStore(path)
    assert str(path) in str(raised.value)


def test_other_open_errors_are_one_line_store_errors(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "s.duckdb"
    with pytest.raises(StoreError) as raised:
        DuckDBStore(missing)
    assert str(missing) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_executions_end_folds_the_write_ahead_log_in_the_background(path: Path) -> None:
    store = DuckDBStore(path)
    store.save_snapshot(make_snapshot("run-a"))
    store.append("run-a", 1, SAMPLE_EVENTS[:-1])
    wal = Path(f"{path}.wal")
    assert wal.exists()  # not folded yet: the execution goes on
    assert wal.stat().st_size > 0
    ended = RunCompleted(at=9.0, completed_through_stage=Stage.SCORE, epoch=0)
    store.append("run-a", len(SAMPLE_EVENTS), [ended])
    folding = store._folding
    assert folding is not None
    folding.join(timeout=30)
    assert not wal.exists() or wal.stat().st_size == 0
    assert [event for _, event in store.read("run-a")][-1] == ended  # reads wait for the fold
    store.close()
    reopened = DuckDBStore(path)
    assert len(reopened.read("run-a")) == len(SAMPLE_EVENTS)
    reopened.close()


def test_a_close_interrupted_by_ctrl_c_waits_for_the_fold_then_lets_the_interrupt_out(
    path: Path,
) -> None:
    # CPython 3.11's `Thread.join` interrupted by a handler's exception marks the running
    # thread stopped: `close` then left at once, and the interpreter did not wait at exit for
    # the `CHECKPOINT` still running in DuckDB.
    store = DuckDBStore(path)
    store.append("run-a", 1, SAMPLE_EVENTS)
    earlier_fold_ends = threading.Event()  # the next fold waits for it, as for a slow fold
    earlier_fold = SignalSafeThread(earlier_fold_ends.wait, name="an earlier execution's fold")
    earlier_fold.start()
    store._folding = earlier_fold
    ended = RunCompleted(at=9.0, completed_through_stage=Stage.SCORE, epoch=0)
    store.append("run-a", len(SAMPLE_EVENTS) + 1, [ended])  # an execution's end: a fold starts
    folding = store._folding

    def end_the_earlier_fold(interrupted: threading.Event) -> None:
        interrupted.wait(30)
        time.sleep(0.5)
        earlier_fold_ends.set()

    with interrupted_as_by_ctrl_c() as interrupted:
        threading.Thread(target=end_the_earlier_fold, args=(interrupted,)).start()
        store.close()
    assert not folding.is_alive()
    assert not Path(f"{path}.wal").exists()  # folded before the connection closed
    with pytest.raises(StoreError):
        store.read("run-a")


def test_a_closed_store_raises_store_error(path: Path) -> None:
    store = DuckDBStore(path)
    store.close()
    with pytest.raises(StoreError, match=str(path)):
        store.read("run-a")


def test_conflict_message_names_the_taken_seq(path: Path) -> None:
    store = DuckDBStore(path)
    try:
        store.append("run-a", 1, answers(3))
        with pytest.raises(SequenceConflict, match=r"run run-a: seq 3 is already stored"):
            store.append("run-a", 3, answers(2))
    finally:
        store.close()


def test_append_and_read_from_worker_threads(path: Path) -> None:
    store = DuckDBStore(path)
    events = answers(30)
    threads: set[int] = set()

    def append(first_seq: int) -> None:
        threads.add(threading.get_ident())
        store.append("run-a", first_seq, events[first_seq - 1 : first_seq + 9])

    async def main() -> None:
        for first_seq in (1, 11, 21):
            await trio.to_thread.run_sync(append, first_seq)
        assert await trio.to_thread.run_sync(store.read, "run-a") == list(
            enumerate(events, start=1)
        )

    try:
        trio.run(main)
        assert threading.get_ident() not in threads
        assert store.read("run-a", after_seq=29) == [(30, events[29])]
    finally:
        store.close()


_SETTINGS_OF_EVERY_CONNECTION = """
import sys
from themis.adapters.stores.duckdb import DuckDBStore
store = DuckDBStore(sys.argv[1])
for connection in (store._con, store.cursor(), store.reader()._con):
    print(connection.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0])
store.close()
"""


def test_no_connection_of_the_store_draws_duckdbs_progress_bar(path: Path) -> None:
    # DuckDB draws a progress bar on stdout (a pipe or a file too) for a query over 2 s: it
    # broke `themis replay --json` output of a 100k run on a loaded machine. Asked in a child
    # process: under pytest's capture DuckDB keeps the bar off by itself.
    child = subprocess.run(
        [sys.executable, "-c", _SETTINGS_OF_EVERY_CONNECTION, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.split() == ["False", "False", "False"]


def test_path_names_where_the_store_lives(path: Path) -> None:
    store = DuckDBStore(path)
    memory = DuckDBStore(":memory:")
    try:
        assert (store.path, memory.path) == (str(path), ":memory:")
    finally:
        store.close()
        memory.close()


def test_a_reader_sees_what_the_writer_commits_and_writes_nothing(path: Path) -> None:
    """The process holding the file reads it from another thread through a reader (a viewer of
    the run it executes): each query sees every committed batch; a write raises."""
    store = DuckDBStore(path)
    store.save_snapshot(make_snapshot("run-a"))
    reader = store.reader()
    try:
        assert reader.read("run-a") == []
        store.append("run-a", 1, SAMPLE_EVENTS)
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(reader.read("run-a")))
        thread.start()
        thread.join()
        assert seen == [store.read("run-a")]
        with pytest.raises(StoreError, match="only reads"):
            reader.append("run-a", 10, SAMPLE_EVENTS)
        with pytest.raises(StoreError, match="only reads"):
            reader.delete_run("run-a")
    finally:
        reader.close()
    assert store.last_seq("run-a") == len(SAMPLE_EVENTS)
    store.close()


def _read_only_answers(store: DuckDBStore) -> tuple[object, ...]:
    return (
        store.runs(),
        store.read("run-a"),
        store.load_snapshot("run-a"),
        store.last_seq("run-a"),
        store.load_checkpoint_summary("run-a"),
    )


def test_a_store_attached_inside_a_host_reads_as_a_read_only_open_and_writes_nothing(
    path: Path,
) -> None:
    """`DuckDBStore.attached` (the viewer's open, ADR 0066): the file attached read-only to a
    host connection's memory database answers every read as a read-only open does, its cursors
    see the store's tables unqualified, a write raises, and `close` detaches it, releasing the
    file for a writer; the host stays usable."""
    store = DuckDBStore(path)
    store.save_snapshot(make_snapshot("run-a"))
    store.append("run-a", 1, SAMPLE_EVENTS)
    store.close()
    opened = DuckDBStore(path, read_only=True)
    expected = _read_only_answers(opened)
    opened.close()
    host = duckdb.connect()
    attached = DuckDBStore.attached(host, path)
    try:
        assert _read_only_answers(attached) == expected
        cursor = attached.cursor()
        (count,) = cursor.execute("SELECT count(*) FROM events WHERE run_id = 'run-a'").fetchone()
        cursor.close()
        assert count == len(SAMPLE_EVENTS)
        with pytest.raises(StoreError, match="only reads"):
            attached.append("run-a", 10, SAMPLE_EVENTS)
    finally:
        attached.close()
    listed = host.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    names = {name for (name,) in listed}
    assert not any(name.startswith("themis_store_") for name in names)
    writer = DuckDBStore(path)  # the file is free again
    writer.append("run-a", len(SAMPLE_EVENTS) + 1, answers(1))
    writer.close()
    host.close()


def test_an_attached_open_is_refused_as_a_read_only_open_is(tmp_path: Path) -> None:
    """A missing file and another program's file give the read-only open's one-line errors."""
    missing = tmp_path / "missing.duckdb"
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    host = duckdb.connect()
    for target in (missing, other):
        with pytest.raises(StoreError) as read_only:
            DuckDBStore(target, read_only=True)
        with pytest.raises(StoreError) as attached:
            DuckDBStore.attached(host, target)
        assert str(attached.value) == str(read_only.value)
    host.close()


@pytest.mark.slow
def test_an_attached_open_of_a_held_file_names_its_pid(
    path: Path, holder: subprocess.Popen[str]
) -> None:
    host = duckdb.connect()
    with pytest.raises(StoreLocked) as raised:
        DuckDBStore.attached(host, path, lock_wait=0.0)
    assert (raised.value.pid, raised.value.path) == (holder.pid, str(path))
    host.close()
