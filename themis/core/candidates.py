"""Answers produced outside Themis (another tool, a human, a provider's batch), matched to the
trials of a run: each names its case, and its model, prompt, dataset and sample when the run
has more than one of them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from attrs import field, frozen

from themis.core.errors import ConfigError
from themis.core.generation import ModelResponse
from themis.core.planner import CompiledRun, TrialPlan, plan

__all__ = ["Candidate", "Evaluated", "match_candidates", "match_evaluated"]


@frozen
class Candidate:
    """One answer for one trial: `case_id` and `text`, the rest only where ambiguous."""

    case_id: str
    text: str
    model: str | None = None
    prompt: str | None = None
    dataset: str | None = None
    sample: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None


def _scores(value: Mapping[str, float]) -> Mapping[str, float]:
    return {str(name): float(score) for name, score in value.items()}


@frozen
class Evaluated:
    """One trial's evaluation made elsewhere: its `scores` by metric (each in [0, 1]) and,
    optionally, the answer parsed from its generation; placed like a `Candidate`."""

    case_id: str
    scores: Mapping[str, float] = field(converter=_scores)
    answer: str | None = None
    model: str | None = None
    prompt: str | None = None
    dataset: str | None = None
    sample: int = 0


class _Placed(Protocol):
    @property
    def case_id(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def prompt(self) -> str | None: ...
    @property
    def dataset(self) -> str | None: ...
    @property
    def sample(self) -> int: ...


Place = tuple[str, str, str, str, int]  # dataset, case, prompt, model, sample


def _only(names: tuple[str, ...], given: str | None, label: str, index: int, kind: str) -> str:
    if given is not None:
        if given not in names:
            raise ConfigError(
                f"{kind}[{index}].{label}: {given!r} is not one of the run's ({', '.join(names)})"
            )
        return given
    if len(names) > 1:
        raise ConfigError(
            f"{kind}[{index}].{label}: the run has {len(names)} ({', '.join(names)}); say which"
        )
    return names[0]


def _trials(compiled: CompiledRun, records: Iterable[_Placed], label: str) -> list[TrialPlan]:
    """The trial each record names, in order; `ConfigError` naming the record (`label[i]`) for
    one that matches no trial, is ambiguous, or repeats an earlier one."""
    spec = compiled.spec
    trials: Mapping[Place, TrialPlan] = {
        (t.dataset, t.case_id, t.prompt, t.model, t.sample): t for t in plan(compiled)
    }
    datasets = tuple(dataset.name for dataset in spec.datasets)
    prompts = tuple(prompt.name for prompt in spec.prompts)
    models = tuple(model.name for model in spec.models)
    found: list[TrialPlan] = []
    seen: dict[Place, int] = {}
    for index, record in enumerate(records):
        place = (
            _only(datasets, record.dataset, "dataset", index, label),
            record.case_id,
            _only(prompts, record.prompt, "prompt", index, label),
            _only(models, record.model, "model", index, label),
            record.sample,
        )
        trial = trials.get(place)
        if trial is None:
            raise ConfigError(
                f"{label}[{index}]: no trial of run {compiled.run_id[:12]} has case "
                f"{record.case_id!r} of {place[0]!r} at sample {record.sample}"
            )
        if place in seen:
            raise ConfigError(f"{label}[{index}]: repeats the trial of {label}[{seen[place]}]")
        seen[place] = index
        found.append(trial)
    return found


def match_candidates(
    compiled: CompiledRun, candidates: Iterable[Candidate]
) -> dict[str, ModelResponse]:
    """Each candidate's answer by the trial key of its trial; `ConfigError` naming the
    candidate for one that matches no trial, is ambiguous, or repeats an earlier one."""
    candidates = list(candidates)
    return {
        trial.trial_key: ModelResponse(
            text=candidate.text,
            input_tokens=candidate.input_tokens,
            output_tokens=candidate.output_tokens,
        )
        for trial, candidate in zip(
            _trials(compiled, candidates, "candidates"), candidates, strict=True
        )
    }


def match_evaluated(
    compiled: CompiledRun, evaluated: Iterable[Evaluated]
) -> list[tuple[TrialPlan, Evaluated]]:
    """Each evaluation with its trial; `ConfigError` naming the record for one that matches no
    trial, or whose scores are not exactly the run's metrics, each in [0, 1]."""
    records = list(evaluated)
    metrics = sorted(metric.name for metric in compiled.spec.metrics)
    for index, record in enumerate(records):
        if sorted(record.scores) != metrics:
            raise ConfigError(
                f"evaluations[{index}].scores: must score exactly the run's metrics "
                f"({', '.join(metrics)}), got {', '.join(sorted(record.scores)) or 'none'}"
            )
        for name, score in record.scores.items():
            if not 0.0 <= score <= 1.0:
                raise ConfigError(
                    f"evaluations[{index}].scores.{name}: must be in [0, 1], got {score:g}"
                )
    trials = _trials(compiled, records, "evaluations")
    return list(zip(trials, records, strict=True))
