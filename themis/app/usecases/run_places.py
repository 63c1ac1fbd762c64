"""A run's places (where each trial belongs, for the log's views) kept as soon as an execution
has read its whole plan, in a thread of their own, while its last calls are still out.

The places come from the keys the execution recorded as it read the plan (`PlanRecord`), so
they can be kept only once it has read all of it: for a fresh run, when a worker finds the
plan exhausted, about one call's latency before the last answer; for a resumed run, before its
first call (it reads the whole plan to find what is pending). Before ADR 0073 they were
written after the run's last event, one of the serial steps between the last answer and the
run's return (the store's lock held after the log's fold, before the final checkpoint).

An execution that stops before reading the whole plan (paused by its budget, interrupted) has
them written at its end, planned again (`trial_refs`), as before. They are inserted and
committed in one transaction either way: a process killed meanwhile leaves none, and the next
writer that opens the store plans and keeps them (`DuckDBStore`'s open).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from themis.core.planner import CompiledRun, PlanRecord, TrialRef, trial_refs
from themis.core.snapshot import RunSnapshot
from themis.ports.store import StorePort
from themis.threads import BackgroundCall

__all__ = ["PlacesKeeper", "PlannedRefs"]

T = TypeVar("T")


class PlannedRefs:
    """The run's `trial_refs`, read anew at each iteration: a store that reads them twice (a
    derived run's places checked against its source's, then inserted if they differ) never
    holds them all at once (ADR 0094)."""

    def __init__(self, compiled: CompiledRun, record: PlanRecord | None) -> None:
        self._compiled, self._record = compiled, record

    def __iter__(self) -> Iterator[TrialRef]:
        return trial_refs(self._compiled, self._record)


class PlacesKeeper:
    """Keeps one execution's places once, in a thread: `start` it as early as the plan is read
    (`once_read` does when a wrapped iterable is exhausted), `join` it before the run returns."""

    def __init__(
        self,
        store: StorePort,
        snapshot: RunSnapshot,
        compiled: CompiledRun,
        record: PlanRecord | None,
        ready: Callable[[], object],
        places_from: str | None = None,
    ) -> None:
        self._store, self._snapshot = store, snapshot
        self._compiled, self._record = compiled, record
        self._ready = ready  # waits for a new run's snapshot to be stored
        # The run whose kept places the record's trials are (a derived replay's source).
        self._places_from = places_from
        self._call: BackgroundCall | None = None

    @property
    def started(self) -> bool:
        return self._call is not None

    def planned(self) -> bool:
        """Whether the record holds the run's whole plan (its places need no planning)."""
        record = self._record
        return (
            record is not None
            and record.complete
            and len(record.trial_ids) == self._compiled.trial_count
        )

    def once_read(self, work: Iterable[T]) -> Iterator[T]:
        """`work` unchanged; once it is exhausted, the places are started if the whole plan
        was read (else they wait for the end: `start`)."""
        yield from work
        if self.planned():
            self.start()

    def start(self) -> BackgroundCall:
        """Start keeping the places (from the record, or planned again), unless started."""
        if self._call is None:
            self._call = BackgroundCall("themis-places", self._keep)
        return self._call

    def _keep(self) -> None:
        self._ready()
        refs = PlannedRefs(self._compiled, self._record)
        places_from = self._places_from if self.planned() else None
        self._store.save_places(self._snapshot, refs, places_from=places_from)

    def join(self) -> None:
        """Wait for them to be kept, started now if they were not; raise what keeping them
        raised."""
        self.start().join()

    def wait(self) -> None:
        """Wait for a start already made (an execution failing or interrupted must not leave
        a thread inside the store), raising nothing of its own."""
        if self._call is not None:
            self._call.wait()
