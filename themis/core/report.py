"""The run report: per dataset × model × prompt × metric, the mean with its 95% CI and n.

The mean is the mean of case means (`themis.core.stats`); rows may be grouped otherwise
(`themis.core.breakdown`). A trial whose generation failed counts as a 0 for every metric and
is also counted in `failed`, so failures lower the mean visibly instead of silently shrinking n.
Trials still pending are left out of the means and counted in the report's `pending`. Trials
whose answer was cut at `max_tokens` are scored as they are and counted in `truncated`; those
whose generation took more than one attempt (a retry within an execution, or a failure that a
later `--retry-failed` execution answered) in `retried`; those answered from another run's
generation (reuse) in `cache_hits`. None of these counts changes a mean.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.breakdown import Breakdown, case_fields
from themis.core.event_columns import reader
from themis.core.events import GenerationFailed
from themis.core.generation import is_truncated
from themis.core.planner import CompiledRun, PlanRecord, trial_refs
from themis.core.report_sampling import SampleResult, Unit, is_sampled, sampled_rows
from themis.core.spec import ExperimentSpec
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.core.stats import Estimate, estimate


def _fields(value: Mapping[str, str | None]) -> Mapping[str, str | None]:
    return dict(value)


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
    retried: int = 0
    cache_hits: int = 0
    # The values of the case fields the rows are broken down by (`None`: the case lacks it).
    case_fields: Mapping[str, str | None] = field(factory=dict, converter=_fields)
    judge_failed: int = 0  # judge rows: candidates every verdict of which failed (not in `n`)
    judge: bool = False  # a judge's row (`metric` names the judge), not a metric's


@frozen
class AgreementRow:
    """How much a judge's raters agree (`themis.core.report_judges`): `statistic` (e.g.
    `fleiss_kappa`, `krippendorff_alpha_interval`, `human_cohen_kappa`) over `items`
    candidates rated by `raters` raters; `value` is `None` where it is undefined."""

    judge: str
    statistic: str
    value: float | None
    raters: int
    items: int


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
    retried: int = 0
    cache_hits: int = 0
    # The dimensions rows are grouped by (`themis.core.breakdown.Breakdown.dimensions`).
    by: tuple[str, ...] = ("dataset", "model", "prompt")
    agreement: tuple[AgreementRow, ...] = ()


def run_status(state: RunState) -> str:
    """`paused` while the latest execution is paused (`RunPaused`, e.g. a cost limit), then
    `completed` once a `RunCompleted` is logged, `incomplete` if started, else `planned`."""
    if state.paused:
        return "paused"
    if state.completed_through_stage is not None:
        return "completed"
    return "incomplete" if state.started else "planned"


def build_report(
    compiled: CompiledRun,
    state: RunState,
    record: PlanRecord | None = None,
    by: Breakdown | None = None,
) -> Report:
    """Aggregate `state` over the run's plan (see the module docstring for how failures count).

    `record`: the plan's keys as an execution consumed it, to spare planning it again. `by`:
    what rows are grouped by (default dataset × model × prompt; `themis.core.breakdown`).
    """
    spec = compiled.spec
    by = by or Breakdown()
    fields_of = case_fields(spec, by)
    metrics = [metric.name for metric in spec.metrics]
    tally = _Tally(metrics)
    served: dict[str, Counter[str]] = {model.name: Counter() for model in spec.models}
    sampled = is_sampled(spec)
    group_of = _grouping(by, fields_of)
    # A case is one cluster: within a row, its dataset is fixed unless datasets are pooled.
    by_dataset = "dataset" in by.plan
    # Only the fields the report reads, without building each trial's events.
    generation_of = reader(state.generations, *_GENERATION_FIELDS)
    score_of, answer_of = reader(state.scores, "scores"), reader(state.parses, "answer")
    failures = state.generation_failures
    by_group, samples = tally.values, tally.samples
    for index, trial in enumerate(trial_refs(compiled, record)):
        dataset, case_id, prompt, model, trial_id, trial_key = trial
        group = group_of(dataset, case_id, prompt, model)
        cluster = case_id if by_dataset else (dataset, case_id)
        generation = generation_of(trial_key)
        failure = failures.get(trial_key)
        if generation is not None and generation[0]:
            served[model][generation[0]] += 1
        tally.count(group, generation, failure)
        scored = score_of(trial_id)
        if scored is not None:
            scores: Mapping[str, float] = scored[0]
            tally.scored += 1
            parse = answer_of(trial_id)
            if parse is not None and parse[0] is None:
                tally.unparsed[group] += 1
            per_metric = by_group[group]
            for metric in metrics:
                per_metric[metric][cluster].append(scores.get(metric, 0.0))
            if sampled:
                answer = None if parse is None else parse[0]
                samples[group][(dataset, model, prompt, case_id)].append(
                    (index % spec.samples, answer, scores)
                )
        elif generation is None and failure is not None:  # failed for good
            tally.failed[group] += 1
            per_metric = by_group[group]
            for metric in metrics:
                per_metric[metric][cluster].append(0.0)
            if sampled:
                samples[group][(dataset, model, prompt, case_id)].append(
                    (index % spec.samples, None, {})
                )
        else:
            tally.pending += 1
            by_group[group]
    rows = tally.rows(spec, state, by, sampled=sampled)
    agreement: list[AgreementRow] = []
    if spec.judges:  # imported here: the judge part builds on this module's rows
        from themis.core.report_judges import judge_report

        judge_rows, agreement = judge_report(compiled, state, record, by)
        rows += judge_rows
    return Report(
        run_id=compiled.run_id,
        agreement=tuple(agreement),
        name=spec.name,
        status=run_status(state),
        completed_through_stage=state.completed_through_stage,
        planned=tally.planned,
        scored=tally.scored,
        failed=sum(tally.failed.values()),
        pending=tally.pending,
        rows=tuple(rows),
        truncated=sum(tally.truncated.values()),
        retried=sum(tally.retried.values()),
        cache_hits=sum(tally.cache_hits.values()),
        served=tuple(
            ServedModel(model=model.name, requested=model.model, served=dict(served[model.name]))
            for model in spec.models
        ),
        by=by.dimensions,
    )


# What the report reads of a generation (`_Tally.count`).
_GENERATION_FIELDS = ("served_model", "finish_reason", "cache_hit", "attempts", "retries")

# A row group: (dataset, model, prompt) with `*` for pooled ones, then the case fields' values.
GroupKey = tuple[str | None, ...]


def _grouping(
    by: Breakdown, fields_of: Mapping[tuple[str, str], tuple[str | None, ...]]
) -> Callable[[str, str, str, str], GroupKey]:
    """The row group of a trial, from its (dataset, case id, prompt, model)."""
    if by.is_default:
        return lambda dataset, case_id, prompt, model: (dataset, model, prompt)

    def group(dataset: str, case_id: str, prompt: str, model: str) -> GroupKey:
        return (*by.place(dataset, model, prompt), *fields_of.get((dataset, case_id), ()))

    return group


class _Tally:
    """What `build_report` counts per row group while it walks the plan once."""

    def __init__(self, metrics: list[str]) -> None:
        self.metrics = metrics
        self.values: dict[GroupKey, dict[str, dict[Hashable, list[float]]]] = defaultdict(
            lambda: {metric: defaultdict(list) for metric in metrics}
        )
        self.samples: dict[GroupKey, dict[Unit, list[SampleResult]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.failed: Counter[GroupKey] = Counter()
        self.unparsed: Counter[GroupKey] = Counter()
        self.truncated: Counter[GroupKey] = Counter()
        self.retried: Counter[GroupKey] = Counter()
        self.cache_hits: Counter[GroupKey] = Counter()
        self.planned = self.scored = self.pending = 0

    def rows(
        self, spec: ExperimentSpec, state: RunState, by: Breakdown, *, sampled: bool
    ) -> list[ReportRow]:
        """Each row group's rows: a row per metric, then (`sampled`) its pass@k, majority@k,
        stage and reduced rows (`themis.core.report_sampling`)."""
        rows = []
        for group, per_metric in self.values.items():
            place, values = group[:3], group[3:]
            template = ReportRow(
                dataset=str(place[0]),
                model=str(place[1]),
                prompt=str(place[2]),
                metric="",
                mean=None,
                ci_low=None,
                ci_high=None,
                n=0,
                failed=self.failed[group],
                unparsed=self.unparsed[group],
                ci_method="none",
                truncated=self.truncated[group],
                retried=self.retried[group],
                cache_hits=self.cache_hits[group],
                case_fields=dict(zip(by.fields, values, strict=True)),
            )
            for metric in self.metrics:
                rows.append(_row(template, metric, estimate(per_metric[metric])))
            if not sampled:
                continue
            for row in sampled_rows(
                spec, state, self.samples[group], template.failed, template.unparsed
            ):
                rows.append(
                    _row(
                        template, row.label, row.estimate, failed=row.failed, unparsed=row.unparsed
                    )
                )
        return rows

    def count(
        self,
        group: GroupKey,
        generation: tuple[Any, ...] | None,
        failure: GenerationFailed | None,
    ) -> None:
        """Count a planned trial, and whether its generation (its `_GENERATION_FIELDS`) was
        cut, retried or reused."""
        self.planned += 1
        if generation is not None:
            _, finish_reason, cache_hit, attempts, retries = generation
            if is_truncated(finish_reason):
                self.truncated[group] += 1
            if cache_hit:
                self.cache_hits[group] += 1
            if attempts > 1 or retries or failure is not None:
                self.retried[group] += 1
        elif failure is not None and (failure.attempts > 1 or failure.retries):
            self.retried[group] += 1


def _row(
    template: ReportRow,
    metric: str,
    result: Estimate,
    failed: int | None = None,
    unparsed: int | None = None,
) -> ReportRow:
    """`template` (a row group's place and counts) with `metric`'s estimate, and the sampled
    rows' own `failed` and `unparsed` when given."""
    return attrs.evolve(
        template,
        metric=metric,
        mean=result.mean,
        ci_low=result.ci_low,
        ci_high=result.ci_high,
        n=result.n,
        ci_method=result.method,
        failed=template.failed if failed is None else failed,
        unparsed=template.unparsed if unparsed is None else unparsed,
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
