"""Projection checkpoints in the use cases: fold only what follows the last checkpoint, and
decide "nothing to do" from its summary alone.

A checkpoint is trusted only as far as the log agrees with it: its seq must not be past the
log's last seq, and the cached report is used only while no event was logged after it (a
`StageReset`, a resumed execution). Otherwise the events after it are folded onto its state.
"""

from __future__ import annotations

from contextlib import suppress

import attrs

from themis.core.case_table import CaseTable
from themis.core.checkpoint import Checkpoint, CheckpointSummary
from themis.core.errors import StoreError
from themis.core.planner import CompiledRun
from themis.core.report import Report
from themis.core.stages import Stage
from themis.core.state import RunState, evolve
from themis.ports.store import CheckpointStore, StorePort

__all__ = ["fold_from_checkpoint", "fresh_checkpoint_report", "fresh_report", "remember"]


def fold_from_checkpoint(store: StorePort, run_id: str) -> tuple[RunState, int]:
    """The run's state (its checkpoint plus the events after it) and the seq its next event gets."""
    checkpoint = store.load_checkpoint(run_id)
    if checkpoint is not None and checkpoint.seq > store.last_seq(run_id):
        checkpoint = None  # ahead of its log: not a prefix of it, so not to be trusted
    base, after = (RunState(), 0) if checkpoint is None else (checkpoint.state, checkpoint.seq)
    records = store.read(run_id, after_seq=after)
    if not records:
        return base, after + 1
    return evolve(base, (event for _, event in records)), records[-1][0] + 1


def fresh_report(
    store: StorePort, compiled: CompiledRun, until_stage: Stage | None = None
) -> tuple[CheckpointSummary, Report] | None:
    """The cached report if nothing was logged after the run's checkpoint (and the run is
    complete through `until_stage`, if given); decodes neither the state nor the snapshot."""
    return fresh_checkpoint_report(store, compiled.run_id, compiled.spec.name, until_stage)


def fresh_checkpoint_report(
    store: StorePort, run_id: str, name: str, until_stage: Stage | None = None
) -> tuple[CheckpointSummary, Report] | None:
    """`fresh_report` of the run `run_id` whose spec is named `name`, for a reader that has
    not compiled it (the viewer's first pages)."""
    summary = store.load_checkpoint_summary(run_id)
    if summary is None or summary.report is None:
        return None
    if until_stage is not None and not summary.is_complete_through(until_stage):
        return None
    if store.last_seq(run_id) != summary.seq:
        return None
    # The name is provenance: the run may be reached under another one than it was stored with.
    return summary, attrs.evolve(summary.report, name=name)


def remember(
    store: CheckpointStore,
    run_id: str,
    seq: int,
    state: RunState,
    report: Report | None,
    cases: CaseTable | None = None,
) -> None:
    """Checkpoint `state` (folded through `seq`) with its report and case table; a failure
    loses only a cache."""
    with suppress(StoreError):
        store.save_checkpoint(run_id, Checkpoint(seq=seq, state=state, report=report, cases=cases))
