"""Use cases over a store: run (or reuse) an experiment, report on a run, list runs."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import trio
from attrs import frozen

from themis.app.execution.interpreter import ProgressCallback, Reusable, execute
from themis.app.execution.live import publishing
from themis.app.execution.provider_gates import ProviderRegistry
from themis.app.execution.writer import EventWriter
from themis.app.usecases.checkpoints import fold_from_checkpoint, fresh_report, remember
from themis.app.usecases.provenance import environment_provenance
from themis.app.usecases.reuse import find_reusable
from themis.app.usecases.runtime_lineage import last_runtime, runtime_changes
from themis.app.wiring import sandbox_for, shared_provider_state
from themis.core.budget import COST_LIMIT, pause_holds
from themis.core.errors import RunExists, RunNotFound, StoreError, ThemisError
from themis.core.events import Event, FailuresRetried, RunResumed
from themis.core.planner import (
    CompiledRun,
    PendingTrial,
    PlanRecord,
    compile_run,
    compile_stored,
    pending,
    plan,
)
from themis.core.report import Report, build_report
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot, RunSummary
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import RunCatalog, StorePort

T = TypeVar("T")


@frozen
class RunResult:
    """What one `run` call did and what the run now reports."""

    report: Report
    reused: bool
    trials_executed: int
    model_calls: int

    @property
    def run_id(self) -> str:
        return self.report.run_id

    @property
    def status(self) -> str:
        return self.report.status

    @property
    def completed_through_stage(self) -> Stage | None:
        return self.report.completed_through_stage


def load_state(store: StorePort, run_id: str) -> tuple[RunState, int]:
    """The run's state and the seq its next event gets: its last checkpoint plus the events
    logged after it (see `themis.app.usecases.checkpoints`)."""
    return fold_from_checkpoint(store, run_id)


def run_experiment(
    compiled: CompiledRun,
    runtime: RuntimeConfig,
    store: StorePort,
    *,
    models: Mapping[str, ModelPort],
    clock: ClockPort,
    until_stage: Stage = Stage.SCORE,
    on_progress: ProgressCallback | None = None,
    extra_provenance: Mapping[str, str] | None = None,
    trio_clock: trio.abc.Clock | None = None,
    registry: ProviderRegistry | None = None,
    retry_failed: bool = False,
) -> RunResult:
    """Execute what the log does not show done, honouring `existing_run_policy`.

    `trio_clock` (e.g. `trio.testing.MockClock`) lets tests run the whole use case in virtual time.
    `registry` holds provider rate limits and breakers shared with other executions (e.g.
    `themis.app.execution.provider_gates.process_registry()`); by default the execution has its own.
    `retry_failed` attempts again the trials whose generation failed for good, even in a run
    the log shows complete (`FailuresRetried`). `"rerun"` deletes the stored run and calls the
    models again: it reuses no other run's generations. A run its budget paused stays paused,
    without a call, unless `max_cost_per_run` was raised (`themis.core.budget.pause_holds`).
    """
    run_id = compiled.run_id
    reuse = True
    if runtime.existing_run_policy == "auto" and (
        cached := fresh_report(store, compiled, until_stage)
    ):  # complete, and nothing logged since its checkpoint: no state or snapshot to decode
        _, report = cached
        if not (retry_failed and report.failed):
            return RunResult(report=report, reused=True, trials_executed=0, model_calls=0)
    snapshot = store.load_snapshot(run_id)
    if snapshot is not None:
        # A run that is only planned (`themis plan`: a snapshot, no events) has not run yet.
        if runtime.existing_run_policy == "error" and load_state(store, run_id)[0].started:
            raise RunExists(
                f"run {run_id[:12]} already exists in the store (existing_run_policy = 'error'); "
                "use 'auto' to reuse or resume it, or 'rerun' to start it again"
            )
        if runtime.existing_run_policy == "rerun":
            store.delete_run(run_id)
            snapshot = store.load_snapshot(run_id)
            reuse = False  # a rerun calls the models again, whatever other runs hold
    if snapshot is None:
        snapshot = RunSnapshot(
            run_id=run_id,
            created_at=clock.now(),
            spec=compiled.spec,
            runtime=runtime,
            provenance={**environment_provenance(), **(extra_provenance or {})},
        )
        store.save_snapshot(snapshot)
    state, next_seq = load_state(store, run_id)
    retrying = retry_failed and bool(state.failed_keys)
    if state.is_complete_through(until_stage) and not retrying:
        result = _result(compiled, state, reused=True, executed=0, calls=0)
        remember(store, run_id, next_seq - 1, state, result.report)  # the next reuse is cheap
        return result
    if _budget_still_spent(snapshot, state, runtime):
        return _result(compiled, state, reused=True, executed=0, calls=0)
    preamble: tuple[Event, ...] = ()
    work: Iterable[PendingTrial]
    record = PlanRecord()  # the plan's keys as the execution reads it, for the report
    plans = record.tap(plan(compiled))
    if state.started:
        changes = runtime_changes(last_runtime(snapshot, state), runtime)
        preamble = (RunResumed(at=clock.now(), changes=changes),) if changes else ()
        work = list(pending(plans, state, until_stage))
        total = len(work)
        if retrying:
            failed = state.failed_keys
            keys = {item.plan.trial_key for item in work if item.plan.trial_key in failed}
            retried = FailuresRetried(
                at=clock.now(), execution=state.executions + 1, trial_keys=tuple(sorted(keys))
            )
            preamble = (*preamble, retried)
    else:  # a fresh run: keep the plan lazy, every trial is pending
        work, total = pending(plans, state, until_stage), compiled.trial_count
    return execute_work(
        compiled,
        store,
        state,
        next_seq,
        work,
        total=total,
        runtime=runtime,
        models=models,
        clock=clock,
        until_stage=until_stage,
        on_progress=on_progress,
        trio_clock=trio_clock,
        preamble=preamble,
        registry=registry,
        snapshot=snapshot,
        record=record,
        reuse=reuse,
    )


def _budget_still_spent(snapshot: RunSnapshot, state: RunState, runtime: RuntimeConfig) -> bool:
    """Whether the run is paused by its budget and `runtime` did not raise it (no call then)."""
    if state.pause is None or not state.paused or state.pause.reason != COST_LIMIT:
        return False
    paused_limit = last_runtime(snapshot, state).get("max_cost_per_run")
    return pause_holds(paused_limit, runtime.max_cost_per_run)


def execute_work(
    compiled: CompiledRun,
    store: StorePort,
    state: RunState,
    next_seq: int,
    work: Iterable[PendingTrial],
    *,
    total: int,
    runtime: RuntimeConfig,
    models: Mapping[str, ModelPort],
    clock: ClockPort,
    until_stage: Stage,
    on_progress: ProgressCallback | None,
    trio_clock: trio.abc.Clock | None,
    preamble: Sequence[Event] = (),
    registry: ProviderRegistry | None = None,
    snapshot: RunSnapshot | None = None,
    record: PlanRecord | None = None,
    reuse: bool = True,
) -> RunResult:
    """Run `work` through the interpreter, logging `preamble` first, and report the result.

    Generations other runs of the store completed are reused (`themis.app.usecases.reuse`; not
    with `reuse=False`); the final state is checkpointed with its report, so that reusing the
    run later decodes neither.
    `snapshot` is the run's stored snapshot when the caller has it (else it is loaded for live
    progress); `record`, filled as `work` reads the whole plan, spares planning it again for
    the report.
    """
    reusable: Reusable = {}
    if reuse:
        work, reusable = find_reusable(store, compiled.run_id, work, runtime)
    writer = EventWriter(
        store, compiled.run_id, next_seq=next_seq, state=state, runtime=runtime, clock=clock
    )
    with publishing(  # live progress beside a file store, for `inspect` from other processes
        store,
        compiled,
        state,
        until_stage=until_stage,
        clock=clock,
        on_progress=on_progress,
        preamble=preamble,
        snapshot=snapshot,
        plan_record=record,
    ) as progress:
        outcome = _run_trio(
            functools.partial(
                execute,
                compiled,
                state,
                work,
                total=total,
                runtime=runtime,
                models=models,
                clock=clock,
                writer=writer,
                until_stage=until_stage,
                on_progress=progress,
                preamble=preamble,
                reusable=reusable,
                registry=registry,
                shared=shared_provider_state(store),
                sandbox=sandbox_for(compiled.spec),
            ),
            trio_clock,
        )
    counts = outcome.counts
    executed = total if outcome.completed else counts.done + counts.failed  # paused: fewer
    result = _result(
        compiled,
        outcome.state,
        reused=False,
        executed=executed,
        calls=counts.model_calls,
        record=record,
    )
    remember(store, compiled.run_id, writer.next_seq - 1, outcome.state, result.report)
    return result


def _run_trio(main: Callable[[], Awaitable[T]], clock: trio.abc.Clock | None) -> T:
    """`trio.run`, surfacing a Themis error from inside the nurseries as itself, not a group."""
    try:
        return trio.run(main, clock=clock)
    except BaseExceptionGroup as group:
        found = group.subgroup(lambda error: isinstance(error, ThemisError | KeyboardInterrupt))
        if found is None:
            raise
        first: BaseException = found
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from group


def _result(
    compiled: CompiledRun,
    state: RunState,
    *,
    reused: bool,
    executed: int,
    calls: int,
    record: PlanRecord | None = None,
) -> RunResult:
    return RunResult(
        report=build_report(compiled, state, record),
        reused=reused,
        trials_executed=executed,
        model_calls=calls,
    )


def resolve_run_id(store: RunCatalog, prefix: str) -> str:
    """The one stored run whose id starts with `prefix` (at least 4 characters)."""
    if len(prefix) < 4:
        raise RunNotFound(f"run id {prefix!r} is too short: give at least 4 characters")
    matches = [summary.run_id for summary in store.runs() if summary.run_id.startswith(prefix)]
    if not matches:
        raise RunNotFound(f"no run {prefix!r} in the store (see `themis runs`)")
    if len(matches) > 1:
        raise RunNotFound(
            f"run id {prefix!r} is ambiguous: it matches {len(matches)} runs; give more characters"
        )
    return matches[0]


def load_compiled(store: RunCatalog, run_id: str) -> tuple[RunSnapshot, CompiledRun]:
    """The stored snapshot and its recompiled run; refuses a snapshot whose identity drifted."""
    snapshot = store.load_snapshot(run_id)
    if snapshot is None:
        raise RunNotFound(f"no run {run_id!r} in the store (see `themis runs`)")
    compiled = compile_stored(snapshot.spec, run_id)
    if compiled is None:
        raise StoreError(
            f"run {run_id[:12]}: its stored spec compiles to "
            f"{compile_run(snapshot.spec).run_id[:12]} "
            "with this Themis version"
        )
    return snapshot, compiled


def report_run(store: StorePort, run_id_or_prefix: str) -> Report:
    """The report of a stored run, from its log alone."""
    run_id = resolve_run_id(store, run_id_or_prefix)
    _, compiled = load_compiled(store, run_id)
    cached = fresh_report(store, compiled)
    if cached is not None:
        return cached[1]
    state, _ = load_state(store, run_id)
    return build_report(compiled, state)


def list_runs(store: StorePort) -> list[RunSummary]:
    return store.runs()
