"""Answers produced outside Themis (another tool, a human, a provider's batch), matched to the
trials of a run: each names its case, and its model, prompt, dataset and sample when the run
has more than one of them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import frozen

from themis.core.errors import ConfigError
from themis.core.generation import ModelResponse
from themis.core.planner import CompiledRun, plan

__all__ = ["Candidate", "match_candidates"]


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


Place = tuple[str, str, str, str, int]  # dataset, case, prompt, model, sample


def _only(names: tuple[str, ...], given: str | None, label: str, index: int) -> str:
    if given is not None:
        if given not in names:
            raise ConfigError(
                f"candidates[{index}].{label}: {given!r} is not one of the run's "
                f"({', '.join(names)})"
            )
        return given
    if len(names) > 1:
        raise ConfigError(
            f"candidates[{index}].{label}: the run has {len(names)} ({', '.join(names)}); say which"
        )
    return names[0]


def match_candidates(
    compiled: CompiledRun, candidates: Iterable[Candidate]
) -> dict[str, ModelResponse]:
    """Each candidate's answer by the trial key of its trial; `ConfigError` naming the
    candidate for one that matches no trial, is ambiguous, or repeats an earlier one."""
    spec = compiled.spec
    keys: Mapping[Place, str] = {
        (t.dataset, t.case_id, t.prompt, t.model, t.sample): t.trial_key for t in plan(compiled)
    }
    datasets = tuple(dataset.name for dataset in spec.datasets)
    prompts = tuple(prompt.name for prompt in spec.prompts)
    models = tuple(model.name for model in spec.models)
    answers: dict[str, ModelResponse] = {}
    seen: dict[Place, int] = {}
    for index, candidate in enumerate(candidates):
        place = (
            _only(datasets, candidate.dataset, "dataset", index),
            candidate.case_id,
            _only(prompts, candidate.prompt, "prompt", index),
            _only(models, candidate.model, "model", index),
            candidate.sample,
        )
        key = keys.get(place)
        if key is None:
            raise ConfigError(
                f"candidates[{index}]: no trial of run {compiled.run_id[:12]} has case "
                f"{candidate.case_id!r} of {place[0]!r} at sample {candidate.sample}"
            )
        if place in seen:
            first = seen[place]
            raise ConfigError(f"candidates[{index}]: repeats the trial of candidates[{first}]")
        seen[place] = index
        answers[key] = ModelResponse(
            text=candidate.text,
            input_tokens=candidate.input_tokens,
            output_tokens=candidate.output_tokens,
        )
    return answers
