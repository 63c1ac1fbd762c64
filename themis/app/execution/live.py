"""Live progress beside a file store, so that other processes can inspect a running run.

A DuckDB file admits one process at a time: while a run holds it, another process cannot open
it at all, not even read-only (ADR 0007). So the running process publishes a small JSON record
per run in a directory beside the store, `<store>.progress/<run_id>.json`, rewritten atomically
(a temp file in the same directory, then `os.replace`) at most every `interval` seconds from the
interpreter's progress counters, and removed when the execution ends, however it ends.

A reader that finds the store locked reads only the records of the PID holding the lock, and
ignores any record whose process is gone (a crash leaves its file behind; the next publisher in
the same directory sweeps such files away).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import attrs
import cattrs
from attrs import frozen

from themis.app.execution.interpreter import ProgressCallback, ProgressCounts
from themis.app.wiring import store_file
from themis.core.events import Event, RunResumed
from themis.core.inspection import (
    ExecutionState,
    LiveSource,
    RunSnapshotView,
    Tally,
    lineage,
    snapshot_view,
    tally,
)
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.core.state import RunState, evolve
from themis.ports.clock import ClockPort
from themis.ports.store import StorePort

__all__ = [
    "PROGRESS_FORMAT",
    "LiveRecord",
    "ProgressPublisher",
    "pid_alive",
    "progress_directory",
    "publishing",
    "read_live",
]

PROGRESS_FORMAT: Final = 1
RUNNING: Final = "running"
_CONVERTER = cattrs.Converter()
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, cattrs.BaseValidationError)


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


def progress_directory(store_path: str | Path) -> Path:
    """Where the processes using the store file at `store_path` publish live progress."""
    return Path(f"{store_path}.progress")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on Windows, where probing could kill it: assumed yes)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill there terminates the process; rely on the lock's PID
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _decode(text: str) -> LiveRecord:
    data = json.loads(text)
    if data.get("format") != PROGRESS_FORMAT:
        raise ValueError(f"unknown progress format {data.get('format')!r}")
    return _CONVERTER.structure(data, LiveRecord)


def _records(directory: Path) -> Iterator[LiveRecord]:
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.json")):
        try:
            yield _decode(path.read_text(encoding="utf-8"))
        except _READ_ERRORS:  # half-written by an old version, or not ours: not live progress
            continue


def read_live(store_path: str | Path, pid: int | None = None) -> list[LiveRecord]:
    """The live records beside the store at `store_path` (only `pid`'s, if given), oldest first.

    Records of processes that no longer exist are ignored.
    """
    found = [
        record
        for record in _records(progress_directory(store_path))
        if (pid is None or record.pid == pid) and pid_alive(record.pid)
    ]
    return sorted(found, key=lambda record: (record.started_at, record.run_id))


class ProgressPublisher:
    """Publishes one execution's progress; call it with the interpreter's counters.

    The per-stage counts are the state at the start of the execution plus what this execution
    completed. Every generation failure known at the start is retried by the execution (the
    planner yields it again), so failures are counted from this execution's counters alone.
    """

    def __init__(
        self,
        directory: Path,
        record: LiveRecord,
        base: Tally,
        clock: ClockPort,
        *,
        interval: float = 0.5,
    ) -> None:
        self._directory = directory
        self._record = record
        self._base = base
        self._clock = clock
        self._interval = interval
        self._target = directory / f"{record.run_id}.json"
        self._last: float | None = None
        self._broken = False

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        compiled: CompiledRun,
        snapshot: RunSnapshot,
        state: RunState,
        until_stage: Stage,
        clock: ClockPort,
        preamble: Sequence[Event] = (),
        interval: float = 0.5,
        plan_record: PlanRecord | None = None,
    ) -> ProgressPublisher:
        """Sweep away records of dead processes, then publish the execution's starting point.

        `plan_record`: the plan's keys, when the caller has already read the whole plan.
        """
        resumed = evolve(state, [event for event in preamble if isinstance(event, RunResumed)])
        started = state.started or bool(state.generations or state.generation_failures)
        base = (
            tally(compiled, state, plan_record)[0]
            if started
            else Tally(planned=compiled.trial_count)
        )
        now = clock.now()
        view = snapshot_view(snapshot, compiled, resumed, plan_record)
        record = LiveRecord(
            format=PROGRESS_FORMAT,
            pid=os.getpid(),
            run_id=compiled.run_id,
            name=compiled.spec.name,
            status=RUNNING,
            started_at=now,
            updated_at=now,
            until_stage=until_stage,
            model_calls=0,
            state=ExecutionState(
                run_id=compiled.run_id,
                name=compiled.spec.name,
                status=RUNNING,
                completed_through_stage=state.completed_through_stage,
                planned=base.planned,
                stages=base.stages(),
                lineage=lineage(resumed),
                truncated=base.truncated,
            ),
            snapshot=attrs.evolve(view, identity=None),  # the full document can be large
        )
        publisher = cls(directory, record, base, clock, interval=interval)
        publisher._sweep()
        publisher._write(record)
        return publisher

    def __call__(self, counts: ProgressCounts) -> None:
        """Publish `counts`, unless the last publication is younger than the interval."""
        now = self._clock.monotonic()
        if self._broken or (self._last is not None and now - self._last < self._interval):
            return
        self._last = now
        base = self._base
        current = Tally(
            planned=base.planned,
            generated=base.generated + counts.generated,
            generation_failed=counts.failed,
            parsed=base.parsed + counts.parsed,
            unparsed=base.unparsed + counts.unparsed,
            scored=base.scored + counts.scored,
            truncated=base.truncated + counts.truncated,
        )
        record = self._record
        self._write(
            attrs.evolve(
                record,
                updated_at=self._clock.now(),
                model_calls=counts.model_calls,
                state=attrs.evolve(
                    record.state,
                    stages=current.stages(),
                    holds=counts.holds,
                    truncated=current.truncated,
                ),
            )
        )

    def close(self) -> None:
        """The execution ended: remove its record (and the directory, once empty)."""
        with contextlib.suppress(OSError):
            self._target.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._directory.rmdir()

    def _sweep(self) -> None:
        for path in self._directory.glob("*.json") if self._directory.is_dir() else ():
            try:
                pid = int(json.loads(path.read_text(encoding="utf-8"))["pid"])
            except _READ_ERRORS:
                continue
            if not pid_alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _write(self, record: LiveRecord) -> None:
        """Replace the record file atomically; progress is best effort and never fails a run."""
        text = json.dumps(_CONVERTER.unstructure(record), ensure_ascii=False)
        try:
            self._directory.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                dir=self._directory, prefix=f".{record.run_id}.", suffix=".tmp"
            )
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.write(text)
                os.replace(temporary, self._target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            self._broken = True


@contextmanager
def publishing(
    store: StorePort,
    compiled: CompiledRun,
    state: RunState,
    *,
    until_stage: Stage,
    clock: ClockPort,
    on_progress: ProgressCallback | None,
    preamble: Sequence[Event] = (),
    snapshot: RunSnapshot | None = None,
    plan_record: PlanRecord | None = None,
) -> Iterator[ProgressCallback | None]:
    """`on_progress`, chained with a `ProgressPublisher` when `store` is a file.

    The publisher's record is removed on exit, whether the execution finished, failed or was
    interrupted. Stores without a file (memory) publish nothing. `snapshot`: the run's stored
    snapshot, if the caller has it at hand (else it is loaded); `plan_record`: the plan's keys, if
    the caller has already read the whole plan (else the starting counts plan it again).
    """
    path = store_file(store)
    if path is not None and snapshot is None:
        snapshot = store.load_snapshot(compiled.run_id)
    if path is None or snapshot is None:
        yield on_progress
        return
    publisher = ProgressPublisher.start(
        progress_directory(path),
        compiled=compiled,
        snapshot=snapshot,
        state=state,
        until_stage=until_stage,
        clock=clock,
        preamble=preamble,
        plan_record=plan_record,
    )

    def both(counts: ProgressCounts) -> None:
        publisher(counts)
        if on_progress is not None:
            on_progress(counts)

    try:
        yield both
    finally:
        publisher.close()
