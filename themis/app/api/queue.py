"""Queued runs (ADR 0031): `submit` puts a compiled run in its store's queue and returns at
once; `work` takes queued runs in submission order and runs each to its end.

A worker takes a run only while it holds the store (a DuckDB file admits one process), so two
workers on one store take turns through the store's lock: neither takes a run the other runs,
and one left `running` by a worker that stopped mid-run is taken first and resumed. A worker
never waits in silence: `on_note` hears what it waits for (a submission, or the store's holder)
and what it takes and how each run ended.

The queue's entries and their transitions are `themis.core.queue` (the same concept, pure data).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Unpack

import attrs
from attrs import frozen

from themis.app.api.experiment import Experiment
from themis.app.api.run_requests import checked_request
from themis.app.api.stored_runs import Adapters
from themis.app.usecases.runs import load_compiled, new_snapshot
from themis.app.wiring import (
    StoreLike,
    live_progress_beside,
    opened_store,
    run_queue_of,
    system_clock,
)
from themis.core.errors import StoreLocked, ThemisError
from themis.core.queue import FAILED, Ending, QueuedRun, waiting
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.ports.run_queue import RunQueuePort
from themis.ports.store import StorePort

__all__ = ["Submission", "prune_queue", "submit_run", "work"]

Notes = Callable[[str], None]


@frozen
class Submission:
    """What `submit_run` did: the run's queue entry, whether it was queued now (`False`: it was
    already queued or running, and is not queued twice) and how many runs wait before it."""

    entry: QueuedRun
    queued: bool
    ahead: int

    @property
    def run_id(self) -> str:
        return self.entry.run_id


def submit_run(
    experiment: Experiment,
    store: StoreLike = "themis.duckdb",
    *,
    until_stage: Stage | str | None = None,
    runtime_changes: Mapping[str, Any] | None = None,
    **adapters: Unpack[Adapters],
) -> Submission:
    """Queue `experiment` (compiled, every name checked) on `store` for a worker; never opens
    the store itself, so it returns at once while a worker holds it. `runtime_changes` change
    runtime settings, as for `run`; `adapters['models']`: the `ModelPort`s the worker will be
    given (checked now, like `run` checks them)."""
    request = checked_request(
        experiment, experiment.runtime, until_stage, adapters.get("models"), runtime_changes or {}
    )
    clock = adapters.get("clock") or system_clock()
    queue = run_queue_of(store)
    at = clock.now()
    candidate = QueuedRun(
        run_id=request.compiled.run_id,
        name=request.compiled.spec.name,
        position=0,
        submitted_at=at,
        until_stage=request.until_stage,
        trials=request.compiled.trial_count,
    )
    entry, queued = queue.submit(candidate, new_snapshot(request, at))
    ahead = sum(1 for other in waiting(queue.entries()) if other.position < entry.position)
    return Submission(entry=entry, queued=queued, ahead=ahead)


def prune_queue(store: StoreLike = "themis.duckdb") -> list[QueuedRun]:
    """Remove the done entries from `store`'s queue (their runs' results stay in the store) and
    return them; queued and running runs stay. Never opens the store (ADR 0045)."""
    return run_queue_of(store).prune()


def work(
    store: StoreLike = "themis.duckdb",
    *,
    once: bool = False,
    poll_interval: float = 1.0,
    on_note: Notes | None = None,
    before_run: Callable[[QueuedRun], None] | None = None,
    **adapters: Unpack[Adapters],
) -> list[QueuedRun]:
    """Take queued runs of `store` in submission order and run each to its end (resuming one a
    stopped worker left); with `once`, one run (or none if nothing is queued), else until
    interrupted. Returns the entries it finished. `before_run` hears each entry taken before
    anything of its run is read (the console script fits the allocator to its size there).
    `adapters`: as for `Experiment.run`."""
    queue = run_queue_of(store)
    say = _Speaker(on_note)
    finished: list[QueuedRun] = []
    where = _where(store)
    while True:
        if not waiting(queue.entries()):
            if once:
                say(f"nothing queued in {where}; exiting (once)")
                return finished
            say.waiting(f"waiting for a submitted run in {where} (themis submit); Ctrl-C stops")
            time.sleep(poll_interval)
            continue
        try:
            with opened_store(store) as opened:
                taken = queue.take(os.getpid(), (adapters.get("clock") or system_clock()).now())
                if taken is not None:
                    if before_run is not None:
                        before_run(taken[0])
                    finished.append(_execute(opened, queue, taken, say, adapters))
        except StoreLocked as locked:
            say.waiting(f"waiting for {where}: {_holder(locked)}; its runs come first")
            time.sleep(poll_interval)
            continue
        if once and finished:
            return finished


def _execute(
    opened: StorePort,
    queue: RunQueuePort,
    taken: tuple[QueuedRun, RunSnapshot],
    say: _Speaker,
    adapters: Adapters,
) -> QueuedRun:
    """Run a taken entry to its end in the store the worker holds; record how it ended."""
    entry, snapshot = taken
    run_id, label = entry.run_id, f"run {entry.run_id[:12]} ({entry.name})"
    runtime = snapshot.runtime
    if entry.attempts > 1:  # a worker stopped while running it: continue, never start again
        runtime = attrs.evolve(runtime, existing_run_policy="auto")
        say(f"resuming {label}: a worker stopped while running it")
    else:
        say(f"taking {label}")
    clock = adapters.get("clock") or system_clock()
    try:
        if opened.load_snapshot(run_id) is None:
            opened.save_snapshot(snapshot)
        _, compiled = load_compiled(opened, run_id)
        experiment = Experiment._compiled(compiled, runtime)
        experiment.telemetry = adapters.get("telemetry")
        result = experiment.run(
            opened,
            until_stage=entry.until_stage,
            models=adapters.get("models"),
            clock=adapters.get("clock"),
            on_progress=adapters.get("on_progress"),
        )
    except ThemisError as error:
        say(f"{label} failed: {error}")
        queue.finish(run_id, clock.now(), Ending(FAILED, error=str(error)), None)
        return _entry_of(queue, entry)
    except Exception as error:  # a bug: the run is done as failed, not retried forever
        ending = Ending(FAILED, error=f"{type(error).__name__}: {error}")
        queue.finish(run_id, clock.now(), ending, None)
        raise
    ending = Ending(
        result.status,
        trials_executed=result.trials_executed,
        model_calls=result.model_calls,
        reused=result.reused,
    )
    queue.finish(run_id, clock.now(), ending, result.report)
    say(
        f"{label} {result.status}: executed {result.trials_executed} trials "
        f"({result.model_calls} model calls)"
    )
    return _entry_of(queue, entry)


def _entry_of(queue: RunQueuePort, entry: QueuedRun) -> QueuedRun:
    return next(e for e in queue.entries() if e.position == entry.position)


def _where(store: StoreLike) -> str:
    return str(store) if isinstance(store, str | Path) else "the store"


def _holder(locked: StoreLocked) -> str:
    """Who holds the store, and what it runs (as it publishes)."""
    records = live_progress_beside(locked.path).records(pid=locked.pid)
    running = ", ".join(f"run {record.run_id[:12]} ({record.name})" for record in records)
    return f"in use by PID {locked.pid}" + (f", running {running}" if running else "")


class _Speaker:
    """Notes to the worker's caller; a waiting note only when it differs from the last one."""

    def __init__(self, on_note: Notes | None) -> None:
        self._on_note = on_note
        self._last_wait: str | None = None

    def __call__(self, text: str) -> None:
        self._last_wait = None
        if self._on_note is not None:
            self._on_note(text)

    def waiting(self, text: str) -> None:
        if text != self._last_wait and self._on_note is not None:
            self._on_note(text)
        self._last_wait = text
