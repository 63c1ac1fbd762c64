"""The facts a run records, in the past tense. The event log is the only source of truth.

Each class carries a stable `kind` tag (what the codec and the `events.kind` column store) and a
`schema_version`; renaming a class never changes either. Time (`at`, epoch seconds) is passed in
from the `ClockPort`, never read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from attrs import field, frozen

from themis.core.stages import Stage


def _scores(value: Mapping[str, float]) -> Mapping[str, float]:
    return dict(value)


@frozen
class RunStarted:
    """Execution began (or resumed) with `planned` trials, aiming to finish `until_stage`."""

    kind: ClassVar[str] = "run_started"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    planned: int
    until_stage: Stage = Stage.SCORE


@frozen
class GenerationCompleted:
    """A model answered the request addressed by `trial_key`."""

    kind: ClassVar[str] = "generation_completed"
    stage: ClassVar[Stage | None] = Stage.GENERATE
    schema_version: ClassVar[int] = 1
    at: float
    trial_key: str
    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float = 0.0
    served_model: str | None = None
    attempts: int = 1
    cache_hit: bool = False
    source_run: str | None = None


@frozen
class GenerationFailed:
    """Every attempt at the request addressed by `trial_key` failed; `error_kind` classifies why."""

    kind: ClassVar[str] = "generation_failed"
    stage: ClassVar[Stage | None] = Stage.GENERATE
    schema_version: ClassVar[int] = 1
    at: float
    trial_key: str
    error_kind: str
    message: str
    attempts: int = 1


@frozen
class ParseCompleted:
    """The answer parsed from trial `trial_id`'s generation, or why there was none."""

    kind: ClassVar[str] = "parse_completed"
    stage: ClassVar[Stage | None] = Stage.PARSE
    schema_version: ClassVar[int] = 1
    at: float
    trial_id: str
    trial_key: str
    answer: str | None
    error: str | None = None
    epoch: int = 0


@frozen
class ScoreCompleted:
    """The score of every metric for trial `trial_id`."""

    kind: ClassVar[str] = "score_completed"
    stage: ClassVar[Stage | None] = Stage.SCORE
    schema_version: ClassVar[int] = 1
    at: float
    trial_id: str
    trial_key: str
    scores: Mapping[str, float] = field(converter=_scores)
    epoch: int = 0


@frozen
class RunCompleted:
    """Every planned trial is done through `completed_through_stage`."""

    kind: ClassVar[str] = "run_completed"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    completed_through_stage: Stage
    epoch: int = 0


@frozen
class StageReset:
    """`replay --stage`: results of `reset_stage` and later stages from before `epoch` are void.

    Epochs number the resets (1, 2, ...) and every result carries the epoch it was computed in,
    so the fold stays order-independent: a result counts iff its epoch is at least the latest
    reset epoch of its stage.
    """

    kind: ClassVar[str] = "stage_reset"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    reset_stage: Stage
    epoch: int


def _changes(value: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return {key: dict(change) for key, change in value.items()}


@frozen
class RunResumed:
    """Execution continued with different runtime settings: each field's `old` and `new` value."""

    kind: ClassVar[str] = "run_resumed"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    changes: Mapping[str, Mapping[str, Any]] = field(converter=_changes)


Event = (
    RunStarted
    | GenerationCompleted
    | GenerationFailed
    | ParseCompleted
    | ScoreCompleted
    | RunCompleted
    | StageReset
    | RunResumed
)

EVENT_TYPES: tuple[type[Event], ...] = (
    RunStarted,
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
    ScoreCompleted,
    RunCompleted,
    StageReset,
    RunResumed,
)


def subject_key(event: Event) -> str | None:
    """The trial key an event is about (the `events.trial_key` column), if any."""
    return getattr(event, "trial_key", None)
