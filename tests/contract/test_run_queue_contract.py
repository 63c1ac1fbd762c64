"""The `RunQueuePort` contract, run against every adapter (each supplies only its constructor);
then what only the file adapter promises: other instances (processes) see the queue, nothing is
lost when many submit at once, and a queue it cannot read is a clear error."""

from __future__ import annotations

import threading
from pathlib import Path

import attrs
import pytest

from themis.adapters.run_queue import FileRunQueue, MemoryRunQueue, queue_directory
from themis.app.api.experiment import Experiment
from themis.core.errors import StoreError
from themis.core.queue import DONE, QUEUED, RUNNING, Ending, QueuedRun
from themis.core.report import Report
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.ports.run_queue import RunQueuePort

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def demo() -> tuple[RunSnapshot, Report]:
    experiment = Experiment.from_file(EXAMPLES / "demo.toml")
    report = experiment.run("memory").report
    snapshot = RunSnapshot(experiment.run_id, 1.0, experiment.spec, experiment.runtime)
    return snapshot, report


def _other(snapshot: RunSnapshot, name: str) -> RunSnapshot:
    return attrs.evolve(snapshot, run_id=f"{name}{snapshot.run_id[len(name) :]}")


def _submit(
    port: RunQueuePort, snapshot: RunSnapshot, at: float, stage: Stage = Stage.SCORE
) -> tuple[QueuedRun, bool]:
    candidate = QueuedRun(snapshot.run_id, snapshot.spec.name, 0, at, stage, trials=288)
    return port.submit(candidate, snapshot)


class RunQueueContract:
    """The tests every `RunQueuePort` adapter must pass."""

    def make_port(self, tmp_path: Path) -> RunQueuePort:
        raise NotImplementedError

    @pytest.fixture
    def port(self, tmp_path: Path) -> RunQueuePort:
        return self.make_port(tmp_path)

    def test_a_new_queue_is_empty(self, port: RunQueuePort) -> None:
        assert port.entries() == []
        assert port.take(1, 1.0) is None

    def test_a_submission_is_queued_once(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        snapshot, _ = demo
        entry, new = _submit(port, snapshot, 5.0, Stage.GENERATE)
        assert new
        assert (entry.run_id, entry.name, entry.position, entry.state) == (
            snapshot.run_id,
            "demo-arithmetic",
            1,
            QUEUED,
        )
        assert entry.until_stage is Stage.GENERATE
        assert _submit(port, snapshot, 6.0) == (entry, False)
        assert port.entries() == [entry]

    def test_runs_are_taken_in_submission_order_with_their_snapshots(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        first, second = _other(demo[0], "aaaa"), _other(demo[0], "bbbb")
        _submit(port, second, 1.0)
        _submit(port, first, 2.0)
        taken = port.take(11, 3.0)
        assert taken is not None
        entry, snapshot = taken
        assert (entry.run_id, entry.state, entry.worker, entry.attempts) == (
            second.run_id,
            RUNNING,
            11,
            1,
        )
        assert snapshot == second
        assert _submit(port, second, 4.0) == (entry, False)  # running: not queued twice

    def test_a_taken_run_not_finished_is_taken_again_first(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        _submit(port, _other(demo[0], "aaaa"), 1.0)
        _submit(port, _other(demo[0], "bbbb"), 2.0)
        first = port.take(11, 3.0)
        again = port.take(12, 4.0)
        assert first is not None
        assert again is not None
        assert again[0].run_id == first[0].run_id
        assert (again[0].worker, again[0].attempts) == (12, 2)

    def test_a_finished_run_keeps_its_ending_and_report(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        snapshot, report = demo
        _submit(port, snapshot, 1.0)
        port.take(11, 2.0)
        ending = Ending("completed", trials_executed=288, model_calls=288)
        port.finish(snapshot.run_id, 3.0, ending, report)
        [entry] = port.entries()
        assert (entry.state, entry.finished_at, entry.ending) == (DONE, 3.0, ending)
        assert port.report(snapshot.run_id) == report
        assert port.take(11, 4.0) is None
        again, new = _submit(port, snapshot, 5.0)  # done: queued again, last
        assert new
        assert again.position == 2

    def test_a_submitted_runs_snapshot_is_kept(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        snapshot, _ = demo
        assert port.snapshot(snapshot.run_id) is None
        _submit(port, snapshot, 1.0)
        assert port.snapshot(snapshot.run_id) == snapshot

    def test_a_failed_run_has_no_report(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        snapshot, _ = demo
        _submit(port, snapshot, 1.0)
        port.take(11, 2.0)
        port.finish(snapshot.run_id, 3.0, Ending("failed", error="boom"), None)
        assert port.report(snapshot.run_id) is None
        assert port.entries()[0].ending == Ending("failed", error="boom")

    def test_prune_removes_only_done_entries_with_their_files(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        done, running, waiting = (_other(demo[0], name) for name in ("aaaa", "bbbb", "cccc"))
        for at, snapshot in enumerate((done, running, waiting)):
            _submit(port, snapshot, float(at))
        port.take(11, 3.0)
        port.finish(done.run_id, 4.0, Ending("completed"), demo[1])
        port.take(12, 5.0)

        [removed] = port.prune()

        assert (removed.run_id, removed.state) == (done.run_id, DONE)
        assert [(e.run_id, e.state) for e in port.entries()] == [
            (running.run_id, RUNNING),
            (waiting.run_id, QUEUED),
        ]
        assert port.snapshot(done.run_id) is None
        assert port.report(done.run_id) is None
        assert port.snapshot(waiting.run_id) == waiting
        assert port.prune() == []

    def test_prune_keeps_the_snapshot_of_a_done_run_submitted_again(
        self, port: RunQueuePort, demo: tuple[RunSnapshot, Report]
    ) -> None:
        snapshot, report = demo
        _submit(port, snapshot, 1.0)
        port.take(11, 2.0)
        port.finish(snapshot.run_id, 3.0, Ending("completed"), report)
        again, _ = _submit(port, snapshot, 4.0)
        assert [entry.position for entry in port.prune()] == [1]
        assert port.entries() == [again]
        assert port.snapshot(snapshot.run_id) == snapshot
        taken = port.take(11, 5.0)
        assert taken is not None
        assert taken[1] == snapshot


class TestMemoryRunQueue(RunQueueContract):
    def make_port(self, tmp_path: Path) -> RunQueuePort:
        return MemoryRunQueue()


class TestFileRunQueue(RunQueueContract):
    def make_port(self, tmp_path: Path) -> RunQueuePort:
        return FileRunQueue(queue_directory(tmp_path / "store.duckdb"))


def test_another_instance_sees_the_queue(tmp_path: Path, demo: tuple[RunSnapshot, Report]) -> None:
    directory = queue_directory(tmp_path / "store.duckdb")
    entry, _ = _submit(FileRunQueue(directory), demo[0], 1.0)
    assert FileRunQueue(directory).entries() == [entry]
    assert not (tmp_path / "store.duckdb").exists()  # the store itself is never touched


def test_reading_an_absent_queue_creates_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "store.duckdb.queue"
    assert FileRunQueue(directory).entries() == []
    assert not directory.exists()


def test_many_submitting_at_once_lose_no_run(
    tmp_path: Path, demo: tuple[RunSnapshot, Report]
) -> None:
    directory = queue_directory(tmp_path / "store.duckdb")
    snapshots = [_other(demo[0], f"{index:04d}") for index in range(24)]
    threads = [
        threading.Thread(target=_submit, args=(FileRunQueue(directory), snapshot, 1.0))
        for snapshot in snapshots + snapshots  # each twice
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = FileRunQueue(directory).entries()
    assert sorted(entry.run_id for entry in entries) == sorted(s.run_id for s in snapshots)
    assert [entry.position for entry in entries] == list(range(1, 25))


def test_a_queue_file_it_cannot_read_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "store.duckdb.queue"
    directory.mkdir()
    (directory / "queue.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match=r"queue\.json: not a run queue this Themis reads"):
        FileRunQueue(directory).entries()
