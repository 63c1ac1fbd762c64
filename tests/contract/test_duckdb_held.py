"""A writer's store file is held by one in-memory instance of the process, attached in row
groups of `ROW_GROUP_ROWS` rows, and every other open of it in the process goes through that
instance (`duckdb_held`, ADR 0120).

DuckDB's default group, 122,880 rows, kept a 100k-trial run's whole log in one row group, which
each automatic checkpoint wrote again. DuckDB refuses a second attach of one file in one process,
so a second writer, a read-only open and `DuckDBStore.attached` take a cursor of the holder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.contract.test_store_contract import SAMPLE_EVENTS, answers, make_snapshot
from themis.adapters.stores import duckdb_held
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_held import ROW_GROUP_ROWS
from themis.core.errors import StoreError


def _held(path: Path) -> bool:
    """Whether this process holds the file at `path` (another test's store left open may hold
    its own: only this test's file is checked)."""
    return os.path.realpath(path) in duckdb_held._HELD


def _row_groups(cursor: Any, table: str) -> int:
    query = f"SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('{table}')"
    return int(cursor.execute(query).fetchone()[0])


def test_a_writer_writes_row_groups_of_row_group_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        cursor = store.cursor()
        cursor.execute(
            f"CREATE TABLE probe AS SELECT range AS i FROM range({2 * ROW_GROUP_ROWS + 1})"
        )
        cursor.execute("CHECKPOINT")
        assert _row_groups(cursor, "probe") == 3
        cursor.close()
    finally:
        store.close()
    reader = DuckDBStore(path, read_only=True)
    try:
        cursor = reader.cursor()
        assert cursor.execute("SELECT count(*) FROM probe").fetchone() == (2 * ROW_GROUP_ROWS + 1,)
        cursor.close()
    finally:
        reader.close()


def test_a_store_written_in_the_default_row_groups_is_written_on(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    DuckDBStore(path).close()
    with duckdb.connect(str(path)) as older:  # as a writer before ADR 0120 opened it
        older.execute("CREATE TABLE probe AS SELECT range AS i FROM range(5000)")
    store = DuckDBStore(path)
    try:
        cursor = store.cursor()
        cursor.execute("INSERT INTO probe SELECT range FROM range(5000)")
        cursor.execute("CHECKPOINT")
        assert cursor.execute("SELECT count(*), sum(i) FROM probe").fetchone() == (
            10000,
            2 * sum(range(5000)),
        )
        cursor.close()
    finally:
        store.close()


def test_a_writer_spills_beside_its_file_not_in_the_working_directory(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        cursor = store.cursor()
        (directory,) = cursor.execute("SELECT current_setting('temp_directory')").fetchone()
        cursor.close()
    finally:
        store.close()
    assert directory == f"{path}.tmp"


def test_two_writers_of_one_file_share_its_holder_until_the_last_closes(tmp_path: Path) -> None:
    """A second store of a file this process writes (a queue's, a second command's) writes
    through the same instance; the file is detached when the last one closes, and opens again."""
    path = tmp_path / "s.duckdb"
    first = DuckDBStore(path)
    second = DuckDBStore(tmp_path / "." / "s.duckdb")  # the same file by another spelling
    try:
        first.save_snapshot(make_snapshot("run-a"))
        first.append("run-a", 1, SAMPLE_EVENTS)
        assert second.read("run-a") == first.read("run-a")
        second.append("run-a", len(SAMPLE_EVENTS) + 1, answers(1))
        assert first.last_seq("run-a") == len(SAMPLE_EVENTS) + 1
        first.close()
        assert second.last_seq("run-a") == len(SAMPLE_EVENTS) + 1
    finally:
        first.close()
        second.close()
    assert not _held(path)
    with duckdb.connect(str(path), read_only=True) as con:  # the file is free again
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_a_read_only_open_of_a_file_the_process_writes_reads_it_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.duckdb"
    writer = DuckDBStore(path)
    try:
        writer.save_snapshot(make_snapshot("run-a"))
        writer.append("run-a", 1, SAMPLE_EVENTS)
        reader = DuckDBStore(path, read_only=True)
        try:
            assert reader.read("run-a") == writer.read("run-a")
            assert reader.load_snapshot("run-a") == make_snapshot("run-a")
            with pytest.raises(StoreError, match="only reads"):
                reader.append("run-a", 10, SAMPLE_EVENTS)
        finally:
            reader.close()
        writer.append("run-a", len(SAMPLE_EVENTS) + 1, answers(1))  # still held
    finally:
        writer.close()
    assert not _held(path)


def test_an_attached_open_of_a_file_the_process_writes_goes_through_its_holder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.duckdb"
    writer = DuckDBStore(path)
    host = duckdb.connect()
    try:
        writer.save_snapshot(make_snapshot("run-a"))
        writer.append("run-a", 1, SAMPLE_EVENTS)
        attached = DuckDBStore.attached(host, path)
        try:
            assert attached.read("run-a") == writer.read("run-a")
            cursor = attached.cursor()
            assert cursor.execute("SELECT count(*) FROM runs").fetchone() == (1,)
            cursor.close()
            with pytest.raises(StoreError, match="only reads"):
                attached.append("run-a", 10, SAMPLE_EVENTS)
        finally:
            attached.close()
        assert writer.last_seq("run-a") == len(SAMPLE_EVENTS)
    finally:
        writer.close()
        host.close()
    assert not _held(path)


def test_a_failed_open_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(StoreError, match="not a Themis store"):
        DuckDBStore(path)
    assert not _held(path)
