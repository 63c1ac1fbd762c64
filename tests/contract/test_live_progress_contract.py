"""The `LiveProgressPort` contract, run against every adapter (each supplies only its
constructor); then what only the file adapter promises: another process reads what one
publishes, a record file is replaced atomically, and foreign or torn files are skipped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from themis.adapters.live_progress import (
    FileLiveProgress,
    MemoryLiveProgress,
    pid_alive,
    progress_directory,
)
from themis.core.inspection import ExecutionState, IdentitySummary, RunSnapshotView
from themis.core.live_progress import PROGRESS_FORMAT, RUNNING, LiveRecord
from themis.core.stages import Stage
from themis.ports.live_progress import LiveProgressPort

ME = 4242
GONE = 999_999


def alive(pid: int) -> bool:
    """Only `GONE` has exited (a fake PID probe, so no test depends on real processes)."""
    return pid != GONE


def record(
    run_id: str = "r" * 64, *, pid: int = ME, at: float = 10.0, calls: int = 0
) -> LiveRecord:
    return LiveRecord(
        format=PROGRESS_FORMAT,
        pid=pid,
        run_id=run_id,
        name="demo",
        status=RUNNING,
        started_at=at,
        updated_at=at + calls,
        until_stage=Stage.SCORE,
        model_calls=calls,
        state=ExecutionState(
            run_id=run_id,
            name="demo",
            status=RUNNING,
            completed_through_stage=None,
            planned=4,
            stages=(),
            lineage=(),
        ),
        snapshot=RunSnapshotView(
            run_id=run_id,
            name="demo",
            created_at=at,
            summary=IdentitySummary(
                datasets=(),
                models=(),
                prompts=("p",),
                samples=1,
                parser="raw",
                metrics=(),
                trials=4,
            ),
            identity=None,
            runtime={"max_concurrent_tasks": 2},
        ),
    )


class LiveProgressContract:
    """The tests every `LiveProgressPort` adapter must pass."""

    def make_port(self, tmp_path: Path, pid: int) -> LiveProgressPort:
        raise NotImplementedError

    @pytest.fixture
    def port(self, tmp_path: Path) -> LiveProgressPort:
        return self.make_port(tmp_path, ME)

    def test_it_names_its_process(self, port: LiveProgressPort) -> None:
        assert port.pid == ME

    def test_nothing_published_reads_as_nothing(self, port: LiveProgressPort) -> None:
        assert port.records() == []
        assert port.records(pid=ME) == []

    def test_publish_then_read_round_trips(self, port: LiveProgressPort) -> None:
        published = record()
        assert port.publish(published) is True
        assert port.records() == [published]
        assert port.records(pid=ME) == [published]
        assert port.records(pid=ME + 1) == []

    def test_a_publication_replaces_the_run_s_record(self, port: LiveProgressPort) -> None:
        port.publish(record(calls=1))
        port.publish(record(calls=5))
        assert [r.model_calls for r in port.records()] == [5]

    def test_records_come_oldest_first_then_by_run_id(self, port: LiveProgressPort) -> None:
        for run_id, at in (("c" * 64, 5.0), ("b" * 64, 9.0), ("a" * 64, 9.0)):
            port.publish(record(run_id, at=at))
        assert [r.run_id[0] for r in port.records()] == ["c", "a", "b"]

    def test_withdraw_removes_only_that_run(self, port: LiveProgressPort) -> None:
        port.publish(record("a" * 64))
        port.publish(record("b" * 64))
        port.withdraw("a" * 64)
        port.withdraw("z" * 64)  # nothing to remove: no error
        assert [r.run_id[0] for r in port.records()] == ["b"]

    def test_records_of_processes_that_are_gone_are_never_read(
        self, port: LiveProgressPort
    ) -> None:
        port.publish(record("a" * 64, pid=GONE))
        port.publish(record("b" * 64))
        assert [r.run_id[0] for r in port.records()] == ["b"]
        assert port.records(pid=GONE) == []


class TestMemoryLiveProgress(LiveProgressContract):
    def make_port(self, tmp_path: Path, pid: int) -> LiveProgressPort:
        return MemoryLiveProgress(pid=pid, alive=alive)


class TestFileLiveProgress(LiveProgressContract):
    def make_port(self, tmp_path: Path, pid: int) -> LiveProgressPort:
        return FileLiveProgress(progress_directory(tmp_path / "s.duckdb"), pid=pid, alive=alive)


# --- only the file adapter ----------------------------------------------------------------------


def test_the_directory_sits_beside_the_store_file(tmp_path: Path) -> None:
    assert progress_directory(tmp_path / "s.duckdb") == tmp_path / "s.duckdb.progress"


def test_another_instance_on_the_directory_reads_what_one_publishes(tmp_path: Path) -> None:
    directory = tmp_path / "s.duckdb.progress"
    published = record()
    FileLiveProgress(directory, pid=ME, alive=alive).publish(published)
    assert FileLiveProgress(directory, pid=7, alive=alive).records(pid=ME) == [published]
    assert [p.name for p in directory.iterdir()] == [f"{published.run_id}.json"]


def test_reading_creates_nothing_and_the_last_withdrawal_removes_the_directory(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "s.duckdb.progress"
    port = FileLiveProgress(directory, pid=ME, alive=alive)
    assert port.records() == []
    assert not directory.exists()
    port.publish(record())
    port.withdraw(record().run_id)
    assert not directory.exists()


def test_the_first_publication_sweeps_away_the_records_of_dead_processes(tmp_path: Path) -> None:
    directory = tmp_path / "s.duckdb.progress"
    FileLiveProgress(directory, pid=GONE, alive=lambda pid: True).publish(
        record("a" * 64, pid=GONE)
    )
    FileLiveProgress(directory, pid=ME, alive=alive).publish(record("b" * 64))
    assert sorted(p.name for p in directory.iterdir()) == [f"{'b' * 64}.json"]


@pytest.mark.parametrize(
    "content",
    ["", '{"format": 1, "pid": 1', "not json", "[1, 2]", json.dumps({"format": 99, "pid": ME})],
)
def test_torn_foreign_or_newer_files_are_skipped(tmp_path: Path, content: str) -> None:
    directory = tmp_path / "s.duckdb.progress"
    port = FileLiveProgress(directory, pid=ME, alive=alive)
    port.publish(record("b" * 64))
    (directory / f"{'a' * 64}.json").write_text(content, encoding="utf-8")
    assert [r.run_id[0] for r in port.records()] == ["b"]


def test_publishing_into_an_unwritable_place_reports_false_and_raises_nothing(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    port = FileLiveProgress(blocker / "progress", pid=ME, alive=alive)
    assert port.publish(record()) is False
    assert port.records() == []


def test_a_failed_replace_leaves_no_temp_file_and_the_old_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "s.duckdb.progress"
    port = FileLiveProgress(directory, pid=ME, alive=alive)
    port.publish(record(calls=1))

    def refuse(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    assert port.publish(record(calls=2)) is False
    monkeypatch.undo()
    assert [r.model_calls for r in port.records()] == [1]
    assert [p.name for p in directory.iterdir()] == [f"{record().run_id}.json"]


def test_the_default_probe_knows_this_process_is_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0)
