"""The effect interpreter: runs pending trials through the ports, concurrently, under trio.

Shape: a nursery of trial tasks, admitted by a global `CapacityLimiter` (`max_concurrent_tasks`)
as the lazy plan is consumed, with per-stage and per-provider limiters around the work itself;
every event goes through one bounded channel to a single `EventWriter` task, which group-commits
batches to the store and keeps the projection current. On cancellation the writer's final flush
is shielded, so what was produced before an interrupt is not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs
import trio
from attrs import define, frozen

from themis.app.writer import EventWriter
from themis.core.events import (
    Event,
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
    RunCompleted,
    RunStarted,
    ScoreCompleted,
)
from themis.core.generation import ModelCallError
from themis.core.planner import CompiledRun, PendingTrial, TrialPlan
from themis.core.retry import RetryPolicy, retry_delay
from themis.core.runtime import RuntimeConfig
from themis.core.scoring import parse_answer, score_answer
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort


@define
class ProgressCounts:
    """Live counters the interpreter bumps and a display reads on its own schedule.

    `done` and `failed` count trials of this execution (through its last stage, or failed at
    generation); `generated`, `parsed`, `unparsed` and `scored` count the trials whose stage
    this execution completed, for live per-stage progress (`themis.app.live`).
    """

    total: int
    done: int = 0
    failed: int = 0
    model_calls: int = 0
    generated: int = 0
    parsed: int = 0
    unparsed: int = 0
    scored: int = 0


ProgressCallback = Callable[[ProgressCounts], None]
# Generations other runs of the store completed, by trial key: `(source run id, the event)`.
Reusable = Mapping[str, tuple[str, GenerationCompleted]]


@frozen
class ExecutionResult:
    state: RunState
    counts: ProgressCounts
    completed: bool


class _Unlimited:
    """An async context manager that admits everyone at once, with no scheduling cost."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_UNLIMITED = _Unlimited()
Limit = trio.CapacityLimiter | _Unlimited


class _Limiters:
    """The limiters around each stage and provider; an unset limit costs nothing."""

    def __init__(self, runtime: RuntimeConfig) -> None:
        self.stages: dict[Stage, Limit] = {
            stage: _limit(runtime.stage_concurrency.get(stage.value)) for stage in Stage
        }
        self._provider_limits = runtime.provider_concurrency
        self._providers: dict[str, Limit] = {}

    def provider(self, name: str) -> Limit:
        limiter = self._providers.get(name)
        if limiter is None:
            limiter = self._providers[name] = _limit(self._provider_limits.get(name))
        return limiter


def _limit(capacity: int | None) -> Limit:
    return _UNLIMITED if capacity is None else trio.CapacityLimiter(capacity)


class _Run:
    """One execution's shared context; each trial task is a method call on it."""

    def __init__(
        self,
        state: RunState,
        runtime: RuntimeConfig,
        models: Mapping[str, ModelPort],
        clock: ClockPort,
        send: trio.MemorySendChannel[list[Event]],
        counts: ProgressCounts,
        compiled: CompiledRun,
        reusable: Reusable | None = None,
    ) -> None:
        self.state = state
        self.reusable: Reusable = reusable or {}
        self.models = models
        self.clock = clock
        self.send = send
        self.counts = counts
        self.limiters = _Limiters(runtime)
        self.retry = RetryPolicy(
            runtime.generation_retry_attempts,
            runtime.generation_retry_delay,
            runtime.generation_retry_backoff,
        )
        self.parser = compiled.spec.parser
        self.metrics = compiled.spec.metrics
        self.generated: dict[str, GenerationCompleted | GenerationFailed] = {}
        self.in_flight: dict[str, trio.Event] = {}

    async def trial(self, item: PendingTrial, admission: trio.CapacityLimiter) -> None:
        try:
            events: list[Event] = []
            await self._trial(item, events)
            if events:  # one send for the trial's parse and score (see `_generation`)
                await self.send.send(events)
        finally:
            admission.release_on_behalf_of(item.plan.trial_id)

    async def _trial(self, item: PendingTrial, events: list[Event]) -> None:
        trial = item.plan
        if Stage.GENERATE in item.stages:
            outcome = await self._generation(trial, events)
        else:
            outcome = self.state.generations[trial.trial_key]
        if isinstance(outcome, GenerationFailed):
            self.counts.failed += 1
            return
        if Stage.GENERATE in item.stages:
            self.counts.generated += 1
        if Stage.PARSE not in item.stages and Stage.SCORE not in item.stages:  # until generate
            self.counts.done += 1
            return
        parse = self.state.parses.get(trial.trial_id)
        if Stage.PARSE in item.stages or parse is None:
            async with self.limiters.stages[Stage.PARSE]:
                answer = parse_answer(self.parser, outcome.text)
            parse = ParseCompleted(
                at=self.clock.now(),
                trial_id=trial.trial_id,
                trial_key=trial.trial_key,
                answer=answer.value_or(None),
                error=answer.swap().value_or(None),
                epoch=self.state.epoch,
            )
            events.append(parse)
            if parse.answer is None:
                self.counts.unparsed += 1
            else:
                self.counts.parsed += 1
        if Stage.SCORE in item.stages:
            async with self.limiters.stages[Stage.SCORE]:
                scores = {
                    m.name: score_answer(m, parse.answer, trial.expected) for m in self.metrics
                }
            events.append(
                ScoreCompleted(
                    at=self.clock.now(),
                    trial_id=trial.trial_id,
                    trial_key=trial.trial_key,
                    scores=scores,
                    epoch=self.state.epoch,
                )
            )
            self.counts.scored += 1
        self.counts.done += 1

    async def _generation(
        self, trial: TrialPlan, events: list[Event]
    ) -> GenerationCompleted | GenerationFailed:
        """Call the model once per `trial_key`; a twin trial waits for and reuses the result.

        A generation another run completed (`reusable`) is recorded as a cache hit instead of
        a call: the original event with `cache_hit`, `source_run` and the time of reuse.
        """
        key = trial.trial_key
        while key in self.in_flight:
            await self.in_flight[key].wait()
        known = self.generated.get(key)
        if known is not None:
            return known
        done = self.in_flight[key] = trio.Event()
        try:
            reused = self.reusable.get(key)
            outcome: GenerationCompleted | GenerationFailed
            if reused is not None:
                source_run, original = reused
                outcome = attrs.evolve(
                    original, at=self.clock.now(), cache_hit=True, source_run=source_run
                )
            else:
                outcome = await self._call_model(trial)
            self.generated[key] = outcome
            # Sent now, not with the trial's other events: a twin may reuse it as soon as it is
            # no longer in flight, and its parse must not reach the log before this generation.
            await self.send.send([outcome])
            return outcome
        finally:
            del self.in_flight[key]
            done.set()

    async def _call_model(self, trial: TrialPlan) -> GenerationCompleted | GenerationFailed:
        request = trial.request
        model = self.models[request.provider]
        attempt = 0
        while True:
            attempt += 1
            started = self.clock.monotonic()
            try:
                async with (
                    self.limiters.stages[Stage.GENERATE],
                    self.limiters.provider(request.provider),
                ):
                    self.counts.model_calls += 1
                    response = await model.generate(request)
            except ModelCallError as error:
                delay = retry_delay(self.retry, attempt, error.kind, error.retry_after_s)
                if delay is None:
                    return GenerationFailed(
                        at=self.clock.now(),
                        trial_key=request.trial_key,
                        error_kind=error.kind,
                        message=error.message,
                        attempts=attempt,
                    )
                await self.clock.sleep(delay)
                continue
            return GenerationCompleted(
                at=self.clock.now(),
                trial_key=request.trial_key,
                text=response.text,
                finish_reason=response.finish_reason,
                input_tokens=response.input_tokens,
                output_tokens=response.output_tokens,
                latency_s=self.clock.monotonic() - started,
                served_model=response.served_model,
                attempts=attempt,
            )


async def execute(
    compiled: CompiledRun,
    state: RunState,
    work: Iterable[PendingTrial],
    *,
    total: int,
    runtime: RuntimeConfig,
    models: Mapping[str, ModelPort],
    clock: ClockPort,
    writer: EventWriter,
    until_stage: Stage = Stage.SCORE,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 0.25,
    preamble: Sequence[Event] = (),
    reusable: Reusable | None = None,
) -> ExecutionResult:
    """Run `work` to the end (or until cancelled) and return the state the log now shows.

    `reusable` holds generations of other runs to record as cache hits instead of calling.
    """
    counts = ProgressCounts(total=total)
    send, receive = trio.open_memory_channel[list[Event]](max(1, runtime.store_batch_size // 3))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, receive)
        if on_progress is not None:
            nursery.start_soon(_report_progress, on_progress, counts, progress_interval)
        async with send:
            started = RunStarted(
                at=clock.now(), planned=compiled.trial_count, until_stage=until_stage
            )
            await send.send([*preamble, started])
            run = _Run(state, runtime, models, clock, send, counts, compiled, reusable)
            admission = trio.CapacityLimiter(runtime.max_concurrent_tasks)
            async with trio.open_nursery() as trials:
                for item in work:
                    await admission.acquire_on_behalf_of(item.plan.trial_id)
                    trials.start_soon(run.trial, item, admission)
            await send.send(
                [
                    RunCompleted(
                        at=clock.now(), completed_through_stage=until_stage, epoch=state.epoch
                    )
                ]
            )
        await writer.closed.wait()
        nursery.cancel_scope.cancel()
    if on_progress is not None:
        on_progress(counts)
    return ExecutionResult(state=writer.state(), counts=counts, completed=True)


async def _report_progress(
    callback: ProgressCallback, counts: ProgressCounts, interval: float
) -> None:
    while True:
        callback(counts)
        await trio.sleep(interval)


__all__ = ["ExecutionResult", "ProgressCounts", "execute"]
