"""The facts a run records, in the past tense. The event log is the only source of truth.

Each class carries a stable `kind` tag (what the codec and the `events.kind` column store) and a
`schema_version`; renaming a class never changes either. Time (`at`, epoch seconds) is passed in
from the `ClockPort`, never read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from attrs import field, frozen

from themis.core.execution import StageRun
from themis.core.generation import ModelResponse, TokenLogprob
from themis.core.retry import RetryRecord
from themis.core.stages import Stage


def _scores(value: Mapping[str, float]) -> Mapping[str, float]:
    return dict(value)


@frozen
class RunStarted:
    """Execution began (or resumed) with `planned` trials, aiming to finish `until_stage`.

    `execution` numbers the executions of a run (1, 2, ...; 0 in logs written before they were
    numbered), so that a `RunPaused` can tell whether a later execution superseded it.
    """

    kind: ClassVar[str] = "run_started"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    planned: int
    until_stage: Stage = Stage.SCORE
    execution: int = 0


@frozen
class _AboutRequest:
    """What every event about one model request says first: when, and the request's key."""

    at: float
    trial_key: str


@frozen
class _AboutTrialResult:
    """What every result computed for one candidate says first: when, the trial (or group) it
    is for, and the key of the generation it came from."""

    at: float
    trial_id: str
    trial_key: str


@frozen
class AboutJudgeCall:
    """What both judge events say first: judge `judge`'s model `model`, its `repeat`-th verdict
    on `candidate_id` (a trial id, a group id, or a pair's id), and `call_key`, the call's
    content key (the call itself is the `GenerationCompleted`/`GenerationFailed` of that key)."""

    at: float
    judge: str
    candidate_id: str
    model: str
    repeat: int
    call_key: str

    @property
    def judgement_id(self) -> str:
        """The verdict's key in `RunState.judgements` (`judgement_id`)."""
        return judgement_id(self.judge, self.candidate_id, self.model, self.repeat)


@frozen
class GenerationCompleted(_AboutRequest):
    """A model answered the request addressed by `trial_key`.

    `logprobs` holds the answer's token log-probabilities when the model's params asked for them
    (`logprobs = k`) and the endpoint returned them; `None` otherwise.
    """

    kind: ClassVar[str] = "generation_completed"
    stage: ClassVar[Stage | None] = Stage.GENERATE
    schema_version: ClassVar[int] = 1
    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float = 0.0
    served_model: str | None = None
    attempts: int = 1
    cache_hit: bool = False
    source_run: str | None = None
    # Provenance the endpoint reported: its id for this response and its backend fingerprint.
    response_id: str | None = None
    system_fingerprint: str | None = None
    # The failed attempts before the one that answered (a transient recovery when not empty).
    retries: tuple[RetryRecord, ...] = ()
    logprobs: tuple[TokenLogprob, ...] | None = None

    @classmethod
    def of_response(
        cls,
        at: float,
        trial_key: str,
        response: ModelResponse,
        *,
        latency_s: float = 0.0,
        attempts: int = 1,
        retries: tuple[RetryRecord, ...] = (),
    ) -> GenerationCompleted:
        """`response` recorded as the answer of `trial_key`, with what the call itself recorded
        (`latency_s`, `attempts`, `retries`). Every field given by position, in the class's
        order: ~1 us less than by name with the call's part as `**kwargs` (once a trial)."""
        return cls(
            at,
            trial_key,
            response.text,
            response.finish_reason,
            response.input_tokens,
            response.output_tokens,
            latency_s,
            response.served_model,
            attempts,
            False,  # cache_hit
            None,  # source_run
            response.response_id,
            response.system_fingerprint,
            retries,
            response.logprobs,
        )

    def reused(self, at: float, source_run: str) -> GenerationCompleted:
        """This generation, which run `source_run` logged, recorded as another run's: a cache
        hit at `at`, with no retry history (that run made no attempt). Every field given by
        position, in the class's order (as `of_response`): `attrs.evolve` took ~8 µs, every
        field named ~1.5 (a replay makes 100k of them; ADR 0070, ADR 0108)."""
        return GenerationCompleted(
            at,
            self.trial_key,
            self.text,
            self.finish_reason,
            self.input_tokens,
            self.output_tokens,
            self.latency_s,
            self.served_model,
            self.attempts,
            True,  # cache_hit
            source_run,
            self.response_id,
            self.system_fingerprint,
            (),  # retries
            self.logprobs,
        )


@frozen
class GenerationFailed(_AboutRequest):
    """The request addressed by `trial_key` failed for good; `error_kind` classifies why.

    `retries` holds every failed attempt, the last one included (its `delay` is `None`).
    `attempts` is 0 when no call was made (e.g. `preflight`). A call that answered but was
    refused afterwards (`cost_limit`) keeps the usage it reported, so its cost still counts.
    `execution` is the execution that made the attempts (0 in logs written before it was
    recorded): a later execution's failure of the same key supersedes it in the state, which
    keeps the earlier one as history (`themis resume --retry-failed`).
    """

    kind: ClassVar[str] = "generation_failed"
    stage: ClassVar[Stage | None] = Stage.GENERATE
    schema_version: ClassVar[int] = 1
    error_kind: str
    message: str
    attempts: int = 1
    retries: tuple[RetryRecord, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    execution: int = 0


@frozen
class FailuresRetried:
    """Execution `execution` attempts again the trials whose generation had failed for good
    (`trial_keys`, distinct, sorted), as the user asked (`resume --retry-failed`). Their earlier
    failures stay in the log and in the state's history."""

    kind: ClassVar[str] = "failures_retried"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    execution: int
    trial_keys: tuple[str, ...] = ()


@frozen
class GenerationRetried(_AboutRequest):
    """Attempt `attempt` at `trial_key` failed with `error_kind` and is retried after `delay_s`.

    `retry_after_s` is the server's own hint, when it gave one (it then decided `delay_s`).
    """

    kind: ClassVar[str] = "generation_retried"
    stage: ClassVar[Stage | None] = Stage.GENERATE
    schema_version: ClassVar[int] = 1
    attempt: int
    error_kind: str
    message: str
    status: int | None = None
    delay_s: float = 0.0
    retry_after_s: float | None = None


@frozen
class PreflightWarned(_AboutRequest):
    """The request of `trial_key` needs `required_tokens`, over the warning share of its model's
    `context_window` (the call was still made)."""

    kind: ClassVar[str] = "preflight_warned"
    stage: ClassVar[Stage | None] = Stage.GENERATE
    schema_version: ClassVar[int] = 1
    required_tokens: int
    context_window: int


def _votes(value: Mapping[str, int]) -> Mapping[str, int]:
    return dict(value)


@frozen
class ReductionCompleted:
    """The samples of group `group_id` (one dataset case × model × prompt) were reduced by
    `reducer` to one candidate: sample `sample`'s generation (`trial_key`, `text`), or to none
    when no sample answered. `votes` holds the majority vote's counts per parsed answer.

    The reduced candidate's parse and score are `ParseCompleted`/`ScoreCompleted` events whose
    `trial_id` is the `group_id`.
    """

    kind: ClassVar[str] = "reduction_completed"
    stage: ClassVar[Stage | None] = Stage.REDUCE
    schema_version: ClassVar[int] = 1
    at: float
    group_id: str
    reducer: str
    trial_key: str | None
    sample: int | None
    text: str | None
    votes: Mapping[str, int] = field(factory=dict, converter=_votes)
    epoch: int = 0


def _messages(value: Iterable[Iterable[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((role, content) for role, content in value)


@frozen
class JudgeCompleted(AboutJudgeCall):
    """Judge `judge`'s model `model` gave its `repeat`-th verdict on candidate `candidate_id`
    (a trial id, a group id, or for a pairwise judge the pair's id).

    `call_key` addresses the judge's call by content: the call itself is the
    `GenerationCompleted` of that key (retry history, usage, served model), so an identical call
    in another run or a resume is reused, never repeated. `messages` is the rendered judge
    prompt as `(role, content)` pairs, `text` the raw response, `verdict` what the parser read
    and `score` its value in [0, 1] (for a pairwise judge: the first model's, order undone);
    `swapped` says the pair was shown in reverse order.
    """

    kind: ClassVar[str] = "judge_completed"
    stage: ClassVar[Stage | None] = Stage.JUDGE
    schema_version: ClassVar[int] = 1
    messages: tuple[tuple[str, str], ...] = field(converter=_messages)
    text: str
    verdict: str
    score: float
    criteria: Mapping[str, float] = field(factory=dict, converter=_scores)
    served_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    swapped: bool = False
    epoch: int = 0


@frozen
class JudgeFailed(AboutJudgeCall):
    """Judge `judge`'s model `model` gave no usable `repeat`-th verdict on `candidate_id`: the
    call failed for good (`error_kind` from the retry taxonomy, its history on the call's
    `GenerationFailed`) or the response did not parse (`unparseable_verdict`, `text` kept)."""

    kind: ClassVar[str] = "judge_failed"
    stage: ClassVar[Stage | None] = Stage.JUDGE
    schema_version: ClassVar[int] = 1
    error_kind: str
    message: str
    messages: tuple[tuple[str, str], ...] = field(converter=_messages)
    text: str | None = None
    swapped: bool = False
    epoch: int = 0
    execution: int = 0  # the execution that recorded it: a later one's supersedes it


def judgement_id(judge: str, candidate_id: str, model: str, repeat: int) -> str:
    """The key of one verdict in `RunState.judgements`."""
    return f"{judge}\x1f{candidate_id}\x1f{model}\x1f{repeat}"


def _stage_runs(value: Iterable[StageRun]) -> tuple[StageRun, ...]:
    return tuple(value)


@frozen
class ExecutionCompleted(_AboutTrialResult):
    """The `execution` metric ran the candidate of `trial_id` (a trial, or a group's reduced
    candidate): whether every validation stage passed, whether skip-when skipped it, the first
    stage that failed, and every command it ran with its exit code, duration, timeout and output
    tails (the skip-when check as stage 0). Its score is in the `ScoreCompleted` beside it."""

    kind: ClassVar[str] = "execution_completed"
    stage: ClassVar[Stage | None] = Stage.SCORE
    schema_version: ClassVar[int] = 1
    passed: bool
    skipped: bool = False
    failed_stage: int | None = None
    runs: tuple[StageRun, ...] = field(default=(), converter=_stage_runs)
    epoch: int = 0


@frozen
class ParseCompleted(_AboutTrialResult):
    """The answer parsed from trial `trial_id`'s generation, or why there was none."""

    kind: ClassVar[str] = "parse_completed"
    stage: ClassVar[Stage | None] = Stage.PARSE
    schema_version: ClassVar[int] = 1
    answer: str | None
    error: str | None = None
    epoch: int = 0


@frozen
class ScoreCompleted(_AboutTrialResult):
    """The score of every metric for trial `trial_id`."""

    kind: ClassVar[str] = "score_completed"
    stage: ClassVar[Stage | None] = Stage.SCORE
    schema_version: ClassVar[int] = 1
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


@frozen
class BreakerTransitioned:
    """The circuit breaker of `provider` went from state `before` to `after`, for `reason`."""

    kind: ClassVar[str] = "breaker_transitioned"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    provider: str
    before: str
    after: str
    reason: str


@frozen
class RunPaused:
    """Execution `execution` stopped dispatching for `reason` (e.g. `cost_limit`), with `spent`
    so far; its calls in flight finished first. Resuming (with a raised limit) continues it."""

    kind: ClassVar[str] = "run_paused"
    stage: ClassVar[Stage | None] = None
    schema_version: ClassVar[int] = 1
    at: float
    reason: str
    spent: float | None = None
    execution: int = 0


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
    | GenerationRetried
    | PreflightWarned
    | BreakerTransitioned
    | RunPaused
    | ReductionCompleted
    | ExecutionCompleted
    | FailuresRetried
    | JudgeCompleted
    | JudgeFailed
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
    GenerationRetried,
    PreflightWarned,
    BreakerTransitioned,
    RunPaused,
    ReductionCompleted,
    ExecutionCompleted,
    FailuresRetried,
    JudgeCompleted,
    JudgeFailed,
)


def subject_key(event: Event) -> str | None:
    """The trial key an event is about (the `events.trial_key` column), if any."""
    return getattr(event, "trial_key", None)
