"""`StorePort`: the append-only event log plus each run's compiled snapshot.

Contract (one suite in `tests/contract` runs it against every adapter):
- `append` writes `events` as seqs `first_seq, first_seq + 1, ...` of `run_id`, all or none;
  a seq already stored raises `SequenceConflict` and writes nothing.
- `read` returns a run's `(seq, event)` pairs after `after_seq`, in seq order.
- `save_snapshot` / `load_snapshot` keep one `RunSnapshot` per run; `runs` lists them.
- `delete_run` removes a run's events and snapshot (used by `existing_run_policy = "rerun"`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from themis.core.events import Event
from themis.core.snapshot import RunSnapshot, RunSummary


class StorePort(Protocol):
    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None: ...

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Event]]: ...

    def save_snapshot(self, snapshot: RunSnapshot) -> None: ...

    def load_snapshot(self, run_id: str) -> RunSnapshot | None: ...

    def runs(self) -> list[RunSummary]: ...

    def delete_run(self, run_id: str) -> None: ...

    def close(self) -> None: ...
