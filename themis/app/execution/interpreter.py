"""The effect interpreter: runs pending trials through the ports, concurrently, under trio.

Shape: a nursery of `max_concurrent_tasks` workers that take trials from the lazy plan in plan
order, one at a time each (the global concurrency limit; ADR 0014), with per-stage and
per-provider limiters around the work itself;
every event goes through one bounded channel to a single `EventWriter` task, which group-commits
batches to the store and keeps the projection current. On cancellation the writer's final flush
is shielded, so what was produced before an interrupt is not lost.

Each trial is `themis.app.execution.trials.TrialRunner.trial`; its model calls go through
`themis.app.execution.calls.ModelCaller` (preflight, rate limits, breaker, timeouts, retries,
per-trial cost). The run budget is checked here, before each trial is dispatched: once
`max_cost_per_run` would be exceeded, no further trial starts, the ones in flight finish, and
the execution ends with `RunPaused` instead of `RunCompleted`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from itertools import islice

import trio
from attrs import frozen

from themis.app.execution.derived_batch import (
    columnar,
    dispatch_columns,
    keep_up,
)
from themis.app.execution.groups import run_groups
from themis.app.execution.judges import run_judges
from themis.app.execution.limiters import deliver
from themis.app.execution.ports import Ports
from themis.app.execution.trials import (
    LOOKUP_TRIALS,
    ProgressCallback,
    ProgressCounts,
    Reusable,
    TrialRunner,
)
from themis.app.execution.work import Execution
from themis.app.execution.writer import EventWriter, Sent, channel_size
from themis.core.budget import COST_LIMIT
from themis.core.events import Event, RunCompleted, RunPaused, RunStarted
from themis.core.planner import PendingTrial
from themis.core.provider_state import ProviderHold
from themis.core.stages import Stage
from themis.core.state import RunState


@frozen
class ExecutionResult:
    """The state the log shows after the execution; `completed` is false when it paused."""

    state: RunState
    counts: ProgressCounts
    completed: bool


async def execute(
    execution: Execution,
    ports: Ports,
    writer: EventWriter,
    *,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 0.25,
) -> ExecutionResult:
    """Run the execution's work to the end (or until cancelled or paused) and return the state
    the log shows. Its calls go through `ports` (the models, the clock, the providers' registry
    and the state shared with other processes, the sandbox of an `execution` metric); its events
    through `writer`. With a reducer, the groups of samples are reduced (then parsed and scored)
    once the trials are done; with judges (and `until_stage = judge`), every candidate is then
    judged."""
    compiled, state, runtime = execution.compiled, execution.state, execution.runtime
    clock, until_stage = ports.clock, execution.until_stage
    counts = ProgressCounts(total=execution.total)
    send, receive = trio.open_memory_channel[Sent](channel_size(runtime))
    run = TrialRunner(execution, ports, send, counts, writer.fold)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, receive)
        if on_progress is not None:
            nursery.start_soon(
                _report_progress, on_progress, counts, progress_interval, run.caller.holds
            )
        async with send:
            number = state.executions + 1
            started = RunStarted(
                at=clock.now(),
                planned=compiled.trial_count,
                until_stage=until_stage,
                execution=number,
            )
            await send.send([*execution.preamble, started])
            if run.caller.watch.active:
                nursery.start_soon(run.caller.watch.run)
            if execution.batch:
                paused = await _dispatch_batch(run, execution.work, runtime.store_batch_size)
            else:
                workers = min(runtime.max_concurrent_tasks, max(1, execution.total))
                paused = await _dispatch(run, execution.work, workers)
            if not paused:  # the reduce stage: each group once its samples are settled
                await run_groups(run, until_stage, runtime.max_concurrent_tasks)
                # the judge stage: every candidate is known now
                store = ports.store if runtime.reuse_generations else None
                paused = await run_judges(run, until_stage, runtime.max_concurrent_tasks, store)
            end: Event = (
                RunPaused(
                    at=clock.now(),
                    reason=COST_LIMIT,
                    spent=run.budget.ledger.spent,
                    execution=number,
                )
                if paused
                else RunCompleted(
                    at=clock.now(), completed_through_stage=until_stage, epoch=state.epoch
                )
            )
            await send.send([end])
        await writer.closed.wait()
        nursery.cancel_scope.cancel()
    if on_progress is not None:
        on_progress(counts)
    return ExecutionResult(state=writer.state(), counts=counts, completed=not paused)


async def _dispatch(run: TrialRunner, work: Iterable[PendingTrial], workers: int) -> bool:
    """Run `work` on `workers` workers; `True` when the run budget stopped it.

    Each worker takes the next trial of the plan when it is free, so trials start in plan
    order and the plan is read no faster than they start. A trial that will call a model is
    taken only if the budget admits its estimated cost (which it then holds until the call is
    settled); once one is refused, no worker takes another and the trials in flight finish.
    A worker per slot instead of a task per trial: spawning a task and acquiring a limiter
    for each trial cost more CPU than the rest of the trial's orchestration (ADR 0014).
    """
    budget = run.budget
    items = iter(work)
    paused = False

    async def worker() -> None:
        nonlocal paused
        while not paused:
            item = next(items, None)
            if item is None:
                return
            held = None
            if budget.pausing and _calls_model(run, item):
                go, held = budget.dispatch(item.plan)
                if not go:
                    paused = True
                    return
            await run.trial(item, held)

    async with trio.open_nursery() as nursery:
        for _ in range(workers):
            nursery.start_soon(worker)
    return paused


async def _dispatch_batch(run: TrialRunner, work: Iterable[PendingTrial], size: int) -> bool:
    """Run `work` (a replay's: no model call) in plan order, `size` trials at a time: each
    trial parsed and scored in a plain loop, each chunk's events sent to the writer at once
    (ADR 0041), so that what is held of them is bounded by `size`, not by the run. Other runs'
    generations are looked up `LOOKUP_TRIALS` trials ahead (one store query each: a query scans
    the log). The rare trial that needs more (a model call, which a replay refuses, or the
    sandbox) runs as a trial of `_dispatch` does, in turn. Never paused: nothing is spent.

    A derived replay whose trials qualify takes them as columns instead, `READ_TRIALS` at a
    time (`themis.app.execution.derived_batch`); a read that does not, trial by trial."""
    if columnar(run):
        await dispatch_columns(run, work, size, _trial_by_trial)
        return False
    items = iter(work)
    while ahead := list(islice(items, max(size, LOOKUP_TRIALS))):
        await _trial_by_trial(run, ahead, size)
    return False


async def _trial_by_trial(run: TrialRunner, ahead: Sequence[PendingTrial], size: int) -> None:
    """`ahead`'s other runs' generations looked up at once, then its trials `size` a chunk."""
    await run.prefetch(ahead)
    for start in range(0, len(ahead), size):
        await _batch(run, ahead[start : start + size])


async def _batch(run: TrialRunner, chunk: Sequence[PendingTrial]) -> None:
    """One chunk of `_dispatch_batch`: its trials settled, its events sent at once."""
    events: list[Event] = []
    try:
        for item in chunk:
            if not run.trial_now(item, events):
                if events:  # in log order: what this chunk did so far, then that trial's
                    await deliver(run.send, events)
                    events = []
                await run.trial(item)
    except BaseException:  # an interrupt: what the chunk finished is kept, as a run's is
        with suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            if events:
                run.send.send_nowait(events)
        raise
    if events:
        await deliver(run.send, events)
    await keep_up(run.send)  # at most `CHUNKS_AHEAD` chunks wait; an interrupt is seen here


def _calls_model(run: TrialRunner, item: PendingTrial) -> bool:
    key = item.plan.trial_key
    return Stage.GENERATE in item.stages and key not in run.reusable and key not in run.generated


async def _report_progress(
    callback: ProgressCallback,
    counts: ProgressCounts,
    interval: float,
    holds: Callable[[], tuple[ProviderHold, ...]],
) -> None:
    while True:
        counts.holds = holds()
        callback(counts)
        await trio.sleep(interval)


__all__ = [
    "Execution",
    "ExecutionResult",
    "ProgressCallback",
    "ProgressCounts",
    "Reusable",
    "execute",
]
