"""Inspecting runs from research code: snapshot, execution state, one case's trials, progress,
quickcheck (the views themselves are `themis.core.inspection`'s).

Each first reads the store. When another process holds the store (`StoreLocked`: a DuckDB file
admits one process at a time), the live progress that a running process publishes beside the
store (`themis.ports.live_progress`) answers instead, marked `live` with that process's PID; only
`get_evaluation_execution`, which needs the full log, then fails, asking to retry later.
Every `run_id` argument may be a unique prefix (at least 4 characters).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import attrs

from themis.app.config.loading import runtime_from_mapping
from themis.app.usecases.checkpoints import fresh_checkpoint_report, fresh_report
from themis.app.usecases.provider_holds import active_holds
from themis.app.usecases.runtime_lineage import last_runtime
from themis.app.usecases.stored import (
    VouchedRun,
    compile_snapshot,
    load_compiled,
    load_state,
    resolve_run_id,
    vouched_outline,
    vouched_run,
)
from themis.app.wiring import (
    StoreLike,
    live_progress_beside,
    opened_store,
    provider_state_of,
    run_queue_of,
    system_clock,
)
from themis.core.errors import ConfigError, RunNotFound, StoreLocked
from themis.core.evaluation_view import EvaluationExecution, evaluation_execution
from themis.core.inspection import (
    ExecutionState,
    RunProgress,
    RunSnapshotView,
    RunStatus,
    execution_state,
    placed_execution_state,
    run_progress,
    snapshot_view,
    tally_trials,
)
from themis.core.live_progress import LiveRecord
from themis.core.planner import CompiledRun
from themis.core.queue import (
    QUEUED,
    QueuedRun,
    queued_summaries,
    statuses_with_queue,
    waiting,
    with_queue,
)
from themis.core.report import run_status
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot, RunSummary
from themis.core.state import RunState
from themis.ports.store import StorePort

__all__ = [
    "get_evaluation_execution",
    "get_execution_state",
    "get_run_progress",
    "get_run_snapshot",
    "live_runs",
    "published_runs",
    "quickcheck",
    "run_statuses",
    "runs",
]

T = TypeVar("T")
DEFAULT_STORE = "themis.duckdb"


def get_run_snapshot(run_id: str, store: StoreLike = DEFAULT_STORE) -> RunSnapshotView:
    """What the run is: identity, runtime settings in effect, provenance and runtime lineage."""

    def stored(opened: StorePort) -> RunSnapshotView:
        resolved = resolve_run_id(opened, run_id)
        vouched = vouched_run(opened, resolved)  # then not compiled again (ADR 0099)
        snapshot, compiled = _loaded(opened, resolved, vouched)
        state, _ = load_state(opened, resolved)
        cached = fresh_report(opened, compiled)  # its served models, counted when it was kept
        served = None if cached is None else cached[1].served
        return snapshot_view(snapshot, compiled, state, served=served)

    def queued(snapshot: RunSnapshot) -> RunSnapshotView:
        return snapshot_view(snapshot, compile_snapshot(snapshot), RunState())

    return _answer(
        store, stored, lambda locked: _live_run(locked, run_id).live_snapshot(), queued, run_id
    )


def get_execution_state(run_id: str, store: StoreLike = DEFAULT_STORE) -> ExecutionState:
    """Per-stage counts, failure reasons, status and runtime lineage of a run, and what holds
    calls back now: the running process's waits (live) and the pauses and breaker windows
    shared beside the store."""

    def stored(opened: StorePort) -> ExecutionState:
        return _stored_state(opened, resolve_run_id(opened, run_id))

    state = _answer(
        store, stored, lambda locked: _live_run(locked, run_id).live_state(), _queued_state, run_id
    )
    shared = active_holds(provider_state_of(store), system_clock().now())
    seen = {(hold.provider, hold.endpoint, hold.kind) for hold in state.holds}
    extra = [hold for hold in shared if (hold.provider, hold.endpoint, hold.kind) not in seen]
    return attrs.evolve(state, holds=(*state.holds, *extra)) if extra else state


def get_evaluation_execution(
    run_id: str, case_id: str, store: StoreLike = DEFAULT_STORE
) -> EvaluationExecution:
    """Every trial of one case: messages, response, parse, scores and failures."""

    def stored(opened: StorePort) -> EvaluationExecution:
        resolved = resolve_run_id(opened, run_id)
        _, compiled = load_compiled(opened, resolved)
        state, _ = load_state(opened, resolved)
        return evaluation_execution(compiled, state, case_id)

    def live(locked: StoreLocked) -> EvaluationExecution:
        raise StoreLocked(
            locked.path,
            locked.pid,
            f"{locked.path} is in use by a running Themis process (PID {locked.pid}); "
            "a case's trials are read from the full log: retry when that run finishes",
        )

    return _answer(store, stored, live)


def get_run_progress(run_id: str, store: StoreLike = DEFAULT_STORE) -> RunProgress:
    """A running run's live progress, or the stored state's counts when nothing runs it."""

    def stored(opened: StorePort) -> RunProgress:
        return run_progress(_stored_state(opened, resolve_run_id(opened, run_id)))

    def live(locked: StoreLocked) -> RunProgress:
        record = _live_run(locked, run_id)
        return run_progress(record.live_state(), record.until_stage)

    return _answer(
        store, stored, live, lambda snapshot: run_progress(_queued_state(snapshot)), run_id
    )


def quickcheck(store: StoreLike = DEFAULT_STORE) -> list[RunProgress]:
    """One line per run of the store, oldest first (only the running runs while it is locked),
    then the runs submitted to its queue that no worker has taken yet (ADR 0031)."""

    def stored(opened: StorePort) -> list[RunProgress]:
        return [run_progress(_stored_state(opened, summary.run_id)) for summary in opened.runs()]

    entries, only_queued = _queue_entries(store)
    if only_queued:
        return with_queue([], entries)
    return with_queue(_answer(store, stored, live_runs), entries)


def runs(store: StoreLike = DEFAULT_STORE) -> list[RunSummary]:
    """Every run in the store, oldest first; then the runs submitted to its queue that it does
    not hold yet (`queued`, ADR 0031), also before a worker has created the store. (Here, not
    beside the executions in `stored_runs`, so that `themis runs` imports no engine.)"""
    entries, only_queued = _queue_entries(store)
    if only_queued:
        return queued_summaries([], entries)
    with opened_store(store, read_only=True) as opened:
        return queued_summaries(opened.runs(), entries)


def run_statuses(store: StoreLike = DEFAULT_STORE) -> list[RunStatus]:
    """Each run's status as `quickcheck` shows it, without counting its trials: a completed
    run's from its final checkpoint's report when its facts vouch for its identity (ADR
    0084), else from its log folded, after compiling its snapshot (a drifted one refused)."""

    def stored(opened: StorePort) -> list[RunStatus]:
        return [_stored_status(opened, summary.run_id) for summary in opened.runs()]

    def live(locked: StoreLocked) -> list[RunStatus]:
        return [RunStatus.of(row) for row in live_runs(locked)]

    entries, only_queued = _queue_entries(store)
    if only_queued:
        return statuses_with_queue([], entries)
    return statuses_with_queue(_answer(store, stored, live), entries)


def _queue_entries(store: StoreLike) -> tuple[list[QueuedRun], bool]:
    """The runs submitted to `store`'s queue, and whether they are all there is to list: runs
    were submitted but no worker has created the store yet (ADR 0031)."""
    entries = [] if str(store) in ("memory", ":memory:") else run_queue_of(store).entries()
    only_queued = bool(entries) and isinstance(store, str | Path) and not Path(store).exists()
    return entries, only_queued


def live_runs(locked: StoreLocked) -> list[RunProgress]:
    """The progress of every run the process holding the store publishes, oldest first."""
    return [
        run_progress(record.live_state(), record.until_stage) for record in published_runs(locked)
    ]


def _stored_status(opened: StorePort, run_id: str) -> RunStatus:
    """The run's status: its final checkpoint's report holds `run_status` of the state it
    checkpoints, so while the log ends there and the run's facts vouch for its snapshot, that
    is what the fold would give."""
    outline = vouched_outline(opened, run_id)
    fresh = (
        None
        if outline is None
        else fresh_checkpoint_report(opened, run_id, outline.snapshot.spec.name)
    )
    if fresh is not None:
        report = fresh[1]
        return RunStatus(run_id, report.status, report.completed_through_stage)
    load_compiled(opened, run_id)  # a drifted snapshot is refused, as by every reading command
    state, _ = load_state(opened, run_id)
    return RunStatus(run_id, run_status(state), state.completed_through_stage)


def _loaded(
    opened: StorePort, run_id: str, vouched: VouchedRun | None
) -> tuple[RunSnapshot, CompiledRun]:
    """The stored run's snapshot and compiled run: not compiled again when its facts vouch for
    it (`VouchedRun.compiled`, ADR 0099), else by `load_compiled`."""
    return load_compiled(opened, run_id) if vouched is None else vouched.compiled(opened)


def _stored_state(opened: StorePort, run_id: str) -> ExecutionState:
    """The run's execution state. While its facts vouch for its snapshot (ADR 0077) and the
    store keeps its places, a run without judges or prices is counted over those places: no
    snapshot decoded or compiled, no plan rendered again (ADR 0092). The spend and the judge
    stage read the run's spec: a vouched one's snapshot is decoded, not compiled (ADR 0099);
    else as the full path always did."""
    vouched = vouched_run(opened, run_id)
    placed = None
    if vouched is not None and not vouched.outline.snapshot.spec.judges:
        placed = opened.load_places(run_id)
    if vouched is None or placed is None:
        snapshot, compiled = _loaded(opened, run_id, vouched)
        state, _ = load_state(opened, run_id)
        return _execution_state(compiled, state, _prices(snapshot, state, run_id))
    outline = vouched.outline
    state, _ = load_state(opened, run_id)
    settings = _prices(outline.snapshot, state, run_id)
    if settings is not None:  # the spend reads the run's spec
        return _execution_state(vouched.compiled(opened)[1], state, settings)
    counted, failures = tally_trials(placed, state)
    return placed_execution_state(run_id, outline.snapshot.spec.name, state, counted, failures)


def _prices(snapshot: RunSnapshot, state: RunState, run_id: str) -> RuntimeConfig | None:
    """The run's runtime settings in effect if they price any model (`None`: they price none,
    or this Themis cannot read them)."""
    try:
        settings = runtime_from_mapping(last_runtime(snapshot, state), f"run {run_id[:12]}")
    except ConfigError:  # a runtime this Themis cannot read: no prices
        return None
    return settings if settings.model_prices else None


def _execution_state(
    compiled: CompiledRun, state: RunState, settings: RuntimeConfig | None
) -> ExecutionState:
    """`execution_state` of the compiled run, with its spend at `settings`' prices (if any)."""
    if settings is None:
        return execution_state(compiled, state)
    return execution_state(
        compiled,
        state,
        prices=settings.model_prices,
        max_cost_per_run=settings.max_cost_per_run,
    )


def _answer(
    store: StoreLike,
    stored: Callable[[StorePort], T],
    live: Callable[[StoreLocked], T],
    queued: Callable[[RunSnapshot], T] | None = None,
    run_id: str | None = None,
) -> T:
    """`stored` on the store opened read-only, or `live` while another process holds it; a run
    (`run_id`) neither knows but the store's queue holds, not taken yet, is answered by
    `queued` from its submitted snapshot (ADR 0031)."""
    try:
        if isinstance(store, str | Path) and not Path(store).exists() and queued is not None:
            raise RunNotFound(f"{store}: no such store")  # submitted runs only, maybe
        try:
            with opened_store(store, read_only=True) as opened:
                return stored(opened)
        except StoreLocked as locked:
            return live(locked)
    except (RunNotFound, StoreLocked):
        snapshot = None if run_id is None or queued is None else _queued(store, run_id)
        if snapshot is None or queued is None:
            raise
        return queued(snapshot)


def _queued(store: StoreLike, prefix: str) -> RunSnapshot | None:
    """The snapshot of the one run waiting in the store's queue whose id starts with `prefix`."""
    if len(prefix) < 4 or str(store) in ("memory", ":memory:"):
        return None
    queue = run_queue_of(store)
    found = [
        entry
        for entry in waiting(queue.entries())
        if entry.run_id.startswith(prefix) and entry.state == QUEUED
    ]
    return queue.snapshot(found[0].run_id) if len(found) == 1 else None


def _queued_state(snapshot: RunSnapshot) -> ExecutionState:
    """A queued run's state: every planned trial pending, status `queued`."""
    view = execution_state(compile_snapshot(snapshot), RunState())
    return attrs.evolve(view, status=QUEUED)


def published_runs(locked: StoreLocked) -> list[LiveRecord]:
    """What the process holding the store publishes; `StoreLocked` if it publishes nothing."""
    records = live_progress_beside(locked.path).records(pid=locked.pid)
    if not records:
        raise StoreLocked(
            locked.path,
            locked.pid,
            f"{locked.path} is in use by another Themis process (PID {locked.pid}), which "
            "publishes no live progress (yet); retry in a moment or when it finishes",
        )
    return records


def _live_run(locked: StoreLocked, prefix: str) -> LiveRecord:
    if len(prefix) < 4:
        raise RunNotFound(f"run id {prefix!r} is too short: give at least 4 characters")
    records = published_runs(locked)
    matches = [record for record in records if record.run_id.startswith(prefix)]
    if len(matches) > 1:
        raise RunNotFound(
            f"run id {prefix!r} is ambiguous: it matches {len(matches)} runs; give more characters"
        )
    if not matches:
        raise StoreLocked(
            locked.path,
            locked.pid,
            f"{locked.path} is in use by another Themis process (PID {locked.pid}), which is "
            f"not running run {prefix!r}; retry when it finishes",
        )
    return matches[0]
