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

from collections.abc import Callable, Iterable, Mapping, Sequence

import trio
from attrs import frozen

from themis.app.execution.groups import run_groups
from themis.app.execution.provider_gates import ProviderRegistry
from themis.app.execution.trials import ProgressCallback, ProgressCounts, Reusable, TrialRunner
from themis.app.execution.writer import EventWriter
from themis.core.budget import COST_LIMIT
from themis.core.events import Event, RunCompleted, RunPaused, RunStarted
from themis.core.planner import CompiledRun, PendingTrial
from themis.core.provider_state import ProviderHold
from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.provider_state import ProviderStatePort
from themis.ports.sandbox import SandboxPort


@frozen
class ExecutionResult:
    """The state the log shows after the execution; `completed` is false when it paused."""

    state: RunState
    counts: ProgressCounts
    completed: bool


async def execute(
    compiled: CompiledRun,
    state: RunState,
    work: Iterable[PendingTrial],
    *,
    total: int,
    runtime: RuntimeConfig,
    models: Mapping[str, ModelPort],
    clock: ClockPort,
    writer: EventWriter,
    until_stage: Stage = Stage.SCORE,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 0.25,
    preamble: Sequence[Event] = (),
    reusable: Reusable | None = None,
    registry: ProviderRegistry | None = None,
    shared: ProviderStatePort | None = None,
    sandbox: SandboxPort | None = None,
) -> ExecutionResult:
    """Run `work` to the end (or until cancelled or paused) and return the state the log shows.

    `reusable` holds generations of other runs to record as cache hits instead of calling.
    `registry` holds the providers' rate limits and breakers, shared with the other executions
    that use it (default: this execution's own); `shared` is where breaker windows and pauses
    are shared with other processes (ADR 0009; default: nowhere). `sandbox` runs the
    candidates of an `execution` metric. With a reducer, the groups of samples are reduced
    (then parsed and scored) once the trials are done.
    """
    counts = ProgressCounts(total=total)
    send, receive = trio.open_memory_channel[list[Event]](max(1, runtime.store_batch_size // 3))
    run = TrialRunner(
        state,
        runtime,
        models,
        clock,
        send,
        counts,
        compiled,
        reusable,
        registry,
        shared,
        sandbox,
        execution=state.executions + 1,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, receive)
        if on_progress is not None:
            nursery.start_soon(
                _report_progress, on_progress, counts, progress_interval, run.caller.holds
            )
        async with send:
            execution = state.executions + 1
            started = RunStarted(
                at=clock.now(),
                planned=compiled.trial_count,
                until_stage=until_stage,
                execution=execution,
            )
            await send.send([*preamble, started])
            if run.caller.watch.active:
                nursery.start_soon(run.caller.watch.run)
            workers = min(runtime.max_concurrent_tasks, max(1, total))
            paused = await _dispatch(run, work, workers)
            if not paused:  # the reduce stage: each group once its samples are settled
                await run_groups(run, until_stage, runtime.max_concurrent_tasks)
            end: Event = (
                RunPaused(
                    at=clock.now(),
                    reason=COST_LIMIT,
                    spent=run.budget.ledger.spent,
                    execution=execution,
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


__all__ = ["ExecutionResult", "ProgressCallback", "ProgressCounts", "Reusable", "execute"]
