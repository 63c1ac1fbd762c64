"""`StorePort`: the append-only event log, each run's compiled snapshot and its checkpoint.

Contract (one suite in `tests/contract` runs it against every adapter):
- `append` writes `events` as seqs `first_seq, first_seq + 1, ...` of `run_id`, all or none;
  a seq already stored raises `SequenceConflict` and writes nothing.
- `read` returns a run's `(seq, event)` pairs after `after_seq`, in seq order.
- `save_snapshot` / `load_snapshot` keep one `RunSnapshot` per run; `runs` lists them.
- `last_seq` is the highest seq stored for a run (0 when it has none).
- `save_checkpoint` keeps one `Checkpoint` per run (a later save replaces it); `load_checkpoint`
  returns it whole, `load_checkpoint_summary` only its `CheckpointSummary` (seq, run-level facts,
  cached report) without decoding the state, so "nothing to do" is decided in constant time.
- `find_generations` answers, in one call for many trial keys, which of them another run of the
  store completed: `{trial_key: (run_id, GenerationCompleted)}`. Several candidates resolve to
  the earliest-created run (ties by run id), then its earliest seq.
- `delete_run` removes a run's events, snapshot and checkpoint (used by
  `existing_run_policy = "rerun"`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from themis.core.checkpoint import Checkpoint, CheckpointSummary
from themis.core.events import Event, GenerationCompleted
from themis.core.snapshot import RunSnapshot, RunSummary


class StorePort(Protocol):
    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None: ...

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Event]]: ...

    def last_seq(self, run_id: str) -> int: ...

    def save_snapshot(self, snapshot: RunSnapshot) -> None: ...

    def load_snapshot(self, run_id: str) -> RunSnapshot | None: ...

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None: ...

    def load_checkpoint(self, run_id: str) -> Checkpoint | None: ...

    def load_checkpoint_summary(self, run_id: str) -> CheckpointSummary | None: ...

    def find_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, tuple[str, GenerationCompleted]]: ...

    def runs(self) -> list[RunSummary]: ...

    def delete_run(self, run_id: str) -> None: ...

    def close(self) -> None: ...
