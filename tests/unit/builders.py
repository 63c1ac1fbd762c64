"""Small specs and events shared by the unit tests of the pure core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from themis.core.events import GenerationCompleted, GenerationFailed, ParseCompleted, ScoreCompleted
from themis.core.planner import CompiledRun, TrialPlan, plan
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    FewShotSpec,
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


def many_cases_spec(*, marked_example: bool = False) -> ExperimentSpec:
    """Two datasets, one of more cases than a batch of `themis.core.case_pieces`, some fields
    not scalars; `marked_example`: a few-shot example holds the stand-in for the first
    dataset's cases (so its text must be made whole)."""
    spec = small_spec()
    datasets = [
        DatasetSpec(
            name=name,
            cases=[
                Case(
                    id=f"{name}-{i}", fields={"q": f"Q{i}", "tags": [i, {"x": None}]}, expected="1"
                )
                for i in range(size)
            ],
        )
        for name, size in (("big", 2_500), ("one", 1))
    ]
    prompts = spec.prompts
    if marked_example:  # a spec whose own text holds the stand-in for the first dataset's cases
        examples = DatasetSpec(
            name="shots", cases=[Case(id="\x00themis: the cases of dataset 0\x00")]
        )
        few_shot = FewShotSpec(examples=examples, k=1)
        prompts = tuple(attrs.evolve(prompt, few_shot=few_shot) for prompt in prompts)
    return attrs.evolve(spec, datasets=datasets, prompts=prompts)


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


def trial_events(compiled: CompiledRun, index: int, kind: int, variant: int) -> list[Any]:
    """Trial `index` of `compiled`'s plan as events of one of five `kind`s (generated;
    failed; generated, parsed and scored; failed then all that; parsed and scored), their
    fields varied by `variant` (0-11: served model drift, cut and reused answers, retries,
    failures of two executions, an unparsed answer, scores of 0, 1, -0.0 and halves, a
    metric missing)."""
    trial = list(plan(compiled))[index]
    key, trial_id = trial.trial_key, trial.trial_id
    generation = GenerationCompleted(
        at=1.0,
        trial_key=key,
        text="42",
        served_model=("fake-x" if variant % 3 == 0 else "fake-y" if variant % 3 == 1 else None),
        finish_reason=("length" if variant % 4 == 1 else "stop"),
        attempts=1 + variant % 2,
        cache_hit=variant % 5 == 2,
    )
    failure = GenerationFailed(
        at=1.0,
        trial_key=key,
        error_kind="server",
        message="500",
        execution=variant % 2,
        attempts=1 + variant % 3 // 2,
    )
    answer = None if variant % 6 == 5 else "42"
    parse = ParseCompleted(at=2.0, trial_id=trial_id, trial_key=key, answer=answer)
    scores = {"exact_match": [0.0, 1.0, -0.0][variant % 3], "numeric_match": (variant % 3) / 2}
    if variant == 11:  # a metric the scorer did not give: it counts 0
        scores = {"exact_match": 1.0}
    score = ScoreCompleted(at=3.0, trial_id=trial_id, trial_key=key, scores=scores)
    return [
        [generation],
        [failure],
        [generation, parse, score],
        [failure, generation, parse, score],
        [parse, score],
    ][kind]
