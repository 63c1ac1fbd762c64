"""What a running process publishes about one run, so that other processes can inspect it while
the store is locked (ADR 0007): its execution state and snapshot summary, with its PID.

Frozen and pure; `themis.ports.live_progress.LiveProgressPort` stores these records and
`themis.app.execution.live` computes them from the interpreter's progress counters.
"""

from __future__ import annotations

from typing import Final

import attrs
from attrs import frozen

from themis.core.inspection import ExecutionState, LiveSource, RunSnapshotView
from themis.core.stages import Stage

__all__ = ["PROGRESS_FORMAT", "RUNNING", "LiveRecord"]

PROGRESS_FORMAT: Final = 1
RUNNING: Final = "running"


@frozen
class LiveRecord:
    """What a running process publishes about one run."""

    format: int
    pid: int
    run_id: str
    name: str
    status: str
    started_at: float
    updated_at: float
    until_stage: Stage
    model_calls: int
    state: ExecutionState
    snapshot: RunSnapshotView

    @property
    def source(self) -> LiveSource:
        return LiveSource(pid=self.pid, updated_at=self.updated_at)

    def live_state(self) -> ExecutionState:
        return attrs.evolve(self.state, live=self.source)

    def live_snapshot(self) -> RunSnapshotView:
        return attrs.evolve(self.snapshot, live=self.source)
