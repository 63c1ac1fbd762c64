"""The store's ports: the append-only event log, the catalog of runs, checkpoints, and the
index of generations across runs. A store adapter is all four (`StorePort`); a use case that
needs only one asks for that one.

Contract (one suite in `tests/contract` runs it against every adapter):
- `EventLog.append` writes `events` as seqs `first_seq, first_seq + 1, ...` of `run_id`, all or
  none; a seq already stored raises `SequenceConflict` and writes nothing. `read` returns a
  run's `(seq, event)` pairs after `after_seq`, in seq order; `last_seq` is the highest seq
  stored for a run (0 when it has none).
- `RunCatalog.save_snapshot` / `load_snapshot` keep one `RunSnapshot` per run; `runs` lists
  them; `delete_run` removes a run's events, snapshot and checkpoint (used by
  `existing_run_policy = "rerun"`). `save_places` keeps where each trial of a snapshot's run belongs
  (`TrialRef`s in plan order) unless they are kept already: a store whose views of the log place
  events by them (DuckDB) computes them itself when a snapshot is saved without them
  (`places=False`) and none come later; one without such views may ignore them. With
  `places_from`, the caller vouches that `places` are that run's kept places, in order (a
  derived replay's trials taken from its source's): a store may copy them without reading
  `places`.
  `load_outline` returns the run's snapshot without its datasets' cases and the name of the
  snapshot as stored (`SnapshotOutline`): saving a snapshot of other content changes the name.
  With `vouched`, the caller checks the outline against the run's id itself (its identity
  fields compile to it): a store may give the outline it kept without checking it against the
  snapshot's stored text (ADR 0118).
  `snapshot_saved_as` is that name as the last save gave it, without reading the snapshot
  (what an execution that saved it vouches for).
- `CheckpointStore.save_checkpoint` keeps one `Checkpoint` per run (a later save replaces it);
  `load_checkpoint` returns it whole, `load_checkpoint_summary` only its `CheckpointSummary`
  (seq, run-level facts, cached report) without decoding the state, so "nothing to do" is
  decided in constant time.
- `GenerationIndex.find_generations` answers, in one call for many trial keys, which of them
  another run of the store completed: `{trial_key: (run_id, GenerationCompleted)}`. Several
  candidates resolve to the earliest-created run (ties by run id), then its earliest seq.
  `locate_generations` answers only where (`GenerationPlace`: run and seq) the generation
  `find_generations` would return for each of them is logged, reading no payload, and
  `read_generations` reads the generations at such places later: a derived replay locates a
  whole run's at once, then reads them chunk by chunk without searching the log again. A
  place whose event is not a completed generation of its key (its run was deleted since) is
  left out of the answer. `read_generation_columns` reads one run's generations at given
  seqs as columns, in the order asked, with their payload texts (`GenerationColumns`), for a
  derived replay's trials taken as columns (ADR 0115, ADR 0117); `None` when one is not
  stored there, is not plain (a retry, logprobs, an older schema), or the store does not
  read columns (the caller then reads events).
- `EventLog.append_texts` is `append` of events given as the texts the log stores
  (`EventTexts`: what `derived_texts` writes for a chunk of a derived replay's trials), with
  the same all-or-none and the same `SequenceConflict`. `event_texts` makes those texts for
  events in the caller's thread (a run's writer does while its loop has nothing else to run,
  ADR 0125), or is `None` for a log that keeps events as they are (`append` them).
- `FactCache.save_facts` keeps one `CompiledFacts` per key (a later save replaces it);
  `load_facts` returns it, or `None` when none was saved (or the store predates the cache).
  `delete_run` leaves config entries naming the run: they are checked against the run's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from themis.core.checkpoint import Checkpoint, CheckpointSummary
from themis.core.compiled_facts import CompiledFacts
from themis.core.events import Event, GenerationCompleted
from themis.core.generation import GenerationColumns, GenerationPlace
from themis.core.planner import TrialRef
from themis.core.snapshot import RunSnapshot, RunSummary, SnapshotOutline
from themis.core.trial_columns import DerivedTrials, EventTexts

__all__ = [
    "CheckpointStore",
    "EventLog",
    "FactCache",
    "GenerationIndex",
    "RunCatalog",
    "StorePort",
]


class EventLog(Protocol):
    """Each run's events, in seq order, appended and never changed."""

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None: ...

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Event]]: ...

    def last_seq(self, run_id: str) -> int: ...

    def append_texts(self, run_id: str, first_seq: int, texts: EventTexts) -> None: ...

    def event_texts(self, events: Sequence[Event]) -> EventTexts | None: ...

    def derived_texts(self, trials: DerivedTrials) -> EventTexts:
        """The texts this log stores for `trials`' events (their copies, parses and scores, in
        log order), made from their columns without an event built."""
        ...

    def shed_memory(self) -> None:
        """A run's appends are done: let go of what the store holds only to write or read the
        log faster (a DuckDB writer's buffer of its blocks), before the run's end is built."""


class RunCatalog(Protocol):
    """The runs a store holds: each one's compiled snapshot."""

    def save_snapshot(self, snapshot: RunSnapshot, *, places: bool = True) -> None: ...

    def save_places(
        self, snapshot: RunSnapshot, places: Iterable[TrialRef], *, places_from: str | None = None
    ) -> None: ...

    def load_places(self, run_id: str) -> list[tuple[str, str]] | None: ...

    def load_snapshot(self, run_id: str) -> RunSnapshot | None: ...

    def load_outline(self, run_id: str, *, vouched: bool = False) -> SnapshotOutline | None: ...

    def snapshot_saved_as(self, run_id: str) -> str | None: ...

    def runs(self) -> list[RunSummary]: ...

    def delete_run(self, run_id: str) -> None: ...


class CheckpointStore(Protocol):
    """One projection checkpoint per run: a cache of its folded state and report."""

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None: ...

    def load_checkpoint(self, run_id: str) -> Checkpoint | None: ...

    def load_checkpoint_summary(self, run_id: str) -> CheckpointSummary | None: ...


class GenerationIndex(Protocol):
    """Completed generations of every run, found by trial key (cross-run reuse)."""

    def find_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, tuple[str, GenerationCompleted]]: ...

    def locate_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, GenerationPlace]: ...

    def read_generations(
        self, places: Mapping[str, GenerationPlace]
    ) -> dict[str, tuple[str, GenerationCompleted]]: ...

    def locate_places(
        self, run_id: str, exclude_run: str
    ) -> tuple[list[tuple[str, str]], dict[str, GenerationPlace]] | None:
        """`load_places(run_id)` and `locate_generations` of their keys, when the store can
        tell both at once (every key's generation found); `None` when it cannot: the caller
        then asks each (ADR 0118)."""
        ...

    def read_generation_columns(
        self, run_id: str, seqs: Sequence[int], keys: Sequence[str]
    ) -> GenerationColumns | None:
        """Run `run_id`'s completed generations at `seqs`, whose trial keys are `keys`, as
        columns in that order; `None` when they cannot all be read so (module docstring)."""
        ...


class FactCache(Protocol):
    """Compiled facts of runs and configs (`themis.core.compiled_facts`): a cache."""

    def save_facts(self, key: str, facts: CompiledFacts) -> None: ...

    def load_facts(self, key: str) -> CompiledFacts | None: ...


class StorePort(EventLog, RunCatalog, CheckpointStore, GenerationIndex, FactCache, Protocol):
    """A whole store, as an adapter provides it; `close` releases it."""

    def close(self) -> None: ...
