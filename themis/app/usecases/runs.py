"""Use cases over a store: run (or reuse) an experiment, report on a run, list runs."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, TypeVar

import attrs
import trio
from attrs import field, frozen

from themis.app.execution.interpreter import ProgressCallback, execute
from themis.app.execution.live import PublishedStart, publishing
from themis.app.execution.ports import Ports
from themis.app.execution.running import RunningExecution, registered
from themis.app.execution.telemetry import TelemetryBus
from themis.app.execution.trials import ProgressCounts
from themis.app.execution.work import Execution, Reusable
from themis.app.execution.writer import EventWriter
from themis.app.usecases.checkpoints import fresh_report, remember
from themis.app.usecases.provenance import environment_provenance
from themis.app.usecases.reuse import find_reusable
from themis.app.usecases.run_places import PlacesKeeper
from themis.app.usecases.runtime_lineage import last_runtime, runtime_changes
from themis.app.usecases.stored import (
    LoadedRun,
    RunResult,
    load_compiled,
    load_run,
    load_state,
    report_run,
    resolve_run_id,
)
from themis.collector import collector_settled
from themis.core.breakdown import Breakdown
from themis.core.budget import COST_LIMIT, pause_holds
from themis.core.case_table import CASE_TABLE_TRIALS, case_table
from themis.core.errors import RunExists, ThemisError
from themis.core.events import Event, FailuresRetried, RunResumed
from themis.core.generation import GenerationPlace
from themis.core.planner import (
    CompiledRun,
    PendingTrial,
    PlanRecord,
    TrialPlan,
    pending,
    plan,
)
from themis.core.plugins import plugins_provenance
from themis.core.report import Report, build_report
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot, RunSummary
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.core.telemetry import ExecutionFinished, ExecutionStarted
from themis.ports.store import StorePort

if TYPE_CHECKING:
    from themis.core.report_columns import PlanLayout

# The reading use cases live in `stored`; they are named here too, where callers met them first.
__all__ = [
    "Driving",
    "LoadedRun",
    "RunRequest",
    "RunResult",
    "continue_run",
    "execute_work",
    "list_runs",
    "load_compiled",
    "load_run",
    "load_state",
    "report_run",
    "resolve_run_id",
    "run_experiment",
]

T = TypeVar("T")

# Trials an execution runs from which its end first sheds what the store keeps of the log
# (`StorePort.shed_memory`): a DuckDB writer's buffer grows ~0.8 KiB a trial up to its 128 MB
# bound, so a shed gives back ~80 MiB at 100k (ADR 0098) but under 10 MiB at 10k, where its wait
# (for the places' insert and the log's fold into the file, ~0.1 s) is most of the wall after the
# last answer (ADR 0106).
SHED_TRIALS: Final = 50_000


@frozen
class RunRequest:
    """What to run: a compiled run, the runtime to run it with, the stage to stop after, and
    provenance to record beside the standard one if the run is new."""

    compiled: CompiledRun
    runtime: RuntimeConfig
    until_stage: Stage = Stage.SCORE
    provenance: Mapping[str, str] = field(factory=dict)
    # Attempt again the trials whose generation failed for good, even in a run the log shows
    # complete (`FailuresRetried`).
    retry_failed: bool = False
    # Other runs' generations of its trial keys, when the caller looked them up already (a
    # replay under a changed config checks them all first): not looked up again.
    reusable: Reusable = field(factory=dict)
    # A replay's: no model is called, so its trials run as a batch (`Execution.batch`).
    batch: bool = False
    # The run's plan, when the caller planned it already (a replay checks it first): read
    # once, by the execution; a list is the whole plan, recorded before the first trial runs
    # (`PlanRecord.taken`), and emptied as it is read.
    plans: Iterable[TrialPlan] | None = None
    # Where other runs logged the generations of its trial keys, when the caller located them
    # already (a derived replay checks them all first): read from there, not searched again.
    located: dict[str, GenerationPlace] = field(factory=dict)
    # The run whose kept places `plans` were taken from, in order (a derived replay's source,
    # ADR 0107): the run's places are copied from its, not compared with them (ADR 0112).
    places_from: str | None = None


@frozen
class Driving:
    """How an execution is driven from outside: `on_progress` gets the interpreter's counters;
    `trio_clock` (e.g. `trio.testing.MockClock`) lets tests run it in virtual time;
    `telemetry` gets its signals (`themis.app.execution.telemetry`)."""

    on_progress: ProgressCallback | None = None
    trio_clock: trio.abc.Clock | None = None
    telemetry: TelemetryBus | None = None


UNWATCHED = Driving()  # no progress callback, the real trio clock


def run_experiment(request: RunRequest, ports: Ports, driving: Driving = UNWATCHED) -> RunResult:
    """Execute what the log does not show done, honouring `existing_run_policy`.

    A run its budget paused stays paused, without a call, unless `max_cost_per_run` was raised
    (`themis.core.budget.pause_holds`).
    """
    compiled, runtime = request.compiled, request.runtime
    if runtime.existing_run_policy == "auto" and (
        cached := fresh_report(ports.store, compiled, request.until_stage)
    ):  # complete, and nothing logged since its checkpoint: no state or snapshot to decode
        _, report = cached
        # Failed judge calls are not in the report's counts: with judges, the log decides.
        failures = report.failed or bool(compiled.spec.judges)
        if not (request.retry_failed and failures):
            return RunResult(report=report, reused=True, trials_executed=0, model_calls=0)
    return continue_run(request, ports, _open_run(request, ports), driving)


def _open_run(request: RunRequest, ports: Ports) -> LoadedRun:
    """The run's snapshot and its state, folded once. A new run's snapshot is not stored here:
    its execution stores it while the first calls go out (`LoadedRun.snapshot_stored`)."""
    store, run_id, policy = (
        ports.store,
        request.compiled.run_id,
        request.runtime.existing_run_policy,
    )
    snapshot = store.load_snapshot(run_id)
    reuse_others = True
    if snapshot is not None and policy == "rerun":
        store.delete_run(run_id)
        snapshot = store.load_snapshot(run_id)
        reuse_others = False  # a rerun calls the models again, whatever other runs hold
    existed = snapshot is not None
    if snapshot is None:
        snapshot = new_snapshot(request, ports.clock.now())
    state, next_seq = load_state(store, run_id)
    # A run that is only planned (`themis plan`: a snapshot, no events) has not run yet.
    if existed and policy == "error" and state.started:
        raise RunExists(
            f"run {run_id[:12]} already exists in the store (existing_run_policy = 'error'); "
            "use 'auto' to reuse or resume it, or 'rerun' to start it again"
        )
    return LoadedRun(
        snapshot=snapshot,
        state=state,
        next_seq=next_seq,
        reuse_others=reuse_others,
        snapshot_stored=existed,
    )


def _store_snapshot(loaded: LoadedRun, store: StorePort) -> None:
    """A new run's snapshot stored now, when no execution will store it; its places come once
    an execution has planned the run (`execute_work`)."""
    if not loaded.snapshot_stored:
        store.save_snapshot(loaded.snapshot, places=False)


def new_snapshot(request: RunRequest, at: float) -> RunSnapshot:
    """The snapshot a new run of `request` stores: its spec, runtime and provenance."""
    return RunSnapshot(
        run_id=request.compiled.run_id,
        created_at=at,
        spec=request.compiled.spec,
        runtime=request.runtime,
        provenance={
            **environment_provenance(),
            **request.provenance,
            **plugins_provenance(request.compiled.plugins),
        },
    )


def continue_run(
    request: RunRequest, ports: Ports, loaded: LoadedRun, driving: Driving = UNWATCHED
) -> RunResult:
    """Run what `loaded` (the run's stored state) does not show done through `until_stage`."""
    compiled, runtime, until_stage = request.compiled, request.runtime, request.until_stage
    state = loaded.state
    retrying = request.retry_failed and bool(state.failed_keys)
    if state.is_complete_through(until_stage) and not retrying:
        _store_snapshot(loaded, ports.store)
        cached = fresh_report(ports.store, compiled, until_stage)
        if cached is not None:  # its checkpoint's report is current: no need to rebuild it
            return RunResult(report=cached[1], reused=True, trials_executed=0, model_calls=0)
        result = _result(compiled, state, reused=True, executed=0, calls=0)
        remember(ports.store, compiled.run_id, loaded.next_seq - 1, state, result.report)
        return result  # the next reuse is cheap
    if _budget_still_spent(loaded.snapshot, state, runtime):
        _store_snapshot(loaded, ports.store)
        return _result(compiled, state, reused=True, executed=0, calls=0)
    preamble: tuple[Event, ...] = ()
    work: Iterable[PendingTrial]
    record = PlanRecord(compiled.trial_count)  # the plan's keys as the execution reads them
    if isinstance(request.plans, list):  # the whole plan, known: recorded before it runs
        plans = record.taken(request.plans)
    else:
        plans = record.tap(plan(compiled) if request.plans is None else request.plans)
    if state.started:
        changes = runtime_changes(last_runtime(loaded.snapshot, state), runtime)
        preamble = (RunResumed(at=ports.clock.now(), changes=changes),) if changes else ()
        work = list(pending(plans, state, until_stage))
        total = len(work)
        if retrying:
            failed = state.failed_keys
            keys = {item.plan.trial_key for item in work if item.plan.trial_key in failed}
            retried = FailuresRetried(
                at=ports.clock.now(),
                execution=state.executions + 1,
                trial_keys=tuple(sorted(keys)),
            )
            preamble = (*preamble, retried)
    elif state.generations or state.parses or state.scores:  # imported results, never run
        work = list(pending(plans, state, until_stage))
        total = len(work)
    else:  # a fresh run: keep the plan lazy, every trial is pending
        work, total = pending(plans, state, until_stage), compiled.trial_count
    execution = Execution(
        compiled,
        state,
        work,
        total,
        runtime,
        until_stage,
        preamble,
        request.reusable,
        batch=request.batch,
        located=request.located,
    )
    return execute_work(execution, ports, loaded, record, driving, places_from=request.places_from)


def _budget_still_spent(snapshot: RunSnapshot, state: RunState, runtime: RuntimeConfig) -> bool:
    """Whether the run is paused by its budget and `runtime` did not raise it (no call then)."""
    if state.pause is None or not state.paused or state.pause.reason != COST_LIMIT:
        return False
    paused_limit = last_runtime(snapshot, state).get("max_cost_per_run")
    return pause_holds(paused_limit, runtime.max_cost_per_run)


def execute_work(
    execution: Execution,
    ports: Ports,
    loaded: LoadedRun,
    record: PlanRecord | None = None,
    driving: Driving = UNWATCHED,
    places_from: str | None = None,
) -> RunResult:
    """Run `execution` through the interpreter, logging its preamble first, and report.

    Generations other runs of the store completed are reused (`themis.app.usecases.reuse`; not
    after a rerun deleted the stored run); the final state is checkpointed with its report, so
    that reusing the run later decodes neither.
    `record`, filled as the work reads the whole plan, spares planning it again for the report
    and the run's places; `places_from`: the run whose kept places its trials are, in order.
    """
    compiled, store = execution.compiled, ports.store
    # Else looked up by the caller, or by a batch execution chunk by chunk.
    if loaded.reuse_others and not execution.reusable and not execution.batch:
        work, reusable = find_reusable(store, compiled.run_id, execution.work, execution.runtime)
        execution = attrs.evolve(execution, work=work, reusable=reusable)
    writer = EventWriter(
        store,
        compiled.run_id,
        next_seq=loaded.next_seq,
        state=execution.state,
        # A batch checkpoints only at its end: periodic ones would cost it more than folding
        # its events again costs after a kill (ADR 0041).
        runtime=(
            attrs.evolve(execution.runtime, checkpoint_interval=0)
            if execution.batch
            else execution.runtime
        ),
        clock=ports.clock,
    )
    telemetry = driving.telemetry if driving.telemetry and driving.telemetry.observed else None
    watched = driving.telemetry if driving.telemetry and driving.telemetry.watched else None
    # The live-progress publisher observes the caller's bus, or one of its own.
    bus = watched or TelemetryBus()
    on_progress = driving.on_progress
    if telemetry is not None:
        started = ExecutionStarted(
            run_id=compiled.run_id,
            at=ports.clock.now(),
            planned=execution.total,
            until_stage=str(execution.until_stage),
            execution=execution.state.executions + 1,
        )
        telemetry.publish(started)
        writer.on_written = functools.partial(telemetry.logged, compiled.run_id)
    if watched is not None or ports.live is not None:
        on_progress = _both(on_progress, bus.progress_callback(compiled.run_id, ports.clock))
    start = PublishedStart(
        compiled=compiled,
        snapshot=loaded.snapshot,
        state=execution.state,
        until_stage=execution.until_stage,
        preamble=execution.preamble,
        plan_record=record,
    )
    # Live progress for `inspect` from other processes (beside a file store); a viewer in this
    # process follows the run from its writer's fold (ADR 0057).
    running = RunningExecution(store, loaded.snapshot, compiled, writer, record)
    # A new run's snapshot is stored (and then its live progress published) in a thread while
    # the first calls go out, not before them; the writer's first append waits for it, so the
    # snapshot still precedes the run's events (ADR 0060).
    first = (
        None
        if loaded.snapshot_stored
        else functools.partial(store.save_snapshot, loaded.snapshot, places=False)
    )
    with registered(running), publishing(ports.live, start, ports.clock, bus, first) as ready:
        writer.before_first = ready
        # Where each trial belongs, for the log's views: kept in a thread as soon as the
        # execution has read the whole plan, while its last calls are out (ADR 0073); else at
        # its end, planned again, while the report is built (ADR 0058).
        places = PlacesKeeper(store, loaded.snapshot, compiled, record, ready, places_from)
        if places.planned():  # a resumed run read its plan to find what is pending
            places.start()
        else:
            execution = attrs.evolve(execution, work=places.once_read(execution.work))
        try:
            outcome = _run_trio(
                functools.partial(execute, execution, ports, writer, on_progress=on_progress),
                driving.trio_clock,
                execution.total < SHED_TRIALS,
            )
        except BaseException:
            places.wait()  # never a thread left inside the store
            raise
        places.start()
    counts = outcome.counts
    # A paused execution executed fewer than it planned.
    executed = execution.total if outcome.completed else counts.done + counts.failed
    large = record is not None and compiled.trial_count >= CASE_TABLE_TRIALS
    try:
        # The log is written: what the store keeps of it goes before the end is built beside
        # it (a DuckDB writer's buffer: ~80 MiB at a 100k derived replay, ADR 0098).
        _shed(store, execution.total)
        # Where each plan position stands, read once for the report and the case table.
        layout = _end_layout(compiled) if large else None
        report = None if record is None else _end_report(compiled, outcome.state, record, layout)
        result = _result(
            compiled,
            outcome.state,
            reused=False,
            executed=executed,
            calls=counts.model_calls,
            report=report,
        )
    finally:
        places.join()
    _shed(store, execution.total)  # and what keeping the places held (~40 MiB at 100k derived)
    cases = case_table(compiled, outcome.state, record, layout) if large and record else None
    del layout  # not beside the final checkpoint's parts
    remember(store, compiled.run_id, writer.next_seq - 1, outcome.state, result.report, cases)
    if telemetry is not None:
        finished = ExecutionFinished(
            run_id=compiled.run_id,
            at=ports.clock.now(),
            status=result.status,
            executed=executed,
            model_calls=counts.model_calls,
        )
        telemetry.publish(finished)
    return result


def _both(first: ProgressCallback | None, second: ProgressCallback) -> ProgressCallback:
    """One progress callback calling `first` (if any), then `second`."""
    if first is None:
        return second

    def both(counts: ProgressCounts) -> None:
        first(counts)
        second(counts)

    return both


def _shed(store: StorePort, trials: int) -> None:
    """Have `store` give back what it keeps of the log, if an execution of `trials` made it worth
    the wait (`SHED_TRIALS`)."""
    if trials >= SHED_TRIALS:
        store.shed_memory()


def _run_trio(
    main: Callable[[], Awaitable[T]], clock: trio.abc.Clock | None, aged: bool = False
) -> T:
    """`trio.run` with the collector settled (`collector_settled`; `aged`: a small execution's,
    below `SHED_TRIALS`), surfacing a Themis error from inside the nurseries as itself, not a
    group."""
    try:
        with collector_settled(aged=aged):
            return trio.run(main, clock=clock)
    except BaseExceptionGroup as group:
        found = group.subgroup(lambda error: isinstance(error, ThemisError | KeyboardInterrupt))
        if found is None:
            raise
        first: BaseException = found
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from group


def _end_layout(compiled: CompiledRun) -> PlanLayout | None:
    """`PlanLayout.of(compiled)` for a run whose report and case table read it (the default
    rows of a run without rows over samples or judges: `applies`), else `None`."""
    from themis.core.report_columns import PlanLayout, applies

    return PlanLayout.of(compiled) if applies(compiled, Breakdown()) else None


def _result(
    compiled: CompiledRun,
    state: RunState,
    *,
    reused: bool,
    executed: int,
    calls: int,
    report: Report | None = None,
) -> RunResult:
    """The run's result; `report`: its report, if the caller built it (`_end_report`)."""
    return RunResult(
        report=build_report(compiled, state) if report is None else report,
        reused=reused,
        trials_executed=executed,
        model_calls=calls,
    )


def _end_report(
    compiled: CompiledRun, state: RunState, record: PlanRecord, layout: PlanLayout | None
) -> Report:
    """An execution's report of `state`, its plan's keys read from `record`; `layout`, read
    only for a run with a case table, has it summed over the fold's columns (a quarter of the
    CPU at 100k, ADR 0083), where the case table pays numpy's import anyway."""
    if layout is not None:
        from themis.core.report_fold import fold_report

        report = fold_report(compiled, state, record, layout=layout)
        if report is not None:
            return report
    return build_report(compiled, state, record)


def list_runs(store: StorePort) -> list[RunSummary]:
    return store.runs()
