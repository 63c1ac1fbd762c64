"""A new run's snapshot is stored in a thread while its first model calls go out, not before
them, and before its first event; its live progress is published only once the snapshot is
stored (a viewer finds a run by it); a run that does not execute stores it at once (ADR 0060)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
import trio.testing

from tests.app.doubles import CountingModel, events_of, make_spec, run_virtual
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.ports import Ports
from themis.app.usecases.runs import Driving, RunRequest, run_experiment
from themis.core.events import Event
from themis.core.generation import ModelResponse
from themis.core.live_progress import LiveRecord
from themis.core.planner import ModelRequest, compile_run
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot


class SnapshotAfterACall(MemoryStore):
    """Records the order of snapshot saves and appends; a snapshot save waits (a while) for a
    model call to have started, and says whether one had."""

    def __init__(self) -> None:
        super().__init__()
        self.called = threading.Event()
        self.order: list[str] = []
        self.saved_after_a_call: list[bool] = []

    def save_snapshot(self, snapshot: RunSnapshot, *, places: bool = True) -> None:
        self.saved_after_a_call.append(self.called.wait(timeout=3))
        self.order.append("snapshot")
        super().save_snapshot(snapshot, places=places)

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        self.order.append("append")
        super().append(run_id, first_seq, events)


class Signalling(CountingModel):
    def __init__(self, store: SnapshotAfterACall) -> None:
        super().__init__(latency=1.0)
        self.store = store

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.store.called.set()
        return await super().generate(request)


class SnapshotSeen:
    """A live-progress port recording, at each publication, whether the run's snapshot was in
    `store` then."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.seen: list[bool] = []
        self.withdrawn: list[str] = []

    @property
    def pid(self) -> int:
        return 1

    def publish(self, record: LiveRecord) -> bool:
        self.seen.append(self.store.load_snapshot(record.run_id) is not None)
        return True

    def withdraw(self, run_id: str) -> None:
        self.withdrawn.append(run_id)

    def records(self, pid: int | None = None) -> list[LiveRecord]:
        return []


def test_a_new_run_s_snapshot_is_stored_while_its_first_calls_go_out_before_its_events() -> None:
    compiled = compile_run(make_spec(6))
    store = SnapshotAfterACall()

    result = run_virtual(compiled, Signalling(store), store)

    assert store.saved_after_a_call == [True]
    assert store.order[0] == "snapshot"  # before the log's first event
    assert store.load_snapshot(compiled.run_id) is not None
    assert result.report == run_virtual(compiled, CountingModel(), MemoryStore()).report


def test_live_progress_is_published_only_once_the_snapshot_is_stored() -> None:
    compiled = compile_run(make_spec(6))
    store = SnapshotAfterACall()
    live = SnapshotSeen(store)
    ports = Ports(store=store, clock=FakeClock(), models={"fake": Signalling(store)}, live=live)

    run_experiment(
        RunRequest(compiled, RuntimeConfig()),
        ports,
        Driving(trio_clock=trio.testing.MockClock(autojump_threshold=0)),
    )

    assert live.seen
    assert all(live.seen)
    assert live.withdrawn == [compiled.run_id]


def test_a_run_with_nothing_to_execute_stores_its_missing_snapshot_at_once() -> None:
    compiled = compile_run(make_spec(4))
    done = MemoryStore()
    run_virtual(compiled, CountingModel(), done)
    store = MemoryStore()  # the run's whole log, without its snapshot
    records = done.read(compiled.run_id)
    store.append(compiled.run_id, 1, [event for _, event in records])
    model = CountingModel()

    result = run_virtual(compiled, model, store)

    assert model.calls == 0
    assert result.trials_executed == 0
    assert store.load_snapshot(compiled.run_id) is not None
    assert events_of(store, compiled.run_id) == [event for _, event in records]


def test_interrupting_a_new_run_keeps_its_snapshot() -> None:
    compiled = compile_run(make_spec(6))
    store = MemoryStore()

    class Interrupted(CountingModel):
        async def generate(self, request: ModelRequest) -> ModelResponse:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_virtual(compiled, Interrupted(), store)

    assert store.load_snapshot(compiled.run_id) is not None
