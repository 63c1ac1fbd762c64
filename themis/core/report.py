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

from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from itertools import chain, islice
from operator import itemgetter
from typing import Any, NamedTuple

import attrs
from attrs import field, frozen

from themis.core.breakdown import PLAN_DIMENSIONS, Breakdown, case_fields
from themis.core.event_columns import EventColumns, reader
from themis.core.generation import is_truncated
from themis.core.planner import CompiledRun, PlanRecord, TrialRef, trial_refs
from themis.core.report_sampling import SampleResult, Unit, is_sampled, sampled_rows
from themis.core.spec import ExperimentSpec
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.core.stats import Estimate, estimate, estimate_of_means


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
    tally = Tally(metrics)
    served: dict[str, Counter[str]] = {model.name: Counter() for model in spec.models}
    sampled = is_sampled(spec)
    group_of = grouping(by, fields_of)
    # A case is one cluster: within a row, its dataset is fixed unless datasets are pooled.
    by_dataset = "dataset" in by.plan
    facts_of = trial_facts(state)
    by_group, samples = tally.values, tally.samples
    # With one sample and a row per dataset, model and prompt, a case has one value per row and
    # metric, its case mean: kept in a float array per row and metric instead of a list per
    # case (1M trials: ~0.25 GiB of lists and their dicts at the end of a run, issue 12).
    one_each = OneValueEach(metrics) if _one_value_each(spec, by) else None

    def count(index: int, trial: TrialRef, facts: TrialFacts) -> None:
        dataset, case_id, prompt, model, _, _ = trial
        group = group_of(dataset, case_id, prompt, model)
        cluster = case_id if by_dataset else (dataset, case_id)
        if facts.served:
            served[model][facts.served] += 1
        tally.count(group, facts)
        per_metric = by_group[group]
        if facts.settled:
            values = facts.values(metrics)
            if one_each is not None:
                one_each.add(group, values)
            else:
                for metric, value in zip(metrics, values, strict=True):
                    per_metric[metric][cluster].append(value)
            if sampled:
                samples[group][(dataset, model, prompt, case_id)].append(
                    (index % spec.samples, facts.answer, facts.scores or {})
                )

    refs = trial_refs(compiled, record)
    if record is None or not record.complete or len(record.trial_ids) != compiled.trial_count:
        for index, trial in enumerate(refs):
            count(index, trial, facts_of(trial.trial_key, trial.trial_id))
    else:  # each trial's facts in plan order, read a part at a time (ADR 0119)
        index = 0
        tallied = None if sampled or not by.is_default else one_each
        for facts, scored in plan_fact_parts(state, record.trial_ids, record.trial_keys):
            part = list(islice(refs, len(facts)))
            if not (
                scored
                and tallied is not None
                and _tally_scored(tally, tallied, served, part, facts)
            ):
                for trial, found in zip(part, facts, strict=True):
                    count(index, trial, found)
                    index += 1
            else:
                index += len(facts)
    estimated = None if one_each is None else one_each.estimate
    rows = tally.rows(spec, state, by, sampled=sampled, estimated=estimated)
    agreement: list[AgreementRow] = []
    if spec.judges:  # imported here: the judge part builds on this module's rows
        from themis.core.report_judges import judge_report

        judge_rows, agreement = judge_report(compiled, state, record, by)
        rows += judge_rows
    return tallied_report(compiled, state, by, tally, served, (rows, agreement))


def _one_value_each(spec: ExperimentSpec, by: Breakdown) -> bool:
    """Whether each case has one value per row and metric: one sample, a row per dataset,
    model and prompt, and no case id twice in a dataset (a spec built in code may repeat one;
    its trials then share a place, and the case's values are averaged)."""
    return (
        spec.samples == 1
        and by.plan == PLAN_DIMENSIONS
        and all(len({case.id for case in d.cases}) == len(d.cases) for d in spec.datasets)
    )


class OneValueEach:
    """The values of row groups in which every case has one value per metric (see
    `build_report`), each group's and metric's as a float array in plan order."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = list(metrics)
        self.values: dict[GroupKey, list[array[float]]] = {}

    def add(self, group: GroupKey, values: Sequence[float]) -> None:
        """One case's value of each metric in `group`."""
        columns = self.values.get(group)
        if columns is None:
            columns = self.values[group] = [array("d") for _ in self.metrics]
        for column, value in zip(columns, values, strict=True):
            column.append(value)

    def extend(self, group: GroupKey, scores: list[Mapping[str, float]]) -> None:
        """`add` of each of `scores`' values (`TrialFacts.values` of a scored trial each)."""
        if not scores:
            return
        columns = self.values.get(group)
        if columns is None:
            columns = self.values[group] = [array("d") for _ in self.metrics]
        for column, metric in zip(columns, self.metrics, strict=True):
            column.extend([found.get(metric, 0.0) for found in scores])

    def estimate(self, group: GroupKey, metric: str) -> Estimate:
        """`estimate` of the group's values of `metric`, one case each: the same estimate."""
        columns = self.values.get(group)
        if columns is None:
            return estimate({})
        means = columns[self.metrics.index(metric)]
        return estimate_of_means(means, len(means), binary=all(v in (0.0, 1.0) for v in means))


def tallied_report(
    compiled: CompiledRun,
    state: RunState,
    by: Breakdown,
    tally: Tally,
    served: Mapping[str, Mapping[str, int]],
    rows: tuple[list[ReportRow], list[AgreementRow]],
) -> Report:
    """The report of `tally`'s counts, `served` model ids by model, and its (rows, agreement)."""
    spec = compiled.spec
    return Report(
        run_id=compiled.run_id,
        agreement=tuple(rows[1]),
        name=spec.name,
        status=run_status(state),
        completed_through_stage=state.completed_through_stage,
        planned=tally.planned,
        scored=tally.scored,
        failed=sum(tally.failed.values()),
        pending=tally.pending,
        rows=tuple(rows[0]),
        truncated=sum(tally.truncated.values()),
        retried=sum(tally.retried.values()),
        cache_hits=sum(tally.cache_hits.values()),
        served=tuple(
            ServedModel(model=model.name, requested=model.model, served=dict(served[model.name]))
            for model in spec.models
        ),
        by=by.dimensions,
    )


# What the report reads of a generation (`Tally.count`; a run's end, `FactColumns`).
GENERATION_FIELDS = ("served_model", "finish_reason", "cache_hit", "attempts", "retries")

# A row group: (dataset, model, prompt) with `*` for pooled ones, then the case fields' values.
GroupKey = tuple[str | None, ...]


def grouping(
    by: Breakdown, fields_of: Mapping[tuple[str, str], tuple[str | None, ...]]
) -> Callable[[str, str, str, str], GroupKey]:
    """The row group of a trial, from its (dataset, case id, prompt, model)."""
    if by.is_default:
        return lambda dataset, case_id, prompt, model: (dataset, model, prompt)

    def group(dataset: str, case_id: str, prompt: str, model: str) -> GroupKey:
        return (*by.place(dataset, model, prompt), *fields_of.get((dataset, case_id), ()))

    return group


class Tally:
    """What `build_report` (and `RunningReport`) counts per row group, trial by trial."""

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
        self,
        spec: ExperimentSpec,
        state: RunState,
        by: Breakdown,
        *,
        sampled: bool,
        estimated: Callable[[GroupKey, str], Estimate] | None = None,
    ) -> list[ReportRow]:
        """Each row group's rows: a row per metric (its estimate from its case values, or
        `estimated(group, metric)`), then (`sampled`) its pass@k, majority@k, stage and
        reduced rows (`themis.core.report_sampling`)."""
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
                found = (
                    estimate(per_metric[metric]) if estimated is None else estimated(group, metric)
                )
                rows.append(_row(template, metric, found))
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

    def count(self, group: GroupKey, facts: TrialFacts, sign: int = 1) -> None:
        """Count a planned trial by its `facts` (`sign` -1: take a count back)."""
        self.planned += sign
        if facts.scores is not None:
            self.scored += sign
            if facts.unparsed:
                self.unparsed[group] += sign
        elif facts.failed:
            self.failed[group] += sign
        else:
            self.pending += sign
        if facts.truncated:
            self.truncated[group] += sign
        if facts.cache_hit:
            self.cache_hits[group] += sign
        if facts.retried:
            self.retried[group] += sign

    def count_scored(self, group: GroupKey, facts: Sequence[TrialFacts]) -> None:
        """`count` of each of `facts`, all scored (none failed), at once: each count a sum
        over a field, not a trial at a time (ADR 0119)."""
        self.planned += len(facts)
        self.scored += len(facts)
        for counter, name in (
            (self.unparsed, "unparsed"),
            (self.truncated, "truncated"),
            (self.cache_hits, "cache_hit"),
            (self.retried, "retried"),
        ):
            found = sum(map(_FACT[name], facts))
            if found:
                counter[group] += found


class TrialFacts(NamedTuple):
    """What one trial adds to its row group: the model id that served its generation (or
    `None`), whether its answer was cut, reused or retried, and its outcome: its `scores`
    (scored, with its parsed `answer`), `failed` for good, or neither (pending)."""

    served: str | None
    truncated: bool
    cache_hit: bool
    retried: bool
    scores: Mapping[str, float] | None
    failed: bool
    unparsed: bool
    answer: Any

    @property
    def settled(self) -> bool:
        return self.scores is not None or self.failed

    def values(self, metrics: Sequence[str]) -> tuple[float, ...]:
        """Its value of each metric: a failed trial counts 0 (so does a metric it lacks)."""
        scores = self.scores
        if scores is None:
            return tuple(0.0 for _ in metrics)
        return tuple(scores.get(metric, 0.0) for metric in metrics)


# Trials whose facts `plan_facts` reads at once: lists of this many values a field at most.
FACTS_PART = 16_384


def plan_facts(state: RunState, ids: Sequence[str], keys: Sequence[str]) -> Iterator[TrialFacts]:
    """`trial_facts(state)` of each trial, by its id in `ids` and key in `keys`, in order
    (`plan_fact_parts`' parts, chained)."""
    return chain.from_iterable(facts for facts, _ in plan_fact_parts(state, ids, keys))


def plan_fact_parts(
    state: RunState, ids: Sequence[str], keys: Sequence[str]
) -> Iterator[tuple[list[TrialFacts], bool]]:
    """`trial_facts(state)` of each trial, by its id in `ids` and key in `keys`, in order, in
    parts of `FACTS_PART`, each with whether its every trial is scored (and none failed).

    A part whose every trial holds a generation, a parse and a score, of maps held as
    columns, in a state of no failure (a run's end, mostly), is read a field at a time for all
    of them (`EventColumns.fields_at`), not three reads a trial (~45 % of the report of 10k
    trials, ADR 0119); any other part trial by trial."""
    facts_of = trial_facts(state)
    maps = (state.generations, state.parses, state.scores)
    columnar = not state.generation_failures and all(isinstance(m, EventColumns) for m in maps)
    for start in range(0, len(ids), FACTS_PART):
        part_ids, part_keys = ids[start : start + FACTS_PART], keys[start : start + FACTS_PART]
        found = _part_facts(state, part_ids, part_keys) if columnar else None
        if found is None:
            yield list(map(facts_of, part_keys, part_ids)), False
        else:
            yield found, True


def _tally_scored(
    tally: Tally,
    one_each: OneValueEach,
    served: Mapping[str, Counter[str]],
    trials: list[TrialRef],
    facts: list[TrialFacts],
) -> bool:
    """`build_report`'s count of `trials`, each scored (`facts`, none failed), at once when
    they are all of one row group (the default breakdown's, one value a case and metric):
    each count a sum over a field, each metric's values appended as one list; `False`, having
    counted nothing, for trials of several groups (ADR 0119)."""
    groups = list(map(_PLACE, trials))
    group = groups[0]
    if groups.count(group) != len(groups):
        return False
    tally.count_scored(group, facts)
    served[group[1]].update(filter(None, map(_FACT["served"], facts)))
    tally.values[group]  # the group's row, as `Tally.count`'s caller makes it
    one_each.extend(group, list(map(_FACT["scores"], facts)))
    return True


# A getter of each `TrialFacts` field by name (a part's field read at once, `_tally_scored`).
_FACT = {name: itemgetter(index) for index, name in enumerate(TrialFacts._fields)}


# A trial's row group under the default breakdown (`grouping`): (dataset, model, prompt).
_PLACE = itemgetter(0, 3, 2)


def _part_facts(
    state: RunState, ids: Sequence[str], keys: Sequence[str]
) -> list[TrialFacts] | None:
    """`plan_facts`' part of trials that all hold a generation, a parse and a score (and no
    failure, which the caller checked), else `None`."""
    generations = state.generations.fields_at(keys, *GENERATION_FIELDS)  # type: ignore[attr-defined]
    scores = state.scores.fields_at(ids, "scores")  # type: ignore[attr-defined]
    answers = state.parses.fields_at(ids, "answer")  # type: ignore[attr-defined]
    if generations is None or scores is None or answers is None:
        return None
    return [
        TrialFacts(
            served,
            is_truncated(finish_reason),
            bool(cache_hit),
            bool(attempts > 1 or retries),
            scored,
            False,
            answer is None,
            answer,
        )
        for served, finish_reason, cache_hit, attempts, retries, scored, answer in zip(
            *generations, scores[0], answers[0], strict=True
        )
    ]


def trial_facts(state: RunState) -> Callable[[str, str], TrialFacts]:
    """The `TrialFacts` of a trial (its key and id) in `state`, reading only what the report
    needs of each event."""
    generation_of = reader(state.generations, *GENERATION_FIELDS)
    score_of, answer_of = reader(state.scores, "scores"), reader(state.parses, "answer")
    failures = state.generation_failures

    def facts(trial_key: str, trial_id: str) -> TrialFacts:
        generation = generation_of(trial_key)
        failure = failures.get(trial_key)
        served, truncated, cache_hit, retried = None, False, False, False
        if generation is not None:
            served, finish_reason, cache_hit, attempts, retries = generation
            truncated = is_truncated(finish_reason)
            retried = bool(attempts > 1 or retries or failure is not None)
            cache_hit = bool(cache_hit)
        elif failure is not None:
            retried = bool(failure.attempts > 1 or failure.retries)
        scored = score_of(trial_id)
        if scored is not None:
            parse = answer_of(trial_id)
            answer = None if parse is None else parse[0]
            return TrialFacts(
                served,
                truncated,
                cache_hit,
                retried,
                scored[0],
                False,
                parse is not None and answer is None,
                answer,
            )
        failed = generation is None and failure is not None
        return TrialFacts(served, truncated, cache_hit, retried, None, failed, False, None)

    return facts


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
