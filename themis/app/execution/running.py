"""The executions running in this process, each with the store it writes and its writer: a
viewer served by the same process (`themis run --view`, `themis.live_viewer`) takes a running
run's compiled spec and the state of its log from here, rather than compiling the run and
folding its log again (ADR 0057), and is told of each execution as it starts on the store it
watches (`watching`), to prepare its pages before anyone asks (ADR 0068). Nothing here reads
or writes a store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs

from themis.app.execution.writer import EventWriter
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.snapshot import RunSnapshot
from themis.ports.store import StorePort

__all__ = ["RunningExecution", "registered", "running_execution", "watching"]


@attrs.frozen(eq=False)
class RunningExecution:
    """One execution in progress: the store it writes (the object itself), the run's stored
    snapshot and compiled run, its writer (`EventWriter.folded` from any thread) and the
    record of the plan it reads (`planned`)."""

    store: StorePort
    snapshot: RunSnapshot
    compiled: CompiledRun
    writer: EventWriter
    record: PlanRecord | None = None

    def planned(self) -> PlanRecord | None:
        """The keys of the run's whole plan once the execution has read all of it (at its
        start when it resumes or replays, as it reads on for a fresh run), else `None`."""
        record = self.record
        if record is None or not record.complete:
            return None
        if len(record.trial_ids) != self.compiled.trial_count:
            return None
        return record


_RUNNING: list[RunningExecution] = []
# Who is told of each execution starting on a store: (the store, what to call).
_WATCHERS: list[tuple[StorePort, Callable[[RunningExecution], None]]] = []
_LOCK = threading.Lock()


@contextmanager
def registered(execution: RunningExecution) -> Iterator[None]:
    """`execution` is found by `running_execution` while the block runs; who watches its
    store is told of it first."""
    with _LOCK:
        _RUNNING.append(execution)
        told = [notice for store, notice in _WATCHERS if store is execution.store]
    for notice in told:
        notice(execution)
    try:
        yield
    finally:
        with _LOCK:
            _RUNNING.remove(execution)


def running_execution(store: StorePort, run_id: str) -> RunningExecution | None:
    """The execution of run `run_id` this process is running on `store` (that very object),
    if any."""
    with _LOCK:
        for execution in _RUNNING:
            if execution.store is store and execution.compiled.run_id == run_id:
                return execution
    return None


@contextmanager
def watching(store: StorePort, notice: Callable[[RunningExecution], None]) -> Iterator[None]:
    """While the block runs, `notice(execution)` is called for each execution registered on
    `store` (that very object), in the executing thread as it starts: it must return at
    once (start a thread for anything longer)."""
    watcher = (store, notice)
    with _LOCK:
        _WATCHERS.append(watcher)
    try:
        yield
    finally:
        with _LOCK:
            _WATCHERS.remove(watcher)
