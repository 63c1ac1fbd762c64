"""Stores are never damaged and can be read wherever they are (issue 10, item 6).

Another program's DuckDB database is refused by every command and left byte for byte as it was;
a store that cannot be written (read-only media, or held read-only by another process) can still
be reported and inspected; a run that starts while an inspection holds the store waits for it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from tests.cli.helpers import Invoke, one_error_line, output_json
from tests.holders import holding
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.errors import StoreError, StoreLocked


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """Another program's DuckDB database: a table of its own, no Themis tables."""
    path = tmp_path / "inventory.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE items (sku VARCHAR, count INTEGER)")
        con.execute("INSERT INTO items VALUES ('a-1', 3), ('b-2', 5)")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ("report", "abcd"),
        ("quickcheck",),
        ("runs",),
        ("inspect", "state", "abcd"),
        ("resume", "abcd"),
        ("run", "{demo}"),
    ],
    ids=lambda command: command[0] if command[0] != "inspect" else "inspect-state",
)
def test_another_programs_database_is_refused_and_left_untouched(
    invoke: Invoke, demo: Path, foreign: Path, command: tuple[str, ...]
) -> None:
    before = checksum(foreign)
    args = [str(demo) if part == "{demo}" else part for part in command]
    line = one_error_line(invoke(*args, "--store", foreign))
    assert line == (
        f"error: {foreign} is not a Themis store (a DuckDB database with other tables: items); "
        "it was left untouched: pass another --store"
    )
    assert checksum(foreign) == before
    assert sorted(foreign.parent.iterdir()) == [demo.parent / "data", demo, foreign]


@pytest.mark.parametrize("read_only", [False, True])
def test_the_store_adapter_refuses_a_foreign_database_either_way(
    foreign: Path, read_only: bool
) -> None:
    before = checksum(foreign)
    with pytest.raises(StoreError, match="is not a Themis store"):
        DuckDBStore(foreign, read_only=read_only)
    assert checksum(foreign) == before


@contextmanager
def read_only_media(directory: Path) -> Iterator[None]:
    """`directory` and its files made unwritable, as on read-only media: by permissions, or (as
    root, whom permissions do not stop) by the immutable attribute."""
    paths = [*directory.iterdir(), directory]
    if os.geteuid() != 0:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path in paths:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    made = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make files immutable here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_a_store_on_read_only_media_can_be_reported_and_inspected(
    invoke: Invoke, demo: Path, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    store = media / "s.duckdb"
    ran = output_json(invoke("run", demo, "--store", store, "--json"))
    run_id = ran["run_id"][:12]
    before = checksum(store)
    with read_only_media(media):
        with pytest.raises(PermissionError):  # really unwritable
            (media / "probe").write_text("x")
        report = output_json(invoke("report", run_id, "--store", store, "--format", "json"))
        assert report["run_id"] == ran["run_id"]
        state = output_json(invoke("inspect", "state", run_id, "--store", store, "--json"))
        assert state["status"] == "completed"
        for command in (("quickcheck",), ("runs",), ("inspect", "snapshot", run_id)):
            result = invoke(*command, "--store", store)
            assert result.exit_code == 0, result.output
    assert checksum(store) == before


def test_a_store_an_inspection_holds_can_still_be_read(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    run_id = output_json(invoke("run", demo, "--store", store, "--json"))["run_id"]
    with holding(store, read_only=True):  # a reader opening read-write would be refused
        report = output_json(invoke("report", run_id[:12], "--store", store, "--format", "json"))
        assert report["status"] == "completed"
        result = invoke("quickcheck", "--store", store)
        assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_run_waits_for_an_inspection_that_holds_the_store_briefly(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    DuckDBStore(store).close()
    with holding(store, read_only=True, seconds=0.4):  # a run starting now finds it locked
        result = invoke("run", demo, "--store", store, "--json")
    assert result.exit_code == 0, result.output
    assert output_json(result)["status"] == "completed"


@pytest.mark.slow
def test_the_wait_is_bounded_and_then_names_the_holder(store: Path) -> None:
    DuckDBStore(store).close()
    with holding(store, read_only=True) as holder:
        started = time.monotonic()
        with pytest.raises(StoreLocked) as raised:
            DuckDBStore(store, lock_wait=0.3)
        waited = time.monotonic() - started
    assert raised.value.pid == holder.pid
    assert 0.2 < waited < 5.0
