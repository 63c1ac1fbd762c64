"""`RunQueuePort`: a store's queue of submitted runs (`themis.core.queue`; ADR 0031).

Contract (one suite in `tests/contract` runs it against every adapter):
- `submit` records `candidate` (with `snapshot`, the run it queues) as a queued run, placed
  after every other entry, and returns that entry and `True`; when the run is already queued
  or running, that entry unchanged and `False`. Concurrent submissions never lose one another.
- `take` marks the earliest entry not done `running` under `pid` and returns it with its
  snapshot (`None` when nothing waits). Callers take only while holding the store's lock, so
  two callers never take the same entry.
- `finish` marks a taken entry `done` with its ending and keeps `report` for `report`.
- `prune` removes every `done` entry (with its snapshot and report, unless an entry kept
  runs the same run) and returns them in order; queued and running entries stay.
- `entries` lists every entry in submission order; it never blocks and never fails on a
  queue that does not exist yet (empty). `snapshot` is a submitted run's snapshot (`None` for
  a run never submitted), `report` a finished run's report.

Its adapters are in `themis.adapters.run_queue`.
"""

from __future__ import annotations

from typing import Protocol

from themis.core.queue import Ending, QueuedRun
from themis.core.report import Report
from themis.core.snapshot import RunSnapshot

__all__ = ["RunQueuePort"]


class RunQueuePort(Protocol):
    """The runs submitted to one store, waiting for (or taken by) a worker."""

    def submit(self, candidate: QueuedRun, snapshot: RunSnapshot) -> tuple[QueuedRun, bool]: ...

    def take(self, pid: int, at: float) -> tuple[QueuedRun, RunSnapshot] | None: ...

    def finish(self, run_id: str, at: float, ending: Ending, report: Report | None) -> None: ...

    def prune(self) -> list[QueuedRun]: ...

    def entries(self) -> list[QueuedRun]: ...

    def report(self, run_id: str) -> Report | None: ...

    def snapshot(self, run_id: str) -> RunSnapshot | None: ...
