"""`MemoryStore`: the event log in a dict. It keeps event objects as they are (no encoding) but
enforces the same contract as `DuckDBStore`, sequence conflicts included."""

from __future__ import annotations

from collections.abc import Sequence

from themis.core.errors import SequenceConflict
from themis.core.events import Event
from themis.core.snapshot import RunSnapshot, RunSummary

__all__ = ["MemoryStore"]


class MemoryStore:
    """An in-process `StorePort`; everything is lost when the object goes away."""

    def __init__(self) -> None:
        self._events: dict[str, dict[int, Event]] = {}
        self._snapshots: dict[str, RunSnapshot] = {}

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        """Store `events` as seqs `first_seq, first_seq + 1, ...`; all or none."""
        if not events:
            return
        stored = self._events.setdefault(run_id, {})
        seqs = range(first_seq, first_seq + len(events))
        taken = [seq for seq in seqs if seq in stored]
        if taken:
            raise SequenceConflict(
                f"run {run_id}: seq {taken[0]} is already stored; another writer got there first"
            )
        stored.update(zip(seqs, events, strict=True))

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Event]]:
        """The run's `(seq, event)` pairs after `after_seq`, in seq order."""
        stored = self._events.get(run_id, {})
        return [(seq, stored[seq]) for seq in sorted(stored) if seq > after_seq]

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        """Keep `snapshot` as its run's one snapshot, replacing any earlier one."""
        self._snapshots[snapshot.run_id] = snapshot

    def load_snapshot(self, run_id: str) -> RunSnapshot | None:
        """The run's snapshot, or `None` if none was saved."""
        return self._snapshots.get(run_id)

    def runs(self) -> list[RunSummary]:
        """One summary per saved snapshot, oldest first (ties by run id)."""
        summaries = [
            RunSummary(
                run_id=run_id,
                name=snapshot.spec.name,
                created_at=snapshot.created_at,
                event_count=len(self._events.get(run_id, {})),
            )
            for run_id, snapshot in self._snapshots.items()
        ]
        return sorted(summaries, key=lambda summary: (summary.created_at, summary.run_id))

    def delete_run(self, run_id: str) -> None:
        """Forget the run's events and snapshot; unknown runs are ignored."""
        self._events.pop(run_id, None)
        self._snapshots.pop(run_id, None)

    def close(self) -> None:
        """Nothing to release; present for the port."""
