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
from tests.older_stores import as_schema_3
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_open import StoreNeedsWriting
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


def _as_older(store: Path, version: int) -> None:
    """Make `store` what an older Themis wrote: schema 3 before compiled facts (ADR 0034), the
    log one event a row (ADR 0046), or schema 2 (before the log's views and trial places as
    well)."""
    with duckdb.connect(str(store)) as con:
        con.execute("DROP TABLE compiled_facts")
        as_schema_3(con)
        if version == 2:
            views = con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
            for (name,) in views:
                con.execute(f"DROP VIEW {name}")
            con.execute("DROP TABLE trial_places")
            con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


BAD_NAME = ("--set", "parser.name=no_such_parser")


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(
    "command",
    [
        ("run", "{demo}", *BAD_NAME),
        ("run", "{broken}"),
        ("resume", "{run}", "--config", "{demo}", *BAD_NAME),
        ("resume", "{run}", "--config", "{broken}"),
        ("replay", "{run}", "--stage", "parse", "--config", "{demo}", *BAD_NAME),
        ("submit", "{demo}", *BAD_NAME),
        ("plan", "{demo}", *BAD_NAME),
    ],
    ids=lambda command: (
        "-".join(command[:2]).replace("{", "").replace("}", "")
        + ("-name" if BAD_NAME[1] in command else "-file")
    ),
)
def test_a_bad_config_leaves_an_older_store_as_it_was(
    invoke: Invoke, demo: Path, store: Path, command: tuple[str, ...], version: int
) -> None:
    """A command that takes a config and a store checks the config before it writes anything:
    an older store (which the next writer migrates) keeps every byte, and nothing is queued."""
    run_id = output_json(invoke("run", demo, "--store", store, "--json"))["run_id"]
    _as_older(store, version)
    broken = demo.with_name("broken.toml")
    broken.write_text(demo.read_text().replace('name = "number"', 'name = "number'))
    before = checksum(store)
    listed = sorted(store.parent.iterdir())

    args = [part.format(demo=demo, broken=broken, run=run_id[:12]) for part in command]
    line = one_error_line(invoke(*args, "--store", store))

    assert ("no_such_parser" if BAD_NAME[1] in command else "broken.toml") in line
    assert checksum(store) == before
    assert sorted(store.parent.iterdir()) == listed  # no queue, no progress file left


@pytest.mark.parametrize("version", [2, 3])
def test_a_writer_asked_to_write_nothing_yet_refuses_an_older_store_untouched(
    invoke: Invoke, demo: Path, store: Path, version: int
) -> None:
    assert invoke("run", demo, "--store", store, "--quiet").exit_code == 0
    DuckDBStore(store, migrate=False).close()  # a current store opens so
    _as_older(store, version)
    before = checksum(store)
    with pytest.raises(StoreNeedsWriting, match="needs its tables created or migrated"):
        DuckDBStore(store, migrate=False)
    assert checksum(store) == before
    DuckDBStore(store).close()  # a writer's ordinary open migrates it
    DuckDBStore(store, migrate=False).close()
