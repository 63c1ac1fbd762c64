"""Reading a stored run: resolve its id, recompile its snapshot, fold its log.

Apart from `themis.app.usecases.runs` so that reading commands (`report`, `compare`, `inspect`)
do not import the execution engine (trio) they never use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import attrs
from attrs import frozen

from themis.app.config.plugins import resolve_plugins
from themis.app.usecases.checkpoints import (
    fold_from_checkpoint,
    fresh_checkpoint_report,
    fresh_report,
)
from themis.core.builtins import builtin_plugins
from themis.core.compiled_facts import CompiledFacts, run_key
from themis.core.errors import PluginError, RunNotFound, StoreError
from themis.core.planner import (
    CompiledRun,
    compile_placed,
    compile_run,
    compile_stored,
    compiled_stand_in,
)
from themis.core.plugins import PluginRegistry, recorded_plugins
from themis.core.report import Report, build_report
from themis.core.snapshot import RunSnapshot, RunSummary, SnapshotOutline
from themis.core.spec import ExperimentSpec
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.ports.store import RunCatalog, StorePort

__all__ = [
    "LoadedRun",
    "RunResult",
    "VouchedRun",
    "compile_case",
    "compile_snapshot",
    "load_compiled",
    "load_run",
    "load_state",
    "report_run",
    "resolve_run_id",
    "vouched_outline",
    "vouched_run",
]


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


@frozen
class LoadedRun:
    """A stored run as one command read it: its snapshot, the state its log shows (folded once)
    and the seq its next event gets. `reuse_others` is False once a rerun deleted the stored
    run: a rerun calls the models again, whatever other runs of the store hold.
    `snapshot_stored` is False for a new run whose snapshot is not stored yet: its execution
    stores it while the first calls go out, before its first event (ADR 0060)."""

    snapshot: RunSnapshot
    state: RunState
    next_seq: int
    reuse_others: bool = True
    snapshot_stored: bool = True


class RunListing(Protocol):
    """Anything that lists stored runs (a store, or a viewer's copy of its list)."""

    def runs(self) -> list[RunSummary]: ...


def resolve_run_id(store: RunListing, prefix: str) -> str:
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
    return snapshot, compile_snapshot(snapshot)


def vouched_outline(store: StorePort, run_id: str) -> SnapshotOutline | None:
    """The outline of the stored run (its snapshot without cases, its cases' field names) if
    its facts vouch for its identity (`vouched_run`), else `None`."""
    vouched = vouched_run(store, run_id)
    return None if vouched is None else vouched.outline


@frozen
class VouchedRun:
    """A stored run whose facts vouch for its identity: its `outline`, and the outline compiled
    to the stand-in id (`compiled_stand_in`: the versions and runtime options the run was
    compiled with)."""

    run_id: str
    outline: SnapshotOutline
    stand_in: CompiledRun

    def compiled(self, store: RunCatalog) -> tuple[RunSnapshot, CompiledRun]:
        """The stored snapshot and its run, as `load_compiled` gives them, without compiling
        the snapshot again: its id is the stored one and its versions and runtime options the
        stand-in's, which the unchanged stored text (its cases) makes the run's (ADR 0099)."""
        snapshot = store.load_snapshot(self.run_id)
        if snapshot is None:
            raise RunNotFound(f"no run {self.run_id!r} in the store (see `themis runs`)")
        return snapshot, attrs.evolve(self.stand_in, run_id=self.run_id, spec=snapshot.spec)


def vouched_run(store: StorePort, run_id: str) -> VouchedRun | None:
    """The stored run if its facts vouch for its identity (ADR 0077): the snapshot is still
    stored as it was when an execution of the run kept them, and its outline compiles with
    today's code to the stand-in id they record (every part of the identity but the cases' own
    text, which the unchanged stored text fixes). `None` when nothing vouches for it: then only
    `load_compiled` can tell whether it still compiles to its id."""
    facts = _facts(store, run_id)
    if facts is None:
        return None
    outline = store.load_outline(run_id)
    if outline is None or outline.stored_as != facts.snapshot:
        return None
    stand_in = _stand_in(outline.snapshot.spec, facts)
    return None if stand_in is None else VouchedRun(run_id, outline, stand_in)


def _facts(store: StorePort, run_id: str) -> CompiledFacts | None:
    """The facts an execution of the run kept, if they name its snapshot."""
    facts = store.load_facts(run_key(run_id))
    if facts is None or not facts.snapshot or facts.run_id != run_id:
        return None
    return facts


def _stand_in(spec: ExperimentSpec, facts: CompiledFacts) -> CompiledRun | None:
    """`spec` (cases or not) compiled to the stand-in id of `facts`, else `None`."""
    try:
        return compiled_stand_in(spec, facts.stand_in)
    except PluginError:  # a plugin named: its installed version decides (the full path)
        return None


def compile_snapshot(snapshot: RunSnapshot) -> CompiledRun:
    """A snapshot's run recompiled (with the plugins installed, else those it recorded);
    refuses one whose identity drifted."""
    run_id = snapshot.run_id
    compiled, plugins = _with_plugins(
        snapshot, lambda plugins: compile_stored(snapshot.spec, run_id, plugins)
    )
    if compiled is None:
        raise StoreError(
            f"run {run_id[:12]}: its stored spec compiles to "
            f"{compile_run(snapshot.spec, plugins).run_id[:12]} with this Themis version"
            + (" and other plugin versions than it ran with" if _names_plugins(plugins) else "")
        )
    return compiled


def compile_case(snapshot: RunSnapshot, placed: Mapping[str, str]) -> CompiledRun | None:
    """A snapshot cut to a few cases of its run, compiled as far as planning those cases needs
    (`compile_placed`: its plan gives exactly the trials the store `placed` for them), with the
    plugins installed, else those it recorded, as `compile_snapshot` tries them; `None` when
    neither gives those trials (then only compiling the whole snapshot can say why)."""
    run_id = snapshot.run_id
    try:
        compiled, _ = _with_plugins(
            snapshot, lambda plugins: compile_placed(snapshot.spec, run_id, placed, plugins)
        )
    except PluginError:  # the recorded plugins are not to be had either
        return None
    return compiled


def _with_plugins(
    snapshot: RunSnapshot, compile_with: Callable[[PluginRegistry], CompiledRun | None]
) -> tuple[CompiledRun | None, PluginRegistry]:
    """`compile_with` the plugins installed, else (none installed, or another version: it gave
    `None`) with those the snapshot recorded; what it gave and the plugins it was given last.
    A `PluginError` of the recorded ones is the caller's."""
    try:
        plugins = resolve_plugins(snapshot.spec, f"run {snapshot.run_id[:12]}")
        compiled = compile_with(plugins)
    except PluginError:  # not installed: read it with the plugins it recorded
        compiled = None
    if compiled is None:  # another version installed, or none: the recorded ones, if any
        plugins = recorded_plugins(snapshot.provenance, builtin_plugins())
        compiled = compile_with(plugins)
    return compiled, plugins


def _names_plugins(plugins: PluginRegistry) -> bool:
    return any(not known.builtin for known in plugins)


def load_run(store: StorePort, run_id_or_prefix: str) -> tuple[CompiledRun, LoadedRun]:
    """A stored run (id or unique prefix), compiled once and folded once."""
    run_id = resolve_run_id(store, run_id_or_prefix)
    snapshot, compiled = load_compiled(store, run_id)
    state, next_seq = load_state(store, run_id)
    return compiled, LoadedRun(snapshot=snapshot, state=state, next_seq=next_seq)


def report_run(store: StorePort, run_id_or_prefix: str) -> Report:
    """The report of a stored run, from its log alone (from its checkpoint, without reading a
    case, when its facts vouch for its identity and the checkpoint is the log's end)."""
    run_id = resolve_run_id(store, run_id_or_prefix)
    outline = vouched_outline(store, run_id)
    if outline is not None:
        fresh = fresh_checkpoint_report(store, run_id, outline.snapshot.spec.name)
        if fresh is not None:
            return fresh[1]
    _, compiled = load_compiled(store, run_id)
    cached = fresh_report(store, compiled)
    if cached is not None:
        return cached[1]
    state, _ = load_state(store, run_id)
    return build_report(compiled, state)
