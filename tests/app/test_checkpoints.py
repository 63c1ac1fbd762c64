"""Projection checkpoints in the use cases: a finished run is checkpointed with its report, reuse
decides from the summary alone, a reopen folds only what follows the checkpoint, and a
checkpoint never changes an answer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs
import duckdb
import pytest
import trio.testing

from tests.app.doubles import (
    CountingModel,
    Interrupting,
    even_only,
    events_of,
    make_spec,
    run_virtual,
)
from tests.key_forms import key_forms  # noqa: F401  # each test for both forms of keys
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.usecases import runs
from themis.app.usecases.runs import load_state, report_run
from themis.core.checkpoint import Checkpoint
from themis.core.errors import StoreError
from themis.core.events import Event, RunCompleted, ScoreCompleted, StageReset
from themis.core.planner import compile_run
from themis.core.report import build_report
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.core.state import project


class RecordingStore(MemoryStore):
    """Records checkpoint saves and reads; `sealed` makes every full decode an error."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[Checkpoint] = []
        self.reads_after: list[int] = []
        self.sealed = False

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        self.saved.append(checkpoint)
        super().save_checkpoint(run_id, checkpoint)

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Event]]:
        assert not self.sealed, "read the log"
        self.reads_after.append(after_seq)
        return super().read(run_id, after_seq)

    def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        assert not self.sealed, "decoded the whole checkpoint"
        return super().load_checkpoint(run_id)

    def load_snapshot(self, run_id: str) -> RunSnapshot | None:
        assert not self.sealed, "decoded the snapshot"
        return super().load_snapshot(run_id)


def test_a_finished_run_is_checkpointed_at_its_last_seq_with_its_report() -> None:
    compiled = compile_run(make_spec(6))
    store = RecordingStore()

    result = run_virtual(compiled, CountingModel(answer=even_only), store)

    checkpoint = store.load_checkpoint(compiled.run_id)
    assert checkpoint is not None
    events = events_of(store, compiled.run_id)
    assert checkpoint.seq == len(events) == store.last_seq(compiled.run_id)
    assert checkpoint.state == project(events)
    assert checkpoint.report == result.report == build_report(compiled, project(events))
    assert [saved.seq for saved in store.saved] == [len(events)]  # default interval: only the end


class ShedOrderStore(MemoryStore):
    """Records the order of appends, `shed_memory` and checkpoint saves."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        self.calls.append("append")
        super().append(run_id, first_seq, events)

    def shed_memory(self) -> None:
        self.calls.append("shed")

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        self.calls.append("checkpoint")
        super().save_checkpoint(run_id, checkpoint)


def test_the_store_sheds_its_memory_once_the_log_is_written_before_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADR 0098: a DuckDB writer's buffer of the log goes before the report, the case table and
    the final checkpoint are built beside it."""
    monkeypatch.setattr(runs, "SHED_TRIALS", 6)  # this execution's 6 trials reach the bar
    store = ShedOrderStore()

    run_virtual(compile_run(make_spec(6)), CountingModel(answer=even_only), store)

    calls = [call for i, call in enumerate(store.calls) if call != store.calls[i - 1] or i == 0]
    assert calls == ["append", "shed", "checkpoint"]


def test_an_execution_under_the_bar_keeps_the_store_s_memory_for_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADR 0106: a small execution's end does not wait for a shed (the places' insert and the
    log's fold into the file) that would give back little: its report is built beside them."""
    monkeypatch.setattr(runs, "SHED_TRIALS", 7)
    store = ShedOrderStore()

    run_virtual(compile_run(make_spec(6)), CountingModel(answer=even_only), store)

    assert "shed" not in store.calls
    assert store.calls[-1] == "checkpoint"


def test_reusing_a_completed_run_decodes_neither_state_nor_snapshot() -> None:
    compiled = compile_run(make_spec(5))
    store = RecordingStore()
    first = run_virtual(compiled, CountingModel(answer=even_only), store)
    store.sealed = True
    model = CountingModel()

    again = run_virtual(compiled, model, store)

    assert again.reused
    assert (model.calls, again.model_calls, again.trials_executed) == (0, 0, 0)
    assert again.report == first.report
    assert (again.status, again.completed_through_stage) == ("completed", Stage.SCORE)


def test_a_reused_report_carries_the_name_it_is_reached_under() -> None:
    spec = make_spec(3)
    store = MemoryStore()
    run_virtual(compile_run(spec), CountingModel(), store)
    renamed = compile_run(attrs.evolve(spec, name="renamed"))  # the name is provenance

    again = run_virtual(renamed, CountingModel(), store)

    assert again.reused
    assert again.report.name == "renamed"
    assert again.report == build_report(renamed, load_state(store, renamed.run_id)[0])


def test_a_run_complete_only_through_generate_is_not_reused_for_score() -> None:
    compiled = compile_run(make_spec(4))
    store = MemoryStore()
    run_virtual(compiled, CountingModel(), store, until_stage=Stage.GENERATE)
    model = CountingModel()

    result = run_virtual(compiled, model, store)

    assert not result.reused
    assert (model.calls, result.trials_executed) == (0, 4)
    assert result.completed_through_stage is Stage.SCORE
    assert run_virtual(compiled, model, store, until_stage=Stage.GENERATE).reused


def test_events_logged_after_the_checkpoint_are_folded_not_ignored() -> None:
    compiled = compile_run(make_spec(4))
    store = RecordingStore()
    first = run_virtual(compiled, CountingModel(answer=even_only), store)
    seq = store.last_seq(compiled.run_id)
    # As `replay --stage score` would: void the scores, recorded after the checkpoint.
    store.append(compiled.run_id, seq + 1, [StageReset(at=1.0, reset_stage=Stage.SCORE, epoch=1)])
    store.reads_after.clear()
    model = CountingModel()

    again = run_virtual(compiled, model, store)

    assert not again.reused
    assert store.reads_after[0] == seq  # only the events after the checkpoint were read
    assert (model.calls, again.trials_executed) == (0, 4)
    rescored = [e for e in events_of(store, compiled.run_id)[seq:] if isinstance(e, ScoreCompleted)]
    assert {score.epoch for score in rescored} == {1}
    assert again.report == first.report
    final = store.load_checkpoint(compiled.run_id)
    assert final is not None
    assert final.seq == store.last_seq(compiled.run_id)


@pytest.mark.parametrize("interval", [0, 5])
def test_the_writer_checkpoints_at_growing_intervals_and_a_reopen_folds_only_the_rest(
    interval: int,
) -> None:
    count = 16
    compiled = compile_run(make_spec(count))
    runtime = RuntimeConfig(
        max_concurrent_tasks=2,
        store_batch_size=3,
        store_flush_interval=0.01,
        checkpoint_interval=interval,
    )
    store = RecordingStore()

    # The writer appends in a worker thread; with the default threshold of 0 virtual time would
    # jump while an append is in flight, so on a loaded machine every trial could finish before
    # the first append returns and leave no room for a periodic checkpoint.
    patient = trio.testing.MockClock(autojump_threshold=0.25)
    with pytest.raises(KeyboardInterrupt):
        run_virtual(
            compiled, Interrupting(at=12, latency=1.0), store, runtime=runtime, mock_clock=patient
        )

    events = events_of(store, compiled.run_id)
    seqs = [saved.seq for saved in store.saved]
    if interval == 0:
        assert seqs == []
    else:
        assert len(seqs) >= 2
        # At least `interval` apart, and at least twice as far as the previous one reached.
        assert all(b - a >= max(interval, 2 * a) for a, b in zip([0, *seqs], seqs, strict=False))
        for saved in store.saved:  # each is the fold of the log's prefix, without a report
            assert saved.state == project(events[: saved.seq])
            assert saved.report is None
    store.reads_after.clear()

    state, next_seq = load_state(store, compiled.run_id)

    assert (state, next_seq) == (project(events), len(events) + 1)
    assert store.reads_after == [seqs[-1] if seqs else 0]
    resumed = run_virtual(compiled, CountingModel(latency=1.0, answer=even_only), store)
    fresh = run_virtual(compiled, CountingModel(answer=even_only), MemoryStore())
    assert resumed.report == fresh.report


class BrokenCheckpoints(MemoryStore):
    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        raise StoreError("checkpoint disk on fire")


def test_a_checkpoint_that_cannot_be_saved_costs_only_speed() -> None:
    compiled = compile_run(make_spec(6))
    store = BrokenCheckpoints()
    runtime = RuntimeConfig(store_batch_size=2, store_flush_interval=0.0, checkpoint_interval=2)

    first = run_virtual(compiled, CountingModel(answer=even_only), store, runtime=runtime)
    again = run_virtual(compiled, CountingModel(), store, runtime=runtime)

    assert first.status == "completed"
    assert store.load_checkpoint(compiled.run_id) is None
    assert again.reused
    assert again.report == first.report


def test_a_checkpoint_ahead_of_its_log_is_ignored() -> None:
    compiled = compile_run(make_spec(3))
    store = MemoryStore()
    run_virtual(compiled, CountingModel(), store)
    events = events_of(store, compiled.run_id)
    bogus = Checkpoint(seq=len(events) + 5, state=project(events[:2]))
    store.save_checkpoint(compiled.run_id, bogus)

    assert load_state(store, compiled.run_id) == (project(events), len(events) + 1)


def test_a_store_without_checkpoints_is_reused_and_checkpointed_on_the_way(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.duckdb"
    compiled = compile_run(make_spec(4))
    store = DuckDBStore(path)
    first = run_virtual(compiled, CountingModel(answer=even_only), store)
    store.close()
    with duckdb.connect(str(path)) as con:  # as a store written before checkpoints existed
        con.execute("DELETE FROM checkpoints")
    store = DuckDBStore(path)
    try:
        assert store.load_checkpoint_summary(compiled.run_id) is None

        again = run_virtual(compiled, CountingModel(), store)

        assert again.reused
        assert again.report == first.report
        summary = store.load_checkpoint_summary(compiled.run_id)
        assert summary is not None
        assert summary.report == first.report
        assert report_run(store, compiled.run_id[:8]) == first.report
    finally:
        store.close()


def test_report_uses_the_cached_report_only_while_it_is_current() -> None:
    compiled = compile_run(make_spec(4))
    store = RecordingStore()
    first = run_virtual(compiled, CountingModel(answer=even_only), store)
    store.reads_after.clear()
    assert report_run(store, compiled.run_id) == first.report
    assert store.reads_after == []  # answered from the checkpoint's cached report

    seq = store.last_seq(compiled.run_id)
    late: Sequence[Event] = [RunCompleted(at=9.0, completed_through_stage=Stage.GENERATE)]
    store.append(compiled.run_id, seq + 1, late)
    assert report_run(store, compiled.run_id) == first.report
    assert store.reads_after == [seq]  # folded from the checkpoint instead
