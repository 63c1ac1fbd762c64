"""Small specs and events shared by the unit tests of the pure core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from themis.core.events import GenerationCompleted, GenerationFailed, ParseCompleted, ScoreCompleted
from themis.core.planner import TrialPlan
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)


def cases(count: int, *, prefix: str = "c") -> tuple[Case, ...]:
    """`count` arithmetic questions whose expected answer is the sum."""
    return tuple(
        Case(id=f"{prefix}{index}", fields={"a": index, "b": 2 * index}, expected=str(3 * index))
        for index in range(count)
    )


def small_spec(**overrides: Any) -> ExperimentSpec:
    """Two cases, two models, two prompts, two samples; every keyword replaces one field."""
    values: dict[str, Any] = {
        "seed": 7,
        "samples": 2,
        "datasets": (DatasetSpec(name="arith", cases=cases(2)),),
        "models": (
            ModelSpec(name="m1", model="fake-1", params=GenerationParams(temperature=0.0)),
            ModelSpec(
                name="m2",
                model="fake-2",
                params=GenerationParams(temperature=0.7, top_p=0.9, stop=("\n",)),
                options={"skill": 0.5},
            ),
        ),
        "prompts": (
            PromptSpec(name="plain", template="{{ a }} + {{ b }} = ?"),
            PromptSpec(name="sys", template="What is {{ a }} plus {{ b }}?", system="Be brief."),
        ),
        "parser": ParserSpec(name="number"),
        "metrics": (MetricSpec(name="exact_match"), MetricSpec(name="numeric_match")),
    }
    values.update(overrides)
    return ExperimentSpec(**values)


def completed(trial: TrialPlan, text: str = "42", at: float = 1.0) -> GenerationCompleted:
    return GenerationCompleted(at=at, trial_key=trial.trial_key, text=text)


def failed(trial: TrialPlan, at: float = 1.0) -> GenerationFailed:
    return GenerationFailed(at=at, trial_key=trial.trial_key, error_kind="server", message="500")


def parsed(trial: TrialPlan, answer: str | None, at: float = 2.0) -> ParseCompleted:
    error = None if answer is not None else "no number in response"
    return ParseCompleted(
        at=at, trial_id=trial.trial_id, trial_key=trial.trial_key, answer=answer, error=error
    )


def scored(trial: TrialPlan, scores: dict[str, float], at: float = 3.0) -> ScoreCompleted:
    return ScoreCompleted(at=at, trial_id=trial.trial_id, trial_key=trial.trial_key, scores=scores)


def done(trial: TrialPlan, score: float, metrics: Sequence[str] = ("exact_match",)) -> list[Any]:
    """The three events of a trial that went all the way through scoring."""
    answer = "42"
    return [
        completed(trial, answer),
        parsed(trial, answer),
        scored(trial, dict.fromkeys(metrics, score)),
    ]
