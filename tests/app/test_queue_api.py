"""The queue from Python: `Orchestrator.submit(..., queue=True)` returns a handle at once, a
worker (`Orchestrator.work`, `themis.app.api.queue.work`) runs it, and the handle's `status()`
and `wait()` follow it to the same result a local run gives."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

import themis
from tests.app.test_orchestrator import CountingModel, config
from themis import Orchestrator, ProjectSpec, StorageSpec
from themis.app.api.queue import work


def _project(path: str) -> ProjectSpec:
    return ProjectSpec(storage=StorageSpec(path=path), global_seed=5)


def test_a_queued_run_waits_for_a_worker_then_reports_as_a_local_run() -> None:
    model = CountingModel()
    with Orchestrator(_project("memory"), models={"fake": model}) as orchestrator:
        handle = orchestrator.submit(config(), queue=True)
        assert handle.run_id == orchestrator.experiment(config()).run_id
        assert (handle.status(), handle.done(), model.calls) == ("queued", False, 0)
        with pytest.raises(TimeoutError, match="still queued"):
            handle.wait(timeout=0.05)
        again = orchestrator.submit(config(), queue=True)  # queued already: not twice
        [finished] = orchestrator.work(once=True)
        assert (finished.run_id, finished.position) == (handle.run_id, 1)
        assert again.run_id == handle.run_id
        result = handle.wait(timeout=5)
        assert (handle.status(), result.report.scored, model.calls) == ("completed", 4, 4)
        assert orchestrator.work(once=True) == []  # nothing left
    with Orchestrator(_project("memory"), models={"fake": CountingModel()}) as local:
        assert local.run(config()).report == result.report


def test_a_worker_thread_on_a_store_file_runs_the_queue_in_submission_order(
    tmp_path: Path,
) -> None:
    store = tmp_path / "q.duckdb"
    with Orchestrator(_project(str(store))) as orchestrator:
        first = orchestrator.submit(config(), queue=True, max_concurrent_tasks=2)
        second = orchestrator.submit(config(samples=2), queue=True)
        assert (first.status(), second.status()) == ("queued", "queued")
    notes: list[str] = []
    worker = threading.Thread(target=work, args=(store,), kwargs={"on_note": notes.append})
    worker.daemon = True  # it polls until the process ends
    worker.start()
    assert second.wait(timeout=60).report.scored == 8
    assert first.wait(timeout=60).status == "completed"
    assert [note.split(" (")[0] for note in notes if note.startswith("taking")] == [
        f"taking run {first.run_id[:12]}",
        f"taking run {second.run_id[:12]}",
    ]
    assert themis.runs(store)[0].run_id == first.run_id
    snapshot = themis.get_run_snapshot(first.run_id, store)
    assert snapshot.runtime["max_concurrent_tasks"] == 2  # the submitted runtime is honoured


def test_a_failed_queued_run_reraises_on_wait() -> None:
    class Broken:
        async def generate(self, request: themis.ModelRequest) -> themis.ModelResponse:
            raise themis.ConfigError("boom")

    with Orchestrator(_project("memory"), models={"fake": Broken()}) as orchestrator:
        handle = orchestrator.submit(config(), queue=True)
        orchestrator.work(once=True)
        with pytest.raises(themis.ThemisError, match="boom"):
            handle.wait(timeout=5)
        assert handle.status() == "failed"


def test_submit_to_a_queue_checks_the_config_first() -> None:
    with (
        Orchestrator(_project("memory")) as orchestrator,
        pytest.raises(themis.ConfigError, match="nunber"),
    ):
        orchestrator.submit(config(parser={"name": "nunber"}), queue=True)


class InFlight:
    """Answers after a short sleep; records the most calls it had in flight at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def generate(self, request: themis.ModelRequest) -> themis.ModelResponse:
        self.now += 1
        self.most = max(self.most, self.now)
        await trio.sleep(0.01)
        self.now -= 1
        return themis.ModelResponse(text="0", input_tokens=1, output_tokens=1)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_worker_runs_a_queued_run_with_the_runtime_it_was_submitted_with(
    concurrency: int,
) -> None:
    model = InFlight()
    with Orchestrator(_project("memory"), models={"fake": model}) as orchestrator:
        handle = orchestrator.submit(
            config(samples=3), queue=True, max_concurrent_tasks=concurrency
        )
        orchestrator.work(once=True)
        assert handle.wait(timeout=5).status == "completed"
    assert model.most == concurrency


@pytest.mark.parametrize("where", ["memory", "file"])
def test_runs_lists_queued_runs_and_prune_queue_removes_the_done_ones(
    tmp_path: Path, where: str
) -> None:
    path = "memory" if where == "memory" else str(tmp_path / "q.duckdb")
    with Orchestrator(_project(path), models={"fake": CountingModel()}) as orchestrator:
        first = orchestrator.submit(config(), queue=True)
        second = orchestrator.submit(config(samples=2), queue=True)
        listed = orchestrator.runs()
        assert [(run.run_id, run.queued, run.event_count) for run in listed] == [
            (first.run_id, True, 0),
            (second.run_id, True, 0),
        ]
        orchestrator.work(once=True)
        listed = orchestrator.runs()
        assert [(run.run_id, run.queued) for run in listed] == [
            (first.run_id, False),
            (second.run_id, True),
        ]
        assert listed[0].event_count > 0
        [pruned] = orchestrator.prune_queue()
        assert (pruned.run_id, pruned.state) == (first.run_id, "done")
        assert second.status() == "queued"
        with pytest.raises(themis.ThemisError, match="no longer in the queue"):
            first.status()
        assert orchestrator.prune_queue() == []
        assert orchestrator.report(first.run_id).scored == 4  # its results stay in the store
