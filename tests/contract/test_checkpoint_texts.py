"""A large checkpoint's report and case table kept in chunks under 4 KiB (ADR 0101).

A large run's final checkpoint kept its report in `checkpoints.report` and its case table as one
blob of `checkpoint_cases`, values DuckDB must hold whole, so its head was written with the
writer's memory bound lifted (the 1M run's peak). Now both are rows of `checkpoint_texts` under
4 KiB, read back joined, and no write of the checkpoint lifts the bound; a checkpoint of the
older layout (the report inline, the case table one blob, no `checkpoint_texts` table) is read
as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import duckdb
import numpy as np
import pytest

from tests.contract.test_store_checkpoints import make_report
from tests.contract.test_store_contract import answers
from themis.adapters import checkpoint_codec
from themis.adapters.case_table_codec import encode_case_table
from themis.adapters.codec import encode_report
from themis.adapters.stores import duckdb as duckdb_store
from themis.adapters.stores import duckdb_bound
from themis.adapters.stores.duckdb import CHUNK_BYTES, DuckDBStore
from themis.core.case_table import CaseTable
from themis.core.checkpoint import Checkpoint
from themis.core.report import Report, ReportRow
from themis.core.state import project

TRIALS = 3_000


@pytest.fixture(autouse=True)
def chunked_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint is kept as a large one (format 7), however few its rows."""
    monkeypatch.setattr(checkpoint_codec, "is_large_run", lambda rows: True)


def _long_report() -> Report:
    """A report whose text is many chunks long."""
    rows = tuple(
        ReportRow(f"d{i}", "m", "p", "exact_match", 0.5, 0.1, 0.9, 7, 1, 1, "t-cluster")
        for i in range(200)
    )
    return attrs.evolve(make_report(), rows=rows)


def _case_table(cases: int) -> CaseTable:
    """A case table of `cases` rows whose columns do not compress away."""
    noise = np.random.default_rng(7)
    return CaseTable(
        metrics=("exact_match",),
        groups=(("d", "m", "p"),),
        bounds=np.asarray([0, cases], dtype=np.int64),
        cases=np.asarray([f"case-{i}" for i in range(cases)], dtype=np.str_),
        settled=np.ones(cases, dtype=np.int64),
        means=noise.random((1, cases)),
        present_sums=noise.random((1, cases)),
        present_counts=np.ones((1, cases), dtype=np.int64),
    )


def _final_checkpoint(report: Report) -> Checkpoint:
    """A run's final checkpoint at seq `TRIALS`: the log of `answers(TRIALS)` folded, `report`
    and a case table of 20,000 rows (~0.3 MB compressed)."""
    state = project(answers(TRIALS))
    return Checkpoint(seq=TRIALS, state=state, report=report, cases=_case_table(20_000))


def _stored_run(path: Path, checkpoint: Checkpoint) -> None:
    """A store at `path` holding run-a's log of `TRIALS` events and `checkpoint`."""
    store = DuckDBStore(path)
    try:
        store.append("run-a", 1, answers(TRIALS))
        store.save_checkpoint("run-a", checkpoint)
    finally:
        store.close()


def _same_table(read: CaseTable | None, kept: CaseTable) -> bool:
    return (
        read is not None
        and read.cases.tolist() == kept.cases.tolist()
        and read.means.tolist() == kept.means.tolist()
        and read.bounds.tolist() == kept.bounds.tolist()
    )


def _read_back(path: Path, checkpoint: Checkpoint, *, read_only: bool) -> None:
    store = DuckDBStore(path, read_only=read_only)
    try:
        loaded = store.load_checkpoint("run-a")
        assert loaded is not None
        assert loaded.report == checkpoint.report
        assert loaded.state == checkpoint.state
        summary = store.load_checkpoint_summary("run-a")
        assert summary is not None
        assert summary.report == checkpoint.report
        assert checkpoint.cases is not None
        assert _same_table(store.load_case_table("run-a"), checkpoint.cases)
    finally:
        store.close()


@pytest.mark.parametrize("report", [_long_report(), make_report()], ids=["long", "short"])
def test_a_large_checkpoint_s_report_and_case_table_are_rows_under_4_kib(
    tmp_path: Path, report: Report
) -> None:
    """A long report is chunks of `checkpoint_texts` (its head's column NULL), a short one stays
    in the head; the case table is chunks; each reads back whole."""
    path = tmp_path / "s.duckdb"
    checkpoint = _final_checkpoint(report)
    _stored_run(path, checkpoint)
    with duckdb.connect(str(path)) as con:
        (inline,) = con.execute("SELECT report FROM checkpoints").fetchone()
        texts = dict(
            con.execute(
                "SELECT name, count(*) FROM checkpoint_texts GROUP BY name"
                " HAVING max(octet_length(body)) <= $1 AND min(seq) = $2 AND max(seq) = $2"
                " AND count(*) = max(chunk) + 1",
                [CHUNK_BYTES, TRIALS],
            ).fetchall()
        )
        (blobs,) = con.execute("SELECT count(*) FROM checkpoint_cases").fetchone()
    long = len(encode_report(report)) > CHUNK_BYTES
    assert (inline is None) == long
    assert set(texts) == ({"report", "cases"} if long else {"cases"})
    assert texts["cases"] > 10
    assert blobs == 0
    _read_back(path, checkpoint, read_only=True)
    _read_back(path, checkpoint, read_only=False)


def test_no_write_of_a_large_checkpoint_lifts_the_memory_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifted: list[Any] = []
    monkeypatch.setattr(duckdb_store, "unbound", lifted.append)
    _stored_run(tmp_path / "s.duckdb", _final_checkpoint(_long_report()))
    assert lifted == []


def test_a_checkpoint_of_the_older_layout_is_read_and_replaced(tmp_path: Path) -> None:
    """A large checkpoint an older Themis wrote: its report in `checkpoints.report`, its case
    table one row of `checkpoint_cases`, and no `checkpoint_texts` table (a read-only open of
    the file reads it so; a writer's open adds the table, and its next save replaces it)."""
    path = tmp_path / "s.duckdb"
    checkpoint = _final_checkpoint(_long_report())
    _stored_run(path, checkpoint)
    assert checkpoint.report is not None
    assert checkpoint.cases is not None
    report, cases = encode_report(checkpoint.report), checkpoint.cases
    with duckdb.connect(str(path)) as con:  # the older layout, as an older save left it
        con.execute("UPDATE checkpoints SET report = $1", [report])
        con.execute(
            "INSERT INTO checkpoint_cases VALUES ('run-a', $1, $2)",
            [TRIALS, encode_case_table(cases)],
        )
        con.execute("DROP TABLE checkpoint_texts")
    _read_back(path, checkpoint, read_only=True)
    _read_back(path, checkpoint, read_only=False)
    store = DuckDBStore(path)
    try:
        store.append("run-a", TRIALS + 1, answers(1, start=TRIALS + 1))
        later = attrs.evolve(_final_checkpoint(make_report()), seq=TRIALS + 1)
        store.save_checkpoint("run-a", later)
        assert store.load_checkpoint("run-a") == attrs.evolve(later, cases=None)
    finally:
        store.close()
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT count(*) FROM checkpoint_cases").fetchone() == (0,)
        assert con.execute("SELECT DISTINCT seq FROM checkpoint_texts").fetchall() == [
            (TRIALS + 1,)
        ]


def test_texts_a_killed_save_left_are_not_read_and_go_with_the_next_save(
    tmp_path: Path,
) -> None:
    """A save writes its parts and texts, then its head: killed between, the earlier
    checkpoint's report and case table are read, not the new ones, which the next save drops."""
    path = tmp_path / "s.duckdb"
    checkpoint = _final_checkpoint(_long_report())
    _stored_run(path, checkpoint)
    with duckdb.connect(str(path)) as con:  # what a save at seq 5,000 killed after its texts left
        con.execute(
            "INSERT INTO checkpoint_texts SELECT run_id, 5000, name, chunk, body[:10]"
            " FROM checkpoint_texts"
        )
    _read_back(path, checkpoint, read_only=False)
    store = DuckDBStore(path)
    try:
        store.save_checkpoint("run-a", checkpoint)
        store.delete_run("run-b")
    finally:
        store.close()
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT DISTINCT seq FROM checkpoint_texts").fetchall() == [(TRIALS,)]
    store = DuckDBStore(path)
    try:
        store.delete_run("run-a")
    finally:
        store.close()
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT count(*) FROM checkpoint_texts").fetchone() == (0,)


def _limit_now(store: DuckDBStore) -> str:
    cursor = store.cursor()
    try:
        return str(cursor.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    finally:
        cursor.close()


def _shown(limit: str) -> str:
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{limit}'")
        return str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])


def test_a_large_checkpoint_s_chunks_are_saved_under_the_save_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its chunks' transaction runs under `SAVE_LIMIT` (they spill to DuckDB's temporary file
    rather than sit in memory up to the bound), the bound back after; not while places are
    being kept (the lock `_placing` held)."""
    seen: list[str] = []
    insert = duckdb_store._insert_text

    def noting(con: Any, *args: Any) -> None:
        seen.append(str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0]))
        insert(con, *args)

    monkeypatch.setattr(duckdb_store, "_insert_text", noting)
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        store.append("run-a", 1, answers(TRIALS))
        bound = _limit_now(store)
        store.save_checkpoint("run-a", _final_checkpoint(_long_report()))
        assert seen == [_shown(duckdb_bound.SAVE_LIMIT)] * 2
        assert _limit_now(store) == bound
        seen.clear()
        with store._placing:
            store.save_checkpoint("run-a", _final_checkpoint(_long_report()))
        assert seen == [bound] * 2
        assert _limit_now(store) == bound
    finally:
        store.close()
