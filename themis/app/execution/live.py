"""Live progress of an execution, for other processes to inspect while the store is locked.

A DuckDB file admits one process at a time: while a run holds it, another process cannot open
it at all, not even read-only (ADR 0007). So the running process publishes a small record per
run through a `LiveProgressPort` (beside a file store: `themis.adapters.live_progress`) at most
every `interval` seconds: the publisher is an observer of the execution's `TelemetryBus`, fed by
its `Progress` signals like the progress bar, and the record is withdrawn when the execution
ends, however it ends. Readers that find the store locked read the records of the PID
holding the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import attrs
from attrs import frozen

from themis.app.execution.telemetry import TelemetryBus
from themis.app.execution.trials import ProgressCounts
from themis.core.events import (
    Event,
    FailuresRetried,
    JudgeCompleted,
    JudgeFailed,
    RunResumed,
)
from themis.core.inspection import (
    ExecutionState,
    StageCounts,
    Tally,
    lineage,
    snapshot_view,
    tally,
)
from themis.core.live_progress import PROGRESS_FORMAT, RUNNING, LiveRecord
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.core.state import RunState, evolve
from themis.core.telemetry import Progress, Signal
from themis.ports.clock import ClockPort
from themis.ports.live_progress import LiveProgressPort
from themis.threads import BackgroundCall

__all__ = ["JudgeBase", "ProgressPublisher", "PublishedStart", "publishing"]


@frozen
class JudgeBase:
    """The judge stage in verdicts where an execution starts: how many the judges ask for if
    every candidate answers, and how many the log shows given or failed (failures the execution
    retries not counted)."""

    planned: int
    given: int
    failed: int

    @classmethod
    def of(cls, start: PublishedStart) -> JudgeBase | None:
        compiled, state = start.compiled, start.state
        if not compiled.spec.judges:
            return None
        from themis.core.judging import judge_call_count  # only runs with judges need it

        verdicts = state.judgements.values()
        retrying = any(isinstance(event, FailuresRetried) for event in start.preamble)
        return cls(
            planned=judge_call_count(compiled),
            given=sum(isinstance(verdict, JudgeCompleted) for verdict in verdicts),
            failed=0 if retrying else sum(isinstance(v, JudgeFailed) for v in verdicts),
        )

    def counts(self, counts: ProgressCounts | Progress | None = None) -> StageCounts:
        """The judge stage's row at the execution's `counts`: verdicts given, failed and still
        to obtain. Once the stage has started, its pending calls replace the planned bound (a
        candidate whose generation failed has nothing to judge)."""
        counts = counts or ProgressCounts(total=0)
        judged, judge_failed, calls = counts.judged, counts.judge_failed, counts.judge_calls
        planned = self.given + self.failed + calls if calls else self.planned
        done, failed = self.given + judged, self.failed + judge_failed
        return StageCounts(Stage.JUDGE, planned, done, failed, max(0, planned - done - failed))


@frozen
class PublishedStart:
    """Where an execution starts, as live progress shows it: the run, its stored snapshot, the
    state its log shows, the stage it stops after, what it logs first (`preamble`), and the
    plan's keys when the caller has already read the whole plan (`plan_record`)."""

    compiled: CompiledRun
    snapshot: RunSnapshot
    state: RunState
    until_stage: Stage
    preamble: Sequence[Event] = ()
    plan_record: PlanRecord | None = None


class ProgressPublisher:
    """Publishes one execution's progress: a telemetry observer of its `Progress` signals.

    The per-stage counts are the state at the start of the execution plus what this execution
    completed. Every generation failure known at the start is retried by the execution (the
    planner yields it again), so failures are counted from this execution's counters alone.
    """

    def __init__(
        self,
        live: LiveProgressPort,
        record: LiveRecord,
        base: Tally,
        clock: ClockPort,
        *,
        interval: float = 0.5,
        judges: JudgeBase | None = None,
    ) -> None:
        self._live = live
        self._record = record
        self._base = base
        self._judges = judges
        self._clock = clock
        self._interval = interval
        self._last: float | None = None
        self._broken = False

    @classmethod
    def start(
        cls,
        live: LiveProgressPort,
        start: PublishedStart,
        clock: ClockPort,
        *,
        interval: float = 0.5,
    ) -> ProgressPublisher:
        """Publish the execution's starting point (the port sweeps away dead processes' records)."""
        compiled, snapshot, state = start.compiled, start.snapshot, start.state
        preamble, plan_record = start.preamble, start.plan_record
        resumed = evolve(state, [event for event in preamble if isinstance(event, RunResumed)])
        started = state.started or bool(state.generations or state.generation_failures)
        base = (
            tally(compiled, state, plan_record)[0]
            if started
            else Tally(planned=compiled.trial_count)
        )
        now = clock.now()
        judges = JudgeBase.of(start)
        stages = base.stages()
        if judges is not None:
            stages = (*stages, judges.counts())
        # Without the identity document: it views every case, and can be large.
        view = snapshot_view(snapshot, compiled, resumed, plan_record, identity=False)
        record = LiveRecord(
            format=PROGRESS_FORMAT,
            pid=live.pid,
            run_id=compiled.run_id,
            name=compiled.spec.name,
            status=RUNNING,
            started_at=now,
            updated_at=now,
            until_stage=start.until_stage,
            model_calls=0,
            state=ExecutionState(
                run_id=compiled.run_id,
                name=compiled.spec.name,
                status=RUNNING,
                completed_through_stage=state.completed_through_stage,
                planned=base.planned,
                stages=stages,
                lineage=lineage(resumed),
                truncated=base.truncated,
            ),
            snapshot=view,
        )
        publisher = cls(live, record, base, clock, interval=interval, judges=judges)
        publisher._publish(record)
        return publisher

    def __call__(self, signal: Signal) -> None:
        """Publish a `Progress` of this run, unless the last publication is younger than the
        interval; other signals (and other runs') are not its concern."""
        if not isinstance(signal, Progress) or signal.run_id != self._record.run_id:
            return
        now = self._clock.monotonic()
        if self._broken or (self._last is not None and now - self._last < self._interval):
            return
        counts = signal
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
        stages = current.stages()
        if self._judges is not None:
            stages = (*stages, self._judges.counts(counts))
        record = self._record
        self._publish(
            attrs.evolve(
                record,
                updated_at=self._clock.now(),
                model_calls=counts.model_calls,
                state=attrs.evolve(
                    record.state,
                    stages=stages,
                    holds=counts.holds,
                    truncated=current.truncated,
                ),
            )
        )

    def close(self) -> None:
        """The execution ended: withdraw its record."""
        self._live.withdraw(self._record.run_id)

    def _publish(self, record: LiveRecord) -> None:
        """Progress is best effort: once the port cannot store a record, stop trying."""
        self._broken = not self._live.publish(record)


@contextmanager
def publishing(
    live: LiveProgressPort | None,
    start: PublishedStart,
    clock: ClockPort,
    bus: TelemetryBus,
    first: Callable[[], object] | None = None,
) -> Iterator[Callable[[], None]]:
    """A `ProgressPublisher` on `live` observing `bus` while the block runs (none without
    `live`). Its record is withdrawn on exit, whether the execution finished, failed or was
    interrupted.

    With `first` (a new run's snapshot to store), `first` and then the publisher's start run in
    a thread of their own while the block runs (the execution's first calls go out meanwhile:
    ADR 0060), so a viewer lists the run only once `first` is done. The block gets `ready`,
    which waits for them and raises what they raised: the writer calls it before its first
    append. Without `first`, the record is published before the block, and `ready` returns.
    """
    publishers: list[ProgressPublisher] = []

    def begin() -> None:
        if first is not None:
            first()
        if live is not None:
            publisher = ProgressPublisher.start(live, start, clock)
            publishers.append(publisher)
            bus.subscribe(publisher)

    call = None if first is None else BackgroundCall("themis-run-start", begin)
    if call is None:
        begin()
    try:
        yield (lambda: None) if call is None else call.join
    finally:
        if call is not None:
            call.wait()
        for publisher in publishers:
            bus.unsubscribe(publisher)
            publisher.close()
