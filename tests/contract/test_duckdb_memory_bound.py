"""A writer's DuckDB memory is bounded but while large values are kept (ADR 0062).

Under `duckdb_bound.MEMORY_LIMIT` DuckDB evicts the log's blocks and its checkpoints of the log
stay small; a value it must hold whole (a run's snapshot, a checkpoint's parts) is kept and
read with the limit lifted, and folded into the file before the limit comes back: under the
limit such a value cannot be read, and a checkpoint that must rewrite it fails for good.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest

from tests.contract.test_store_contract import answers, make_snapshot
from tests.interrupts import killed_script
from themis.adapters.stores import duckdb as duckdb_module
from themis.adapters.stores import duckdb_bound
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core import large_run
from themis.core.snapshot import RunSnapshot
from themis.core.spec import Case, DatasetSpec

SMALL_LIMIT = "32MB"


def _limit(con: Any) -> str:
    return str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])


def _shown(limit: str) -> str:
    """How DuckDB shows `limit` once set."""
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{limit}'")
        return _limit(con)


def _store_limit(store: DuckDBStore) -> str:
    cursor = store.cursor()
    try:
        return _limit(cursor)
    finally:
        cursor.close()


def _large_snapshot(megabytes: int) -> RunSnapshot:
    """A snapshot whose one case holds `megabytes` MB of text (DuckDB keeps a text that long
    in blocks of its own, uncompressed)."""
    text = "x" * (megabytes * 1_000_000)
    snapshot = make_snapshot()
    case = Case(id="long", fields={"question": text})
    spec = attrs.evolve(snapshot.spec, datasets=(DatasetSpec(name="inline", cases=(case,)),))
    return attrs.evolve(snapshot, spec=spec)


def test_a_writer_of_a_file_bounds_duckdb_and_a_reader_or_memory_store_does_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        assert _store_limit(store) == _shown(duckdb_bound.MEMORY_LIMIT)
        store.save_snapshot(make_snapshot())
        assert _store_limit(store) == _shown(duckdb_bound.MEMORY_LIMIT)  # back after a save
    finally:
        store.close()
    for unbounded in (DuckDBStore(path, read_only=True), DuckDBStore(":memory:")):
        try:
            assert _store_limit(unbounded) != _shown(duckdb_bound.MEMORY_LIMIT)
        finally:
            unbounded.close()


def test_large_values_are_kept_and_read_with_the_bound_lifted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot 1.5 times the limit is kept, read back and survives the log's appends,
    checkpoints and a reopen, all but the snapshot's own calls under the limit."""
    monkeypatch.setattr(duckdb_bound, "MEMORY_LIMIT", SMALL_LIMIT)
    path = tmp_path / "s.duckdb"
    snapshot = _large_snapshot(48)
    store = DuckDBStore(path)
    try:
        store.save_snapshot(snapshot, places=False)
        assert _store_limit(store) == _shown(SMALL_LIMIT)
        for first in range(1, 20_001, 1_000):  # ~6 MB of log, checkpointed under the limit
            store.append(snapshot.run_id, first, answers(1_000, start=first))
        assert store.load_snapshot(snapshot.run_id) == snapshot
        store.save_snapshot(snapshot)  # replaced, with its places
        assert _store_limit(store) == _shown(SMALL_LIMIT)
    finally:
        store.close()
    store = DuckDBStore(path)
    try:
        assert store.load_snapshot(snapshot.run_id) == snapshot
        assert len(store.read(snapshot.run_id)) == 20_000
        store.delete_run(snapshot.run_id)
        assert store.runs() == []
    finally:
        store.close()


def _duckdb_memory(store: DuckDBStore) -> int:
    cursor = store.cursor()
    try:
        (used,) = cursor.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        return int(used)
    finally:
        cursor.close()


def test_shedding_gives_back_the_log_s_blocks_and_keeps_the_bound(tmp_path: Path) -> None:
    """ADR 0098: once a run's log is written (and read), `shed_memory` folds it into the file and
    evicts DuckDB's blocks of it; the bound is back after it and the log reads the same."""
    path = tmp_path / "s.duckdb"
    snapshot = make_snapshot()
    store = DuckDBStore(path)
    try:
        store.save_snapshot(snapshot, places=False)
        for first in range(1, 40_001, 2_000):
            store.append(snapshot.run_id, first, answers(2_000, start=first))
        events = store.read(snapshot.run_id)
        held = _duckdb_memory(store)
        assert held > 8_000_000

        store.shed_memory()

        assert _duckdb_memory(store) < held / 3, (held, _duckdb_memory(store))
        assert _store_limit(store) == _shown(duckdb_bound.MEMORY_LIMIT)
        assert store.read(snapshot.run_id) == events
        store.append(snapshot.run_id, 40_001, answers(10, start=40_001))
    finally:
        store.close()
    for unbounded in (DuckDBStore(path, read_only=True), DuckDBStore(":memory:")):
        try:
            unbounded.shed_memory()  # nothing to give back: not bounded, the limit unchanged
            assert _store_limit(unbounded) != _shown(duckdb_bound.MEMORY_LIMIT)
        finally:
            unbounded.close()


def test_a_store_with_a_reader_is_not_bounded_so_the_reader_reads_large_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound is the database's: a reader's SQL over the snapshot (the live viewer's outline
    and cases) ran under it and failed. Once a store has a reader, it is not bounded."""
    monkeypatch.setattr(duckdb_bound, "MEMORY_LIMIT", SMALL_LIMIT)
    snapshot = _large_snapshot(48)
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        store.save_snapshot(snapshot, places=False)
        assert _store_limit(store) == _shown(SMALL_LIMIT)
        reader = store.reader()
        try:
            assert _store_limit(store) != _shown(SMALL_LIMIT)
            cursor = store.cursor()
            (length,) = cursor.execute("SELECT length(snapshot) FROM runs").fetchone()
            assert length > 48_000_000
            assert reader.load_snapshot(snapshot.run_id) == snapshot
            store.append(snapshot.run_id, 1, answers(1_000))
            store.save_snapshot(snapshot)
            assert _store_limit(store) != _shown(SMALL_LIMIT)
            assert len(reader.read(snapshot.run_id)) == 1_000
        finally:
            reader.close()
    finally:
        store.close()


def test_under_the_limit_duckdb_cannot_read_such_a_value(tmp_path: Path) -> None:
    """Why the bound is lifted for them: what DuckDB does with one under the limit."""
    path = tmp_path / "s.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE runs (snapshot VARCHAR)")
        con.execute("INSERT INTO runs VALUES ($1)", ["x" * 48_000_000])
    with duckdb.connect(str(path)) as con:
        con.execute(f"SET memory_limit = '{SMALL_LIMIT}'")
        with pytest.raises(duckdb.OutOfMemoryException):
            con.execute("SELECT snapshot FROM runs").fetchone()


_KILLED_IN_THE_WINDOW = """
import os, signal, sys
from tests.contract.test_duckdb_memory_bound import _large_snapshot
from tests.contract.test_store_contract import answers
from themis.adapters.stores import duckdb, duckdb_bound
from themis.adapters.stores.duckdb import DuckDBStore

duckdb_bound.MEMORY_LIMIT = sys.argv[2]
store = DuckDBStore(sys.argv[1])
snapshot = _large_snapshot(int(sys.argv[3]))
store.append(snapshot.run_id, 1, answers(1_000))
# Killed once the snapshot is committed, before the checkpoint that would fold it into the file.
duckdb.bound = lambda con, limit: os.kill(os.getpid(), signal.SIGKILL)
store.save_snapshot(snapshot, places=False)
"""


def test_a_kill_while_the_bound_is_lifted_leaves_a_store_a_bounded_writer_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 after a large value is committed and before it is folded into the file: the
    next writer's open replays it from the write-ahead log and checkpoints it before it bounds
    DuckDB's memory (under the bound that checkpoint would be DuckDB's FATAL error)."""
    monkeypatch.setattr(duckdb_bound, "MEMORY_LIMIT", SMALL_LIMIT)
    path = tmp_path / "s.duckdb"
    killed_script(_KILLED_IN_THE_WINDOW, str(path), SMALL_LIMIT, "48")
    assert Path(f"{path}.wal").stat().st_size > 48_000_000  # the snapshot, not yet folded
    store = DuckDBStore(path)
    try:
        assert _store_limit(store) == _shown(SMALL_LIMIT)
        snapshot = _large_snapshot(48)
        assert store.load_snapshot(snapshot.run_id) == snapshot
        assert [seq for seq, _ in store.read(snapshot.run_id)] == list(range(1, 1_001))
        store.append(snapshot.run_id, 1_001, answers(1_000, start=1_000))
    finally:
        store.close()


def test_a_kept_outline_s_hash_is_read_without_lifting_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0110: after every execution the facts vouch for the snapshot by its outline's hash,
    one short value: read under the bound, without the two checkpoints of a lifted window."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        snapshot = make_snapshot()
        store.save_snapshot(snapshot)
        lifted: list[object] = []
        monkeypatch.setattr(duckdb_module, "unbound", lifted.append)

        assert store.snapshot_saved_as(snapshot.run_id) is not None
        assert store.snapshot_saved_as("no such run") is None  # no outline: the text's path

        assert len(lifted) == 1
    finally:
        store.close()


def test_a_checkpoint_larger_than_the_bound_is_read_back_by_a_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1M-trial run's checkpoint parts are ~0.2 GiB: a replay or resume reads them through a
    writer's connection, so they are read with the bound lifted too (a replay of a 1M run
    failed with DuckDB's Out of Memory before)."""
    import base64
    import random

    from themis.core.checkpoint import Checkpoint
    from themis.core.events import GenerationCompleted
    from themis.core.state import project

    monkeypatch.setattr(duckdb_bound, "MEMORY_LIMIT", SMALL_LIMIT)
    noise = random.Random(7)
    texts = [base64.b64encode(noise.randbytes(750_000)).decode() for _ in range(64)]  # 64 MB
    events = [
        GenerationCompleted(at=1_700_000_000.0 + i, trial_key=f"trial-{i}", text=text)
        for i, text in enumerate(texts)
    ]
    checkpoint = Checkpoint(seq=len(events), state=project(events))
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        store.save_checkpoint("run-a", checkpoint)
    finally:
        store.close()
    store = DuckDBStore(path)
    try:
        assert _store_limit(store) == _shown(SMALL_LIMIT)
        assert store.load_checkpoint("run-a") == checkpoint
        assert _store_limit(store) == _shown(SMALL_LIMIT)  # bound again after the read
    finally:
        store.close()


def test_a_large_run_s_log_is_appended_under_the_lower_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0101: once the log a writer appends to is a large run's (three events a trial), the
    bound is `LONG_LOG_LIMIT` from then on: after a lifted window, a shed and every append; a
    shorter log keeps `MEMORY_LIMIT`."""
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 1_000)
    path = tmp_path / "s.duckdb"
    snapshot = make_snapshot()
    store = DuckDBStore(path)
    try:
        store.save_snapshot(snapshot, places=False)
        store.append(snapshot.run_id, 1, answers(2_999, start=1))
        assert _store_limit(store) == _shown(duckdb_bound.MEMORY_LIMIT)  # 999 trials' log
        store.append(snapshot.run_id, 3_000, answers(1, start=3_000))
        assert _store_limit(store) == _shown(duckdb_bound.LONG_LOG_LIMIT)
        store.save_snapshot(_large_snapshot(8), places=False)  # a lifted window
        assert _store_limit(store) == _shown(duckdb_bound.LONG_LOG_LIMIT)
        store.shed_memory()
        assert _store_limit(store) == _shown(duckdb_bound.LONG_LOG_LIMIT)
        store.append(snapshot.run_id, 3_001, answers(1_000, start=3_001))
        assert _store_limit(store) == _shown(duckdb_bound.LONG_LOG_LIMIT)
        assert len(store.read(snapshot.run_id)) == 4_000
    finally:
        store.close()
    store = DuckDBStore(path)  # a resumed large run's first append bounds it lower at once
    try:
        assert _store_limit(store) == _shown(duckdb_bound.MEMORY_LIMIT)
        store.append(snapshot.run_id, 4_001, answers(1, start=4_001))
        assert _store_limit(store) == _shown(duckdb_bound.LONG_LOG_LIMIT)
    finally:
        store.close()
