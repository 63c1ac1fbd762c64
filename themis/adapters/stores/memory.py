"""`MemoryStore`: the event log in a dict. It keeps event objects as they are (no encoding) but
enforces the same contract as `DuckDBStore`, sequence conflicts included. A lock makes each
call atomic, so a run in one thread (`Orchestrator.submit`) and reads in another can share it."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from themis.core.breakdown import field_names
from themis.core.checkpoint import Checkpoint, CheckpointSummary
from themis.core.compiled_facts import CompiledFacts, run_key
from themis.core.errors import SequenceConflict
from themis.core.events import Event, GenerationCompleted
from themis.core.generation import GenerationColumns, GenerationPlace
from themis.core.planner import TrialRef
from themis.core.snapshot import RunSnapshot, RunSummary, SnapshotOutline, without_cases
from themis.core.trial_columns import DerivedTrials, EventTexts

__all__ = ["MemoryStore"]


class MemoryStore:
    """An in-process `StorePort`; everything is lost when the object goes away."""

    def __init__(self) -> None:
        self._events: dict[str, dict[int, Event]] = {}
        self._snapshots: dict[str, RunSnapshot] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._facts: dict[str, CompiledFacts] = {}
        self._saves = 0  # snapshots saved: which save a stored snapshot came from names it
        self._stored_as: dict[str, str] = {}
        self._lock = threading.RLock()

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        """Store `events` as seqs `first_seq, first_seq + 1, ...`; all or none."""
        with self._lock:
            if not events:
                return
            stored = self._events.setdefault(run_id, {})
            seqs = range(first_seq, first_seq + len(events))
            taken = [seq for seq in seqs if seq in stored]
            if taken:
                raise SequenceConflict(
                    f"run {run_id}: seq {taken[0]} is already stored; "
                    "another writer got there first"
                )
            stored.update(zip(seqs, events, strict=True))

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Event]]:
        """The run's `(seq, event)` pairs after `after_seq`, in seq order."""
        with self._lock:
            stored = self._events.get(run_id, {})
            return [(seq, stored[seq]) for seq in sorted(stored) if seq > after_seq]

    def last_seq(self, run_id: str) -> int:
        """The highest seq stored for the run; 0 when it has none."""
        with self._lock:
            return max(self._events.get(run_id, {}), default=0)

    def save_snapshot(self, snapshot: RunSnapshot, *, places: bool = True) -> None:
        """Keep `snapshot` as its run's one snapshot, replacing any earlier one."""
        with self._lock:
            self._snapshots[snapshot.run_id] = snapshot
            self._saves += 1
            self._stored_as[snapshot.run_id] = f"save {self._saves}"

    def save_places(
        self, snapshot: RunSnapshot, places: Iterable[TrialRef], *, places_from: str | None = None
    ) -> None:
        """Nothing to keep: places serve the DuckDB store's views of the log, and this store
        has none (its readers place events by planning the run)."""

    def load_places(self, run_id: str) -> list[tuple[str, str]] | None:
        """`None`: this store keeps no places (its readers plan the run)."""
        return None

    def locate_places(
        self, run_id: str, exclude_run: str
    ) -> tuple[list[tuple[str, str]], dict[str, GenerationPlace]] | None:
        """`None`: this store keeps no places."""
        return None

    def load_snapshot(self, run_id: str) -> RunSnapshot | None:
        """The run's snapshot, or `None` if none was saved."""
        with self._lock:
            return self._snapshots.get(run_id)

    def load_outline(self, run_id: str, *, vouched: bool = False) -> SnapshotOutline | None:
        """The run's snapshot with its datasets' cases left out, named by the save that stored
        it (the objects kept never change but by another save: `vouched` changes nothing);
        `None` if none was saved."""
        with self._lock:
            snapshot = self._snapshots.get(run_id)
            if snapshot is None:
                return None
            fields = field_names(snapshot.spec)
            return SnapshotOutline(without_cases(snapshot), fields, self._stored_as[run_id])

    def snapshot_saved_as(self, run_id: str) -> str | None:
        """Which save stored the run's snapshot (`load_outline`'s name for it)."""
        with self._lock:
            return self._stored_as.get(run_id)

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        """Keep `checkpoint` as the run's one checkpoint, replacing any earlier one."""
        with self._lock:
            self._checkpoints[run_id] = checkpoint

    def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        """The run's checkpoint, or `None` if none was saved."""
        with self._lock:
            return self._checkpoints.get(run_id)

    def load_checkpoint_summary(self, run_id: str) -> CheckpointSummary | None:
        """The summary of the run's checkpoint, or `None` if none was saved."""
        with self._lock:
            checkpoint = self._checkpoints.get(run_id)
            return None if checkpoint is None else checkpoint.summary

    def find_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, tuple[str, GenerationCompleted]]:
        """Completed generations of `trial_keys` in other runs: the earliest-created run's first."""
        return self.read_generations(self.locate_generations(trial_keys, exclude_run))

    def locate_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, GenerationPlace]:
        """Where `find_generations` finds each of `trial_keys`' generation."""
        with self._lock:
            wanted = set(trial_keys)
            found: dict[str, GenerationPlace] = {}
            for run_id in sorted(self._events, key=self._creation_order):
                if run_id == exclude_run:
                    continue
                stored = self._events[run_id]
                for seq in sorted(stored):
                    event = stored[seq]
                    if isinstance(event, GenerationCompleted) and event.trial_key in wanted:
                        found.setdefault(event.trial_key, GenerationPlace(run_id, seq))
            return found

    def read_generations(
        self, places: Mapping[str, GenerationPlace]
    ) -> dict[str, tuple[str, GenerationCompleted]]:
        """The completed generation of each key at its place (`locate_generations`)."""
        with self._lock:
            found: dict[str, tuple[str, GenerationCompleted]] = {}
            for key, (run_id, seq) in places.items():
                event = self._events.get(run_id, {}).get(seq)
                if isinstance(event, GenerationCompleted) and event.trial_key == key:
                    found[key] = (run_id, event)
            return found

    def _creation_order(self, run_id: str) -> tuple[bool, float, str]:
        snapshot = self._snapshots.get(run_id)  # runs without a snapshot come last
        return (snapshot is None, 0.0 if snapshot is None else snapshot.created_at, run_id)

    def runs(self) -> list[RunSummary]:
        """One summary per saved snapshot, oldest first (ties by run id)."""
        with self._lock:
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
        """Forget the run's events, snapshot, checkpoint and facts; unknown runs are ignored."""
        with self._lock:
            self._events.pop(run_id, None)
            self._snapshots.pop(run_id, None)
            self._stored_as.pop(run_id, None)
            self._checkpoints.pop(run_id, None)
            self._facts.pop(run_key(run_id), None)

    def save_facts(self, key: str, facts: CompiledFacts) -> None:
        """Keep `facts` under `key`, replacing any earlier entry."""
        with self._lock:
            self._facts[key] = facts

    def load_facts(self, key: str) -> CompiledFacts | None:
        with self._lock:
            return self._facts.get(key)

    def append_texts(self, run_id: str, first_seq: int, texts: EventTexts) -> None:
        """`append` of the events the texts encode (decoded by the codec)."""
        from themis.adapters.codec import decode_event  # (the codec's imports: when used)

        kinds, payloads = texts.kinds, texts.payloads
        events = [decode_event(kind, text) for kind, text in zip(kinds, payloads, strict=True)]
        self.append(run_id, first_seq, events)

    def event_texts(self, events: Sequence[Event]) -> None:
        """`None`: this store keeps events as they are (`append` them)."""
        return None

    def derived_texts(self, trials: DerivedTrials) -> EventTexts:
        """The texts the codec writes for `trials`' events (`derived_payloads`)."""
        from themis.adapters.derived_payloads import derived_texts

        return derived_texts(trials)

    def read_generation_columns(
        self, run_id: str, seqs: Sequence[int], keys: Sequence[str]
    ) -> GenerationColumns | None:
        """`None`: this store holds events, not texts; a replay reads them
        (`read_generations`)."""
        return None

    def shed_memory(self) -> None:
        """Nothing held beside the events; present for the port."""

    def close(self) -> None:
        """Nothing to release; present for the port."""
