"""The run manifest: what a compiled run will do, counted from its lazy plan before anything runs.

Trials are the planned (case, model, prompt, sample) units; each is parsed and scored on its own.
Generations are the distinct trial keys, i.e. the model calls a fresh run makes: twin trials
(cases that render to the same request) share one generation. Per-group generation counts are
distinct keys within that group, so they need not add up to the run's total.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

from themis.core.judging import judge_call_count
from themis.core.planner import CompiledRun, plan
from themis.core.stages import EXECUTED_STAGES, Stage


def _stage_counts(value: Mapping[Stage, int]) -> Mapping[Stage, int]:
    return dict(value)


def _groups(value: tuple[GroupCount, ...]) -> tuple[GroupCount, ...]:
    return tuple(value)


def _names(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(value)


@frozen
class GroupCount:
    """One dataset, model or prompt: its planned trials and distinct generations (model calls)."""

    name: str
    trials: int
    generations: int
    cases: int | None = None  # datasets only


@frozen
class RunManifest:
    """The deterministic summary of a compiled run, from `build_manifest`."""

    run_id: str
    name: str
    seed: int
    samples: int
    stages: Mapping[Stage, int] = field(converter=_stage_counts)
    datasets: tuple[GroupCount, ...] = field(converter=_groups)
    models: tuple[GroupCount, ...] = field(converter=_groups)
    prompts: tuple[GroupCount, ...] = field(converter=_groups)
    parser: str
    metrics: tuple[str, ...] = field(converter=_names)

    @property
    def trials(self) -> int:
        """Planned trials: each one is parsed and scored."""
        return sum(group.trials for group in self.datasets)

    @property
    def generations(self) -> int:
        """Distinct trial keys: the model calls a fresh run makes (before any retry)."""
        return self.stages[Stage.GENERATE]


def build_manifest(compiled: CompiledRun) -> RunManifest:
    """Count `compiled`'s plan per stage and per dataset, model and prompt, in spec order."""
    spec = compiled.spec
    trials: dict[tuple[str, str], int] = {}
    keys: dict[tuple[str, str], set[str]] = {}
    groups = [
        *(("dataset", dataset.name) for dataset in spec.datasets),
        *(("model", model.name) for model in spec.models),
        *(("prompt", prompt.name) for prompt in spec.prompts),
    ]
    for group in groups:
        trials[group] = 0
        keys[group] = set()
    every_key: set[str] = set()
    total = 0
    for trial in plan(compiled):
        total += 1
        every_key.add(trial.trial_key)
        for group in (("dataset", trial.dataset), ("model", trial.model), ("prompt", trial.prompt)):
            trials[group] += 1
            keys[group].add(trial.trial_key)
    cases = {dataset.name: len(dataset.cases) for dataset in spec.datasets}

    def counts(kind: str) -> tuple[GroupCount, ...]:
        return tuple(
            GroupCount(
                name=name,
                trials=trials[(kind, name)],
                generations=len(keys[(kind, name)]),
                cases=cases[name] if kind == "dataset" else None,
            )
            for group_kind, name in groups
            if group_kind == kind
        )

    per_stage = {Stage.GENERATE: len(every_key)}
    per_stage.update({stage: total for stage in EXECUTED_STAGES if stage is not Stage.GENERATE})
    if spec.judges:  # judge calls, every candidate assumed to answer
        per_stage[Stage.JUDGE] = judge_call_count(compiled)
    return RunManifest(
        run_id=compiled.run_id,
        name=spec.name,
        seed=spec.seed,
        samples=spec.samples,
        stages=per_stage,
        datasets=counts("dataset"),
        models=counts("model"),
        prompts=counts("prompt"),
        parser=spec.parser.name,
        metrics=tuple(metric.name for metric in spec.metrics),
    )
