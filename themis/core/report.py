"""The run report: per dataset × model × prompt × metric, the mean with its 95% CI and n.

A trial whose generation failed counts as a 0 for every metric and is also counted in `failed`,
so failures lower the mean visibly instead of silently shrinking n. Trials still pending are
left out of the means and counted in the report's `pending`. Trials whose answer was cut at
`max_tokens` are scored as they are and counted in `truncated`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping

from attrs import field, frozen

from themis.core.generation import is_truncated
from themis.core.planner import CompiledRun, PlanRecord, trial_refs
from themis.core.report_sampling import SampleResult, sampled_rows
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.core.stats import estimate


@frozen
class ReportRow:
    dataset: str
    model: str
    prompt: str
    metric: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    failed: int
    unparsed: int
    ci_method: str
    truncated: int = 0


def _counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return dict(value)


@frozen
class ServedModel:
    """Which model ids actually answered for one configured model, with generation counts.

    Endpoints may serve another model than the one asked for (an alias, a silent upgrade), or
    change it mid-run; results are only reproducible if that is seen.
    """

    model: str
    requested: str
    served: Mapping[str, int] = field(converter=_counts)

    @property
    def differs(self) -> bool:
        """Some generation came from a model id other than the requested one."""
        return any(served != self.requested for served in self.served)

    @property
    def changed(self) -> bool:
        """More than one model id answered within the run."""
        return len(self.served) > 1


@frozen
class Report:
    run_id: str
    name: str
    status: str
    completed_through_stage: Stage | None
    planned: int
    scored: int
    failed: int
    pending: int
    rows: tuple[ReportRow, ...]
    served: tuple[ServedModel, ...] = ()
    truncated: int = 0


def run_status(state: RunState) -> str:
    """`paused` while the latest execution is paused (`RunPaused`, e.g. a cost limit), then
    `completed` once a `RunCompleted` is logged, `incomplete` if started, else `planned`."""
    if state.paused:
        return "paused"
    if state.completed_through_stage is not None:
        return "completed"
    return "incomplete" if state.started else "planned"


def build_report(
    compiled: CompiledRun, state: RunState, record: PlanRecord | None = None
) -> Report:
    """Aggregate `state` over the run's plan (see the module docstring for how failures count).

    `record`: the plan's keys as an execution consumed it, to spare planning it again.
    """
    spec = compiled.spec
    metrics = [metric.name for metric in spec.metrics]
    by_group: dict[tuple[str, str, str], dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: {metric: defaultdict(list) for metric in metrics}
    )
    failed_by_group: dict[tuple[str, str, str], int] = defaultdict(int)
    unparsed_by_group: dict[tuple[str, str, str], int] = defaultdict(int)
    truncated_by_group: dict[tuple[str, str, str], int] = defaultdict(int)
    planned = scored = failed = pending = 0
    served: dict[str, Counter[str]] = {model.name: Counter() for model in spec.models}
    sampled = bool(
        spec.pass_at_k
        or spec.majority_at_k
        or spec.reducer
        or any(metric.rules for metric in spec.metrics)
    )
    samples: dict[tuple[str, str, str], dict[str, list[SampleResult]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for index, trial in enumerate(trial_refs(compiled, record)):
        planned += 1
        group = (trial.dataset, trial.model, trial.prompt)
        generation = state.generations.get(trial.trial_key)
        if generation is not None:
            if generation.served_model:
                served[trial.model][generation.served_model] += 1
            if is_truncated(generation.finish_reason):
                truncated_by_group[group] += 1
        scores = state.scores.get(trial.trial_id)
        if scores is not None:
            scored += 1
            parse = state.parses.get(trial.trial_id)
            if parse is not None and parse.answer is None:
                unparsed_by_group[group] += 1
            for metric in metrics:
                by_group[group][metric][trial.case_id].append(scores.scores.get(metric, 0.0))
            if sampled:
                answer = None if parse is None else parse.answer
                samples[group][trial.case_id].append((index % spec.samples, answer, scores.scores))
        elif state.failed_generation(trial.trial_key) is not None:
            failed += 1
            failed_by_group[group] += 1
            for metric in metrics:
                by_group[group][metric][trial.case_id].append(0.0)
            if sampled:
                samples[group][trial.case_id].append((index % spec.samples, None, {}))
        else:
            pending += 1
            by_group[group]
    rows = []
    for (dataset, model, prompt), per_metric in by_group.items():
        for metric in metrics:
            result = estimate(per_metric[metric])
            rows.append(
                ReportRow(
                    dataset=dataset,
                    model=model,
                    prompt=prompt,
                    metric=metric,
                    mean=result.mean,
                    ci_low=result.ci_low,
                    ci_high=result.ci_high,
                    n=result.n,
                    failed=failed_by_group[(dataset, model, prompt)],
                    unparsed=unparsed_by_group[(dataset, model, prompt)],
                    ci_method=result.method,
                    truncated=truncated_by_group[(dataset, model, prompt)],
                )
            )
        if sampled:
            group = (dataset, model, prompt)
            for row in sampled_rows(
                spec,
                state,
                group,
                samples[group],
                failed_by_group[group],
                unparsed_by_group[group],
            ):
                rows.append(
                    ReportRow(
                        dataset=dataset,
                        model=model,
                        prompt=prompt,
                        metric=row.label,
                        mean=row.estimate.mean,
                        ci_low=row.estimate.ci_low,
                        ci_high=row.estimate.ci_high,
                        n=row.estimate.n,
                        failed=row.failed,
                        unparsed=row.unparsed,
                        ci_method=row.estimate.method,
                        truncated=truncated_by_group[group],
                    )
                )
    return Report(
        run_id=compiled.run_id,
        name=spec.name,
        status=run_status(state),
        completed_through_stage=state.completed_through_stage,
        planned=planned,
        scored=scored,
        failed=failed,
        pending=pending,
        rows=tuple(rows),
        truncated=sum(truncated_by_group.values()),
        served=tuple(
            ServedModel(model=model.name, requested=model.model, served=dict(served[model.name]))
            for model in spec.models
        ),
    )


def served_models(
    compiled: CompiledRun, state: RunState, record: PlanRecord | None = None
) -> tuple[ServedModel, ...]:
    """The report's `served` alone; without planning when `state` has no generation at all."""
    if state.generations:
        return build_report(compiled, state, record).served
    return tuple(
        ServedModel(model=model.name, requested=model.model, served={})
        for model in compiled.spec.models
    )
