"""Telemetry: typed signals about an execution, for observers (a progress display, a JSON-lines
log, OpenTelemetry spans) rather than for the record.

The event log stays the one source of truth; these are derived from it as it is written
(`signal_of`), plus the execution's start, progress counters and end, which the use case tells
as they happen (the log's `RunStarted` reaches the store with the first batch, after work
began). Each signal names its run and carries the time it happened (epoch seconds, from the
`ClockPort`). `include_text` decides whether a trial's answer text travels with it
(`[storage] store_item_payloads`).

Delivering the signals to observers is `themis.app.execution.telemetry`'s `TelemetryBus` (the
same concept, in the shell).
"""

from __future__ import annotations

from typing import ClassVar

from attrs import frozen

from themis.core.events import (
    BreakerTransitioned,
    Event,
    GenerationCompleted,
    GenerationFailed,
    GenerationRetried,
    RunPaused,
)
from themis.core.provider_state import ProviderHold

__all__ = [
    "BreakerChanged",
    "ExecutionFinished",
    "ExecutionStarted",
    "Paused",
    "Progress",
    "Retried",
    "Signal",
    "TrialDone",
    "TrialFailed",
    "signal_of",
]


@frozen
class ExecutionStarted:
    """An execution of `run_id` began with `planned` trials, aiming to finish `until_stage`."""

    kind: ClassVar[str] = "run_started"
    run_id: str
    at: float
    planned: int
    until_stage: str
    execution: int


@frozen
class ExecutionFinished:
    """The execution ended: the run's `status` then, trials executed and model calls made."""

    kind: ClassVar[str] = "run_finished"
    run_id: str
    at: float
    status: str
    executed: int
    model_calls: int


@frozen
class TrialDone:
    """A generation completed (`latency_s` long, ending at `at`); `text` only with payloads."""

    kind: ClassVar[str] = "trial_done"
    run_id: str
    at: float
    trial_key: str
    latency_s: float
    attempts: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    served_model: str | None = None
    cache_hit: bool = False
    text: str | None = None


@frozen
class TrialFailed:
    """A generation failed for good, for `error_kind`."""

    kind: ClassVar[str] = "trial_failed"
    run_id: str
    at: float
    trial_key: str
    error_kind: str
    message: str
    attempts: int


@frozen
class Retried:
    """Attempt `attempt` of a generation failed with `error_kind`; retried after `delay_s`."""

    kind: ClassVar[str] = "retry"
    run_id: str
    at: float
    trial_key: str
    attempt: int
    error_kind: str
    delay_s: float


@frozen
class BreakerChanged:
    """A provider's circuit breaker went from `before` to `after`."""

    kind: ClassVar[str] = "breaker_changed"
    run_id: str
    at: float
    provider: str
    before: str
    after: str
    reason: str


@frozen
class Paused:
    """The execution stopped dispatching for `reason` (e.g. `cost_limit`)."""

    kind: ClassVar[str] = "paused"
    run_id: str
    at: float
    reason: str
    spent: float | None = None


@frozen
class Progress:
    """The execution's counters, a few times a second: what a progress display draws (and
    what live progress publishes for other processes: the per-stage counts `generated`,
    `parsed`, `unparsed`, `scored`, and `truncated` generations)."""

    kind: ClassVar[str] = "progress"
    run_id: str
    at: float
    total: int
    done: int
    failed: int
    model_calls: int
    reduced: int = 0
    judged: int = 0
    judge_failed: int = 0
    judge_calls: int = 0
    holds: tuple[ProviderHold, ...] = ()
    generated: int = 0
    parsed: int = 0
    unparsed: int = 0
    scored: int = 0
    truncated: int = 0


Signal = (
    ExecutionStarted
    | ExecutionFinished
    | TrialDone
    | TrialFailed
    | Retried
    | BreakerChanged
    | Paused
    | Progress
)


def signal_of(run_id: str, event: Event, *, include_text: bool = True) -> Signal | None:
    """The signal a logged event of `run_id` gives, if any (most downstream events give none)."""
    if isinstance(event, GenerationCompleted):
        return TrialDone(
            run_id=run_id,
            at=event.at,
            trial_key=event.trial_key,
            latency_s=event.latency_s,
            attempts=event.attempts,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            served_model=event.served_model,
            cache_hit=event.cache_hit,
            text=event.text if include_text else None,
        )
    if isinstance(event, GenerationFailed):
        return TrialFailed(
            run_id, event.at, event.trial_key, event.error_kind, event.message, event.attempts
        )
    if isinstance(event, GenerationRetried):
        return Retried(
            run_id, event.at, event.trial_key, event.attempt, event.error_kind, event.delay_s
        )
    if isinstance(event, BreakerTransitioned):
        return BreakerChanged(
            run_id, event.at, event.provider, event.before, event.after, event.reason
        )
    if isinstance(event, RunPaused):
        return Paused(run_id, event.at, event.reason, event.spent)
    return None
