"""A large run keeps its snapshot in parts (ADR 0096), the bar lowered here so that the demo's
run counts as large: its run, resume, replay and report are those of the run kept whole, and a
process killed while the parts are inserted leaves a store a run of the same config resumes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from tests.app.test_places_kept_early import _experiment
from tests.interrupts import killed_script
from themis.adapters.stores import duckdb_snapshot
from themis.app.usecases.stored import RunResult
from themis.core import large_run


def _run_resume_replay(tmp_path: Path, store: Path) -> list[RunResult]:
    experiment = _experiment(tmp_path)
    ran = experiment.run(store=store, progress="off", until_stage="generate")
    resumed = experiment.run(store=store, progress="off")
    replayed = experiment.replay("score", store=store)
    return [ran, resumed, replayed]


def test_a_run_in_parts_runs_resumes_and_replays_as_one_kept_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _run_resume_replay(tmp_path, tmp_path / "whole.duckdb")
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 0)
    monkeypatch.setattr(duckdb_snapshot, "PART_CHARS", 64)
    in_parts = _run_resume_replay(tmp_path, tmp_path / "parts.duckdb")

    assert [result.report for result in in_parts] == [result.report for result in whole]
    with duckdb.connect(str(tmp_path / "parts.duckdb"), read_only=True) as con:
        assert con.execute("SELECT snapshot FROM runs").fetchall() == [(None,)]
        parts = con.execute("SELECT count(*) FROM snapshot_parts").fetchone()
    assert parts is not None
    assert parts[0] > 10


KILLED_WHILE_THE_PARTS_ARE_INSERTED = """
import os, signal, sys
from pathlib import Path
from tests.app.test_places_kept_early import _experiment
from themis.adapters.stores import duckdb_snapshot
from themis.core import large_run

large_run.LARGE_RUN_TRIALS = 0
duckdb_snapshot.PART_CHARS = 64
duckdb_snapshot.PARTS_PER_INSERT = 4
cut = duckdb_snapshot._cut

def killed_midway(pieces, size):
    for index, part in enumerate(cut(pieces, size)):
        if index == 10:  # two batches of parts inserted, not committed
            os.kill(os.getpid(), signal.SIGKILL)
        yield part

duckdb_snapshot._cut = killed_midway
tmp = Path(sys.argv[1])
_experiment(tmp).run(store=tmp / "s.duckdb", progress="off")
"""


def test_a_kill_while_the_parts_are_inserted_leaves_a_store_that_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed_script(KILLED_WHILE_THE_PARTS_ARE_INSERTED, str(tmp_path))
    store = tmp_path / "s.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM snapshot_parts").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM run_outlines").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 0)
    monkeypatch.setattr(duckdb_snapshot, "PART_CHARS", 64)
    result = _experiment(tmp_path).run(store=store, progress="off")
    fresh = _experiment(tmp_path).run(store=tmp_path / "fresh.duckdb", progress="off")
    assert result.report == fresh.report
    with duckdb.connect(str(store), read_only=True) as con:  # one save's parts, in order
        text = duckdb_snapshot.stored_text(con, result.run_id)
        outline = con.execute("SELECT stored_as FROM run_outlines").fetchall()
    assert text is not None
    assert outline == [(hashlib.sha256(text.encode()).hexdigest(),)]
