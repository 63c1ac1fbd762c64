"""What only the DuckDB file promises of a large run's snapshot kept in parts (ADR 0096): its
text is the one a whole snapshot stores, cut in rows under `PART_CHARS` with `runs.snapshot`
NULL, so that every reader (the snapshot, the outline and the name of its text, one case, the
`cases` view, the log's tables) reads what it reads of the same snapshot kept whole; a store
written before parts (no table of them) still reads; a save that fails midway leaves nothing
of the run; a run removed leaves no part."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest

from tests.contract.test_duckdb_outlines import _outline
from tests.contract.test_store_contract import make_snapshot
from themis.adapters.codec import encode_snapshot
from themis.adapters.stores import DuckDBStore, duckdb_snapshot
from themis.adapters.stores import duckdb as duckdb_store
from themis.adapters.stores.duckdb_case import read_case
from themis.adapters.stores.duckdb_tables import read_log
from themis.adapters.stores.duckdb_views import view_sql
from themis.core import large_run
from themis.core.errors import StoreError
from themis.core.planner import compile_run
from themis.core.snapshot import RunSnapshot

PART = 40


@pytest.fixture
def in_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every snapshot kept in parts of `PART` characters, 3 inserted at a time."""
    with monkeypatch.context() as patched:
        patched.setattr(large_run, "LARGE_RUN_TRIALS", 0)
        patched.setattr(duckdb_snapshot, "PART_CHARS", PART)
        patched.setattr(duckdb_snapshot, "PARTS_PER_INSERT", 3)
        yield


def _compiled_snapshot() -> RunSnapshot:
    """`make_snapshot` under its spec's own run id, so that the store places its trials."""
    snapshot = make_snapshot()
    return attrs.evolve(snapshot, run_id=compile_run(snapshot.spec).run_id)


def _saved(path: Path, snapshot: RunSnapshot) -> Path:
    store = DuckDBStore(path)
    try:
        store.save_snapshot(snapshot)
    finally:
        store.close()
    return path


def _read(path: Path, run_id: str) -> dict[str, Any]:
    """Everything a reader reads of the run, through a read-only open."""
    reader = DuckDBStore(path, read_only=True)
    try:
        cursor = reader.cursor()
        read = {
            "snapshot": reader.load_snapshot(run_id),
            "outline": reader.load_outline(run_id),
            "saved_as": reader.snapshot_saved_as(run_id),
            "cases": cursor.execute("SELECT * FROM cases ORDER BY ALL").fetchall(),
            "case": [
                read_case(cursor, run_id, case.id)
                for dataset in make_snapshot().spec.datasets
                for case in dataset.cases
            ],
        }
    finally:
        reader.close()
    tables = read_log(str(path), run_id).items()
    read["log"] = {name: sorted(map(repr, table.relation.fetchall())) for name, table in tables}
    return read


def _parts(path: Path) -> list[tuple[int, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT part, body FROM snapshot_parts ORDER BY part").fetchall()


def test_a_snapshot_in_parts_reads_as_the_same_snapshot_kept_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = _compiled_snapshot()
    whole = _read(_saved(tmp_path / "whole.duckdb", snapshot), snapshot.run_id)
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 0)
    monkeypatch.setattr(duckdb_snapshot, "PART_CHARS", PART)
    monkeypatch.setattr(duckdb_snapshot, "PARTS_PER_INSERT", 3)
    path = _saved(tmp_path / "parts.duckdb", snapshot)

    text = encode_snapshot(snapshot)
    parts = _parts(path)
    assert [part for part, _ in parts] == list(range(-(-len(text) // PART)))
    assert all(len(body) <= PART for _, body in parts)
    assert "".join(body for _, body in parts) == text
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT snapshot FROM runs").fetchall() == [(None,)]
    read = _read(path, snapshot.run_id)
    assert read == whole
    assert read["snapshot"] == snapshot
    assert read["saved_as"] == hashlib.sha256(text.encode()).hexdigest()
    assert read["outline"].stored_as == read["saved_as"]
    assert all(reading is not None for reading in read["case"])


def test_a_part_edited_in_the_store_gives_the_outline_of_the_text(
    tmp_path: Path, in_parts: None
) -> None:
    path = _saved(tmp_path / "s.duckdb", make_snapshot())
    before = _outline(path)
    edited = "".join(body for _, body in _parts(path)).replace('"seed":1234', '"seed":5')
    with duckdb.connect(str(path)) as con:  # another seed, behind the store's back
        con.execute("UPDATE snapshot_parts SET body = '' WHERE part > 0")
        con.execute("UPDATE snapshot_parts SET body = $1 WHERE part = 0", [edited])
    outline = _outline(path)
    assert before is not None
    assert outline is not None
    assert outline.snapshot.spec.seed == 5
    assert outline.stored_as == hashlib.sha256(edited.encode()).hexdigest() != before.stored_as


def test_a_store_written_before_parts_reads_as_it_did(tmp_path: Path) -> None:
    snapshot = _compiled_snapshot()
    path = _saved(tmp_path / "s.duckdb", snapshot)
    read = _read(path, snapshot.run_id)
    with duckdb.connect(str(path)) as con:  # as the last release wrote it: no table of parts
        con.execute("DROP TABLE snapshot_parts")
        con.execute("DELETE FROM meta WHERE key = 'views_version'")
        con.execute("INSERT INTO meta VALUES ('views_version', '1')")
        con.execute("CREATE OR REPLACE VIEW cases AS " + view_sql("cases", runs="runs"))
    assert _read(path, snapshot.run_id) == read
    writer = DuckDBStore(path)  # a writer adds the table and redefines the views
    writer.close()
    assert _parts(path) == []
    assert _read(path, snapshot.run_id) == read


def test_a_save_failing_midway_leaves_nothing_of_the_run(
    tmp_path: Path, in_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = make_snapshot()
    pieces = duckdb_store.snapshot_pieces

    def failing(saved: RunSnapshot) -> Iterator[str]:
        text = "".join(pieces(saved))
        yield text[: PART * 7]  # two batches inserted, then the failure
        raise StoreError("failed midway")

    monkeypatch.setattr(duckdb_store, "snapshot_pieces", failing)
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        with pytest.raises(StoreError, match="failed midway"):
            store.save_snapshot(snapshot, places=False)
        assert store.load_snapshot("run-a") is None
        assert store.load_outline("run-a") is None
        monkeypatch.setattr(duckdb_store, "snapshot_pieces", pieces)
        store.save_snapshot(snapshot, places=False)
        assert store.load_snapshot("run-a") == snapshot
    finally:
        store.close()
    assert "".join(body for _, body in _parts(tmp_path / "s.duckdb")) == encode_snapshot(snapshot)


def test_a_run_saved_again_or_removed_leaves_no_part_behind(tmp_path: Path, in_parts: None) -> None:
    snapshot = make_snapshot()
    path = _saved(tmp_path / "s.duckdb", snapshot)
    count = len(_parts(path))
    store = DuckDBStore(path)
    try:
        store.save_snapshot(snapshot)
    finally:
        store.close()
    assert len(_parts(path)) == count
    store = DuckDBStore(path)
    try:
        store.delete_run("run-a")
    finally:
        store.close()
    assert _parts(path) == []


_SEARCHED = 'xx{"id":"a","fields":1}-aaa-{"id":"b","fields":2}-{"id":"b","fields":3}zz'


@pytest.mark.parametrize("size", [1, 2, 5, 16, 200])
@pytest.mark.parametrize(
    "needle", ['{"id":"a","fields":', '{"id":"b","fields":', "aa", "xx", "zz", "absent"]
)
@pytest.mark.parametrize("window", [1, 9, 1000])
def test_a_search_of_the_parts_finds_what_duckdb_finds_in_the_text(
    size: int, needle: str, window: int
) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE runs (run_id VARCHAR, snapshot VARCHAR)")
    con.execute(duckdb_snapshot.PARTS_TABLE)
    con.execute("INSERT INTO runs VALUES ('parts', NULL), ('whole', $1)", [_SEARCHED])
    parts = [_SEARCHED[at : at + size] for at in range(0, len(_SEARCHED), size)]
    con.execute(
        "INSERT INTO snapshot_parts SELECT 'parts', number - 1, body"
        " FROM unnest($1::VARCHAR[]) WITH ORDINALITY AS parts(body, number)",
        [parts],
    )
    found = con.execute(
        "SELECT sha256(s), p, p > 0 AND position($n IN substr(s, p + 1)) > 0,"
        " CASE WHEN p > 0 THEN substr(s, p, $w) ELSE '' END"
        " FROM (SELECT snapshot AS s, position($n IN snapshot) AS p FROM runs"
        " WHERE run_id = 'whole')",
        {"n": needle, "w": window},
    ).fetchone()
    assert duckdb_snapshot.searched_parts(con, "parts", needle, window) == found
    assert duckdb_snapshot.searched_parts(con, "whole", needle, window) is None
