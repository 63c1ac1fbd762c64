"""The fold's laws (ARCHITECTURE §4), as hypothesis properties over logs of a small random run."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from tests.key_forms import key_forms  # noqa: F401  # every law, for both forms of keys
from tests.unit.builders import small_spec
from themis.core.events import (
    BreakerTransitioned,
    Event,
    ExecutionCompleted,
    FailuresRetried,
    GenerationCompleted,
    GenerationFailed,
    GenerationRetried,
    ParseCompleted,
    PreflightWarned,
    ReductionCompleted,
    RunCompleted,
    RunPaused,
    RunStarted,
    ScoreCompleted,
)
from themis.core.execution import CommandOutcome, StageRun
from themis.core.planner import compile_run, plan
from themis.core.reduction import plan_groups
from themis.core.report import build_report
from themis.core.retry import RetryRecord
from themis.core.spec import Case, DatasetSpec, ModelSpec, PromptSpec
from themis.core.stages import Stage
from themis.core.state import RunState, evolve, project

LAWS = settings(max_examples=100, deadline=None, derandomize=True, database=None)

# Six trials over four generations: c0 and twin render identically, so they share trial keys.
COMPILED = compile_run(
    small_spec(
        samples=1,
        datasets=(
            DatasetSpec(
                name="d",
                cases=(
                    Case(id="c0", fields={"a": 1, "b": 2}, expected="3"),
                    Case(id="twin", fields={"a": 1, "b": 2}, expected="3"),
                    Case(id="c1", fields={"a": 2, "b": 2}, expected="4"),
                ),
            ),
        ),
        models=(ModelSpec(name="m1", model="fake-1"), ModelSpec(name="m2", model="fake-2")),
        prompts=(PromptSpec(name="p", template="{{ a }} + {{ b }}"),),
    )
)
TRIALS = list(plan(COMPILED))
METRICS = [metric.name for metric in COMPILED.spec.metrics]
assert len(TRIALS) == 6
assert len({trial.trial_key for trial in TRIALS}) == 4

GROUPS = list(plan_groups(COMPILED))
groups = st.sampled_from(GROUPS)

times = st.integers(min_value=0, max_value=5).map(float)
answers = st.sampled_from(["3", "4", "three", ""])
stages = st.sampled_from([Stage.GENERATE, Stage.PARSE, Stage.SCORE])
trials = st.sampled_from(TRIALS)

generation_completed = st.builds(
    GenerationCompleted,
    at=times,
    trial_key=trials.map(lambda trial: trial.trial_key),
    text=answers,
    finish_reason=st.sampled_from([None, "stop", "length"]),
    output_tokens=st.none() | st.integers(min_value=0, max_value=9),
    attempts=st.integers(min_value=1, max_value=3),
    retries=st.sampled_from([(), (RetryRecord(1, "rate_limit", 429, 2.0, 2.0),)]),
)
generation_failed = st.builds(
    GenerationFailed,
    at=times,
    trial_key=trials.map(lambda trial: trial.trial_key),
    error_kind=st.sampled_from(["server", "timeout", "rate_limit"]),
    message=st.sampled_from(["boom", "slow"]),
    attempts=st.integers(min_value=1, max_value=3),
    execution=st.integers(min_value=0, max_value=3),
)
parse_completed = st.builds(
    lambda trial, at, answer: ParseCompleted(
        at=at,
        trial_id=trial.trial_id,
        trial_key=trial.trial_key,
        answer=answer,
        error=None if answer is not None else "no number in response",
    ),
    trials,
    times,
    st.none() | answers,
)
score_completed = st.builds(
    lambda trial, at, values: ScoreCompleted(
        at=at,
        trial_id=trial.trial_id,
        trial_key=trial.trial_key,
        scores=dict(zip(METRICS, values, strict=True)),
    ),
    trials,
    times,
    st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=len(METRICS), max_size=len(METRICS)),
)
reduction_completed = st.builds(
    lambda group, at, text, epoch: ReductionCompleted(
        at=at,
        group_id=group.group_id,
        reducer="majority",
        trial_key=None if text is None else group.members[0].trial_key,
        sample=None if text is None else 0,
        text=text,
        votes={} if text is None else {text: 1},
        epoch=epoch,
    ),
    groups,
    times,
    st.none() | answers,
    st.integers(min_value=0, max_value=1),
)
reduced_parse = st.builds(
    lambda group, at, answer: ParseCompleted(
        at=at, trial_id=group.group_id, trial_key=group.members[0].trial_key, answer=answer
    ),
    groups,
    times,
    st.none() | answers,
)
reduced_score = st.builds(
    lambda group, at, value: ScoreCompleted(
        at=at,
        trial_id=group.group_id,
        trial_key=group.members[0].trial_key,
        scores=dict.fromkeys(METRICS, value),
    ),
    groups,
    times,
    st.sampled_from([0.0, 1.0]),
)
execution_completed = st.builds(
    lambda trial, at, passed, epoch: ExecutionCompleted(
        at=at,
        trial_id=trial.trial_id,
        trial_key=trial.trial_key,
        passed=passed,
        failed_stage=None if passed else 1,
        runs=(StageRun(1, "python3 x.py", CommandOutcome(0 if passed else 1, 0.5)),),
        epoch=epoch,
    ),
    trials,
    times,
    st.booleans(),
    st.integers(min_value=0, max_value=1),
)
executions = st.integers(min_value=0, max_value=3)
run_started = st.builds(
    RunStarted,
    at=times,
    planned=st.integers(min_value=0, max_value=8),
    until_stage=stages,
    execution=executions,
)
run_completed = st.builds(RunCompleted, at=times, completed_through_stage=stages)
run_paused = st.builds(
    RunPaused,
    at=times,
    reason=st.just("cost_limit"),
    spent=st.sampled_from([None, 0.5]),
    execution=executions,
)
generation_retried = st.builds(
    GenerationRetried,
    at=times,
    trial_key=trials.map(lambda trial: trial.trial_key),
    attempt=st.integers(min_value=1, max_value=3),
    error_kind=st.sampled_from(["server", "rate_limit"]),
    message=st.just("boom"),
)
preflight_warned = st.builds(
    PreflightWarned,
    at=times,
    trial_key=trials.map(lambda trial: trial.trial_key),
    required_tokens=st.integers(min_value=800, max_value=900),
    context_window=st.just(1000),
)
breaker_transitioned = st.builds(
    BreakerTransitioned,
    at=times,
    provider=st.just("fake"),
    before=st.sampled_from(["closed", "open"]),
    after=st.sampled_from(["open", "half_open"]),
    reason=st.just("why"),
)

failures_retried = st.builds(
    FailuresRetried,
    at=times,
    execution=st.integers(min_value=1, max_value=3),
    trial_keys=st.lists(trials.map(lambda trial: trial.trial_key), unique=True).map(
        lambda keys: tuple(sorted(keys))
    ),
)

events_st = st.one_of(
    generation_completed,
    generation_failed,
    parse_completed,
    score_completed,
    run_started,
    run_completed,
    run_paused,
    generation_retried,
    preflight_warned,
    breaker_transitioned,
    reduction_completed,
    reduced_parse,
    reduced_score,
    execution_completed,
    failures_retried,
)
logs = st.lists(events_st, max_size=24)


_GROUP_IDS = frozenset(group.group_id for group in GROUPS)


def _subject(event: Event) -> str:
    """Independent subjects: a generation (shared by twins) with its trials' results, a group's
    reduction with its candidate's results, or the run."""
    group = getattr(event, "group_id", None) or getattr(event, "trial_id", None)
    if group in _GROUP_IDS:
        return group
    return getattr(event, "trial_key", None) or "run"


@pytest.mark.parametrize(
    "kind",
    [
        GenerationCompleted,
        GenerationFailed,
        ParseCompleted,
        ScoreCompleted,
        RunStarted,
        RunCompleted,
        RunPaused,
        GenerationRetried,
        PreflightWarned,
        BreakerTransitioned,
        ReductionCompleted,
        ExecutionCompleted,
        FailuresRetried,
    ],
)
def test_generated_logs_cover_every_event_kind(kind: type) -> None:
    # Guard against a strategy that silently stops producing some kind of event.
    found = find(
        events_st, lambda event: isinstance(event, kind), settings=settings(LAWS, max_examples=500)
    )
    assert isinstance(found, kind)


@LAWS
@given(logs)
def test_fold_is_deterministic(events: list[Event]) -> None:
    once = project(events)
    assert project(events) == once
    assert project(iter(events)) == once
    assert build_report(COMPILED, project(events)) == build_report(COMPILED, once)


@LAWS
@given(logs)
def test_prefix_composition(events: list[Event]) -> None:
    whole = project(events)
    for split in range(len(events) + 1):
        assert evolve(project(events[:split]), events[split:]) == whole, f"split at {split}"


@LAWS
@given(logs)
def test_duplicate_delivery_is_a_no_op(events: list[Event]) -> None:
    whole = project(events)
    assert project(events + events) == whole
    for original, event in enumerate(events):
        for position in range(original + 1, len(events) + 1):
            redelivered = [*events[:position], event, *events[position:]]
            assert project(redelivered) == whole, f"copy of #{original} inserted at {position}"


def _interleave(events: Sequence[Event], order: Sequence[str]) -> list[Event]:
    queues: dict[str, deque[Event]] = defaultdict(deque)
    for event in events:
        queues[_subject(event)].append(event)
    return [queues[subject].popleft() for subject in order]


@LAWS
@given(logs, st.data())
def test_arrival_order_of_independent_trials_does_not_matter(
    events: list[Event], data: st.DataObject
) -> None:
    subjects = [_subject(event) for event in events]
    order = data.draw(st.permutations(subjects), label="arrival order")
    arrived = _interleave(events, order)
    assert sorted(map(repr, arrived)) == sorted(map(repr, events))
    state = project(events)
    assert project(arrived) == state
    assert build_report(COMPILED, project(arrived)) == build_report(COMPILED, state)


def test_completion_outranks_failure_in_either_order() -> None:
    key = TRIALS[0].trial_key
    done = GenerationCompleted(at=1.0, trial_key=key, text="3")
    failure = GenerationFailed(at=2.0, trial_key=key, error_kind="server", message="500")
    orders: list[list[Event]] = [[done, failure], [failure, done]]
    for events in orders:
        state = project(events)
        assert state.failed_generation(key) is None
        assert key not in state.failed_keys
        assert state.generations[key] == done


@LAWS
@given(logs)
def test_the_failed_keys_are_the_failures_without_a_generation(events: list[Event]) -> None:
    # Found by looking the failures up among the generations (ADR 0086), as a set difference.
    state = project(events)
    failed = {key for key in state.generation_failures if key not in set(state.generations)}
    assert state.failed_keys == failed


def test_a_later_executions_failure_stands_and_the_earlier_ones_become_history() -> None:
    key = TRIALS[0].trial_key
    first = GenerationFailed(at=1.0, trial_key=key, error_kind="auth", message="401", execution=1)
    second = GenerationFailed(
        at=5.0, trial_key=key, error_kind="server", message="503", execution=2
    )
    third = GenerationFailed(at=9.0, trial_key=key, error_kind="server", message="502", execution=3)
    retried = FailuresRetried(at=4.0, execution=2, trial_keys=(key,))
    logs: list[list[Event]] = [
        [first, retried, second, third],
        [third, second, first],
        [second, first, third, first],
    ]
    for events in logs:
        state = project(events)
        assert state.failed_generation(key) == third
        assert state.earlier_failures[key] == (first, second)
        assert state.failure_history(key) == (first, second)
    done = GenerationCompleted(at=12.0, trial_key=key, text="3")
    recovered = project([first, retried, second, done])
    assert recovered.failed_generation(key) is None
    assert recovered.failure_history(key) == (first, second)


def test_empty_log_projects_to_the_initial_state() -> None:
    assert project([]) == RunState()
    assert evolve(RunState(), []) == RunState()


def test_a_pause_holds_until_a_later_execution_starts() -> None:
    first = RunStarted(at=1.0, planned=1, execution=1)
    paused = RunPaused(at=2.0, reason="cost_limit", spent=1.5, execution=1)
    assert project([first, paused]).paused
    assert build_report(COMPILED, project([first, paused])).status == "paused"
    resumed = RunStarted(at=0.5, planned=1, execution=2)  # a clock may restart: order by number
    for events in ([first, paused, resumed], [resumed, first, paused]):
        state = project(events)
        assert not state.paused
        assert state.pause == paused
        assert build_report(COMPILED, state).status == "incomplete"
