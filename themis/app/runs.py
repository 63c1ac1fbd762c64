"""Use cases over a store: run (or reuse) an experiment, report on a run, list runs."""

from __future__ import annotations

import functools
import platform
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import metadata
from typing import TypeVar

import trio
from attrs import frozen

from themis.app.interpreter import ProgressCallback, execute
from themis.app.writer import EventWriter
from themis.core.errors import RunExists, RunNotFound, StoreError, ThemisError
from themis.core.planner import CompiledRun, PendingTrial, compile_run, pending, plan
from themis.core.report import Report, build_report, run_status
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot, RunSummary
from themis.core.stages import Stage
from themis.core.state import RunState, project
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

T = TypeVar("T")


@frozen
class RunResult:
    """What one `run` call did and what the run now reports."""

    run_id: str
    status: str
    completed_through_stage: Stage | None
    report: Report
    reused: bool
    trials_executed: int
    model_calls: int


def provenance() -> dict[str, str]:
    """Versions and platform recorded beside (never inside) the run's identity."""
    record = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("themis", "duckdb", "trio", "attrs", "cattrs", "jinja2"):
        try:
            record[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return record


def load_state(store: StorePort, run_id: str) -> tuple[RunState, int]:
    """The run's state and the seq its next event gets."""
    records = store.read(run_id)
    next_seq = records[-1][0] + 1 if records else 1
    return project(event for _, event in records), next_seq


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
) -> RunResult:
    """Execute what the log does not show done, honouring `existing_run_policy`.

    `trio_clock` (e.g. `trio.testing.MockClock`) lets tests run the whole use case in virtual time.
    """
    run_id = compiled.run_id
    if store.load_snapshot(run_id) is not None:
        if runtime.existing_run_policy == "error":
            raise RunExists(
                f"run {run_id[:12]} already exists in the store (existing_run_policy = 'error'); "
                "use 'auto' to reuse or resume it, or 'rerun' to start it again"
            )
        if runtime.existing_run_policy == "rerun":
            store.delete_run(run_id)
    if store.load_snapshot(run_id) is None:
        snapshot = RunSnapshot(
            run_id=run_id,
            created_at=clock.now(),
            spec=compiled.spec,
            runtime=runtime,
            provenance={**provenance(), **(extra_provenance or {})},
        )
        store.save_snapshot(snapshot)
    state, next_seq = load_state(store, run_id)
    if state.is_complete_through(until_stage):
        return _result(compiled, state, reused=True, executed=0, calls=0)
    writer = EventWriter(
        store, run_id, next_seq=next_seq, state=state, runtime=runtime, clock=clock
    )
    work: Iterable[PendingTrial]
    if state.started:
        work = list(pending(plan(compiled), state, until_stage))
        total = len(work)
    else:  # a fresh run: keep the plan lazy, every trial is pending
        work, total = pending(plan(compiled), state, until_stage), compiled.trial_count
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
            on_progress=on_progress,
        ),
        trio_clock,
    )
    counts = outcome.counts
    return _result(compiled, outcome.state, reused=False, executed=total, calls=counts.model_calls)


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
    compiled: CompiledRun, state: RunState, *, reused: bool, executed: int, calls: int
) -> RunResult:
    report = build_report(compiled, state)
    return RunResult(
        run_id=compiled.run_id,
        status=run_status(state),
        completed_through_stage=state.completed_through_stage,
        report=report,
        reused=reused,
        trials_executed=executed,
        model_calls=calls,
    )


def resolve_run_id(store: StorePort, prefix: str) -> str:
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


def load_compiled(store: StorePort, run_id: str) -> tuple[RunSnapshot, CompiledRun]:
    """The stored snapshot and its recompiled run; refuses a snapshot whose identity drifted."""
    snapshot = store.load_snapshot(run_id)
    if snapshot is None:
        raise RunNotFound(f"no run {run_id!r} in the store (see `themis runs`)")
    compiled = compile_run(snapshot.spec)
    if compiled.run_id != run_id:
        raise StoreError(
            f"run {run_id[:12]}: its stored spec compiles to {compiled.run_id[:12]} "
            "with this Themis version"
        )
    return snapshot, compiled


def report_run(store: StorePort, run_id_or_prefix: str) -> Report:
    """The report of a stored run, from its log alone."""
    run_id = resolve_run_id(store, run_id_or_prefix)
    _, compiled = load_compiled(store, run_id)
    state, _ = load_state(store, run_id)
    return build_report(compiled, state)


def list_runs(store: StorePort) -> list[RunSummary]:
    return store.runs()
