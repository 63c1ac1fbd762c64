"""What only the DuckDB file promises of a run's outline (ADR 0077): the outline a writer kept
as it saved the snapshot is the one DuckDB cuts out of the snapshot's text; it is taken only
while that text still hashes as it did, so a store edited since (or written before outlines
were kept) gives the outline of what it holds, named by the sha256 of its text."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from tests.contract.test_store_contract import make_snapshot
from themis.adapters.stores import DuckDBStore, duckdb_outline
from themis.core.snapshot import SnapshotOutline


def _outline(path: Path, run_id: str = "run-a") -> SnapshotOutline | None:
    reader = DuckDBStore(path, read_only=True)
    try:
        return reader.load_outline(run_id)
    finally:
        reader.close()


def _text(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute("SELECT snapshot FROM runs WHERE run_id = 'run-a'").fetchone()
    assert row is not None
    text: str = row[0]
    return text


def _stored(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        store.save_snapshot(make_snapshot())
    finally:
        store.close()
    return path


def texts_hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run ids whose snapshot text `duckdb_outline.stored_digest` hashes from now on."""
    hashed: list[str] = []
    digest = duckdb_outline.stored_digest

    def counted(con: object, run_id: str) -> str | None:
        hashed.append(run_id)
        return digest(con, run_id)

    monkeypatch.setattr(duckdb_outline, "stored_digest", counted)
    return hashed


def test_the_kept_outline_is_the_one_cut_from_the_text(tmp_path: Path) -> None:
    path = _stored(tmp_path)
    kept = _outline(path)
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM run_outlines")
    cut = _outline(path)
    assert kept is not None
    assert kept == cut
    assert kept.stored_as == hashlib.sha256(_text(path).encode()).hexdigest()


def test_a_snapshot_edited_in_the_store_gives_the_outline_of_its_text(tmp_path: Path) -> None:
    path = _stored(tmp_path)
    kept = _outline(path)
    with duckdb.connect(str(path)) as con:  # another seed, and another case, behind its back
        con.execute(
            "UPDATE runs SET snapshot = replace(replace(snapshot, '\"seed\":1234', '\"seed\":5'),"
            ' \'"question":"2+2?"\', \'"question":"2+3?"\')'
        )
    edited = _outline(path)
    assert kept is not None
    assert edited is not None
    assert edited.snapshot.spec.seed == 5
    assert edited.stored_as == hashlib.sha256(_text(path).encode()).hexdigest() != kept.stored_as


def test_a_store_written_before_outlines_were_kept_cuts_them(tmp_path: Path) -> None:
    path = _stored(tmp_path)
    kept = _outline(path)
    with duckdb.connect(str(path)) as con:  # as a store written before the table existed
        con.execute("DROP TABLE run_outlines")
    assert _outline(path) == kept
    reader = DuckDBStore(path, read_only=True)
    try:  # hashed from the text when no outline keeps it
        assert kept is not None
        assert reader.snapshot_saved_as("run-a") == kept.stored_as
    finally:
        reader.close()
    DuckDBStore(path).close()  # a writer's open adds the table
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM run_outlines").fetchone() == (0,)
    assert _outline(path) == kept


def test_deleting_a_run_deletes_its_outline(tmp_path: Path) -> None:
    path = _stored(tmp_path)
    store = DuckDBStore(path)
    try:
        store.delete_run("run-a")
        assert store.load_outline("run-a") is None
    finally:
        store.close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM run_outlines").fetchone() == (0,)


def test_a_vouched_outline_is_the_one_kept_its_text_not_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0118: a caller that checks the outline against the run's id itself (a derived
    replay) takes the one kept as it is; a store edited since still gives it, while an
    unvouched read gives the outline of the text; without a kept one, the text is cut."""
    path = _stored(tmp_path)
    kept = _outline(path)
    hashed = texts_hashed(monkeypatch)
    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.load_outline("run-a", vouched=True) == kept
        assert hashed == []
        assert reader.load_outline("run-a") == kept
        assert hashed == ["run-a"]
    finally:
        reader.close()
    with duckdb.connect(str(path)) as con:  # another seed behind its back
        con.execute("UPDATE runs SET snapshot = replace(snapshot, '\"seed\":1234', '\"seed\":5')")
    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.load_outline("run-a", vouched=True) == kept
        edited = reader.load_outline("run-a")
        assert edited is not None
        assert edited.snapshot.spec.seed == 5
    finally:
        reader.close()
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE run_outlines")
    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.load_outline("run-a", vouched=True) == edited
    finally:
        reader.close()
