"""The inspection use cases through the public API: from the store, and live while it is locked."""

from __future__ import annotations

from pathlib import Path

import pytest

import themis
from tests.app.doubles import make_spec
from tests.holders import dead_pid, holding, live_record, publish_as
from tests.key_forms import key_forms  # noqa: F401  # each test for both forms of keys
from themis import CaseNotFound, Experiment, RunNotFound, StoreLocked
from themis.adapters.stores.memory import MemoryStore
from themis.core.planner import compile_run
from themis.core.stages import Stage


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "s.duckdb"


def _two_runs(store: Path) -> tuple[str, str]:
    """One run complete, generated first and then resumed with other runtime; one generated."""
    first = Experiment.from_spec(make_spec(4, options={"skill": 0.5}, name="first"))
    second = Experiment.from_spec(make_spec(3, name="second"))
    first.run(store=store, until_stage="generate", max_concurrent_tasks=2)
    first.run(store=store, max_concurrent_tasks=5)
    second.run(store=store, until_stage="generate")
    return first.run_id, second.run_id


def test_snapshot_state_and_progress_come_from_the_store(store: Path) -> None:
    first, second = _two_runs(store)

    snapshot = themis.get_run_snapshot(first[:6], store)
    state = themis.get_execution_state(first[:6], str(store))
    progress = themis.get_run_progress(second[:8], store)

    assert snapshot.run_id == first
    assert snapshot.identity == compile_run(make_spec(4, options={"skill": 0.5})).identity
    assert snapshot.summary.trials == 4
    assert snapshot.runtime["max_concurrent_tasks"] == 5
    assert [(c.field, c.old, c.new) for c in snapshot.lineage] == [("max_concurrent_tasks", 2, 5)]
    assert snapshot.live is None
    assert (state.status, state.completed_through_stage, state.live) == (
        "completed",
        Stage.SCORE,
        None,
    )
    assert [(c.stage, c.done, c.pending) for c in state.stages] == [
        (Stage.GENERATE, 4, 0),
        (Stage.PARSE, 4 - state.counts(Stage.PARSE).failed, 0),
        (Stage.SCORE, 4, 0),
    ]
    assert state.lineage == snapshot.lineage
    assert (progress.run_id, progress.stage, progress.done, progress.pending) == (
        second,
        Stage.GENERATE,
        3,
        0,
    )


def test_quickcheck_lists_every_run_oldest_first(store: Path) -> None:
    first, second = _two_runs(store)

    rows = themis.quickcheck(store)

    assert [(row.run_id, row.name, row.status) for row in rows] == [
        (first, "first", "completed"),
        (second, "second", "completed"),
    ]
    assert [(row.completed_through_stage, row.planned, row.done) for row in rows] == [
        (Stage.SCORE, 4, 4),
        (Stage.GENERATE, 3, 3),
    ]


def test_evaluation_execution_and_its_errors(store: Path) -> None:
    first, _ = _two_runs(store)

    view = themis.get_evaluation_execution(first[:8], "c2", store)

    assert (view.run_id, view.case_id, len(view.trials)) == (first, "c2", 1)
    (trial,) = view.trials
    assert trial.messages[-1].content == "What is 2?"
    assert trial.generation is not None
    assert trial.score is not None
    with pytest.raises(
        CaseNotFound, match=r"has no case 'c9' \(4 cases; e\.g\. 'c0', 'c1', 'c2'\)"
    ):
        themis.get_evaluation_execution(first, "c9", store)
    with pytest.raises(RunNotFound, match="no run 'ffffff'"):
        themis.get_evaluation_execution("ffffff", "c2", store)


def test_a_store_object_is_inspected_as_it_is() -> None:
    memory = MemoryStore()
    experiment = Experiment.from_spec(make_spec(2))
    experiment.run(store=memory)

    assert themis.get_execution_state(experiment.run_id, memory).status == "completed"
    assert [row.run_id for row in themis.quickcheck(memory)] == [experiment.run_id]


@pytest.mark.slow
def test_a_locked_store_is_answered_from_its_holders_progress(store: Path) -> None:
    first, second = _two_runs(store)
    record = live_record(store, first, scored=1)
    with holding(store) as holder:
        publish_as(holder.pid, store, record)

        state = themis.get_execution_state(first[:8], store)
        snapshot = themis.get_run_snapshot(first[:8], store)
        progress = themis.get_run_progress(first[:8], store)
        rows = themis.quickcheck(store)
        with pytest.raises(StoreLocked) as evaluation:
            themis.get_evaluation_execution(first[:8], "c1", store)
        with pytest.raises(StoreLocked) as other:
            themis.get_execution_state(second[:8], store)

    assert state.live is not None
    assert state.live.pid == holder.pid
    assert (state.status, [c.done for c in state.stages]) == ("running", [1, 1, 1])
    assert snapshot.live is not None
    assert snapshot.identity is None
    assert (snapshot.run_id, snapshot.summary.trials) == (first, 4)
    assert [c.field for c in snapshot.lineage] == ["max_concurrent_tasks"]
    assert (progress.status, progress.done, progress.pending) == ("running", 1, 3)
    assert [(row.run_id, row.status) for row in rows] == [(first, "running")]
    assert evaluation.value.pid == holder.pid
    assert f"(PID {holder.pid})" in str(evaluation.value)
    assert "retry when that run finishes" in str(evaluation.value)
    assert f"not running run {second[:8]!r}" in str(other.value)


@pytest.mark.slow
def test_a_locked_store_without_progress_names_its_holder(store: Path) -> None:
    _two_runs(store)
    with holding(store) as holder, pytest.raises(StoreLocked) as raised:
        themis.quickcheck(store)

    assert raised.value.pid == holder.pid
    assert "publishes no live progress" in str(raised.value)


@pytest.mark.slow
def test_records_of_other_or_dead_processes_are_not_trusted(store: Path) -> None:
    first, _ = _two_runs(store)
    record = live_record(store, first)
    publish_as(dead_pid(), store, record | {"run_id": "0" * 64})
    with holding(store) as holder:
        publish_as(holder.pid + 1, store, record)  # alive or not, it does not hold the store
        with pytest.raises(StoreLocked, match="publishes no live progress"):
            themis.get_execution_state(first, store)
