"""Paired comparison of two sides (two runs, two models or two prompts) on the same cases.

The unit is the case: samples of one case are not independent, so each side's case value is the
mean of its settled samples (a failed generation scores 0, as in the report; pending samples
are left out), and a comparison pairs the cases both sides scored. Every metric the report
shows is compared: pass@k, majority@k, stage and reduced rows give one value per case; a
judge's case value is the mean of its candidates' scores, a judge failure left out (not 0).
Cases only one side scored are counted (`only_a`, `only_b`), never dropped silently.

For every metric and group, B − A is estimated over the paired cases:
- the interval is Student-t over the case differences (`t-cluster`: clustered by case);
- the percentile bootstrap interval resamples cases (seeded, reproducible);
- the test is McNemar's exact test when every paired case has one 0/1 sample per side
  (`mcnemar-exact`), else the sign-flip permutation test on the case differences
  (`sign-flip`, exact up to `EXACT_FLIPS` cases);
- `p_holm` is Holm's adjustment across every metric and group of one comparison;
- `mde` is the minimum detectable effect at 80 % power and α = 0.05 for that n and the
  observed spread of the differences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from attrs import frozen

from themis.core.case_values import CaseValues, paired_means
from themis.core.identity import digest
from themis.core.paired import (
    bootstrap_ci,
    holm,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_t,
    sign_flip_p,
)
from themis.core.planner import CompiledRun, trial_refs
from themis.core.report_judges import judge_case_scores
from themis.core.report_sampling import SampleResult, Unit, is_sampled, sampled_rows
from themis.core.seeded import SeededGenerator
from themis.core.state import RunState

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# metric -> case id -> the scores of the case's settled samples (as the fold gives them)
CaseLists = dict[str, dict[str, list[float]]]
# (dataset, model, prompt) -> metric -> case id -> scores
ListScores = dict[tuple[str, str, str], CaseLists]
# metric -> one side's case values (lists, or `CaseMeans` a store aggregated)
MetricScores = Mapping[str, CaseValues]
# (dataset, model, prompt) -> metric -> case values: what a comparison pairs
GroupScores = Mapping[tuple[str, str, str], MetricScores]


@frozen
class Resampling:
    """How the resampling statistics draw: the seed and the number of rounds of each."""

    seed: int = 0
    bootstrap_rounds: int = 1000
    permutation_rounds: int = 5000


@frozen
class PairedComparison:
    """B − A on one metric in one group, over the cases both sides scored."""

    group: str
    metric: str
    n: int
    only_a: int
    only_b: int
    mean_a: float | None
    mean_b: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    bootstrap_low: float | None
    bootstrap_high: float | None
    test: str
    p_value: float | None
    mde: float | None
    p_holm: float | None = None
    # With McNemar: the pairs where only A, and only B, scored 1.
    discordant: tuple[int, int] | None = None
    ci_method: str = "t-cluster"


@frozen
class Comparison:
    """Every paired comparison of side `a` against side `b`, with what could not be paired."""

    a: str
    b: str
    paired_by: str
    resampling: Resampling
    rows: tuple[PairedComparison, ...]
    # Groups or metrics that only one side has: nothing to pair them with.
    unmatched: tuple[str, ...] = ()


def case_scores(compiled: CompiledRun, state: RunState) -> ListScores:
    """Each group's case values per metric, for every row the report shows: the settled sample
    scores of each metric, the one value per case of pass@k, majority@k, stage and reduced rows,
    and each judge's candidate scores (a judge failure left out, as in the report)."""
    spec = compiled.spec
    metrics = [metric.name for metric in spec.metrics]
    groups: ListScores = {}
    samples: dict[tuple[str, str, str], dict[Unit, list[SampleResult]]] = {}
    for index, trial in enumerate(trial_refs(compiled)):
        place = (trial.dataset, trial.model, trial.prompt)
        group = groups.setdefault(place, {metric: {} for metric in metrics})
        scores = state.scores.get(trial.trial_id)
        parse = state.parses.get(trial.trial_id)
        if scores is not None:
            values = scores.scores
        elif state.failed_generation(trial.trial_key) is not None:
            values, parse = {}, None
        else:
            continue
        for metric in metrics:
            group[metric].setdefault(trial.case_id, []).append(values.get(metric, 0.0))
        answer = None if parse is None else parse.answer
        samples.setdefault(place, {}).setdefault((*place, trial.case_id), []).append(
            (index % spec.samples, answer, values)
        )
    if is_sampled(spec):
        for place, group in groups.items():
            for row in sampled_rows(spec, state, samples.get(place, {}), 0, 0):
                group[row.label] = {case: list(v) for (_, case), v in row.values.items()}
    for place, judged in judge_case_scores(compiled, state).items():
        groups.setdefault(place, {}).update(judged)
    return groups


def plain_case_scores(
    metrics: Sequence[str], trials: Iterable[tuple[str, str, str, str, str, *tuple[Any, ...]]]
) -> ListScores:
    """`case_scores` of a run without sampled or judge rows, from its trials in plan order, each
    (dataset, model, prompt, case id, status, its score on each of `metrics`), as the log's
    `trials` view has them: a scored trial's scores (0 for a metric it lacks), a failed one's 0s,
    and nothing for the others."""
    groups: ListScores = {}
    for dataset, model, prompt, case_id, status, *values in trials:
        group = groups.setdefault((dataset, model, prompt), {metric: {} for metric in metrics})
        if status == "scored":
            settled = [0.0 if value is None else value for value in values]
        elif status == "failed":
            settled = [0.0] * len(metrics)
        else:
            continue
        for metric, value in zip(metrics, settled, strict=True):
            group[metric].setdefault(case_id, []).append(value)
    return groups


def _generator(resampling: Resampling, group: str) -> SeededGenerator:
    """A fresh generator per row, seeded by the group: a row's numbers never depend on the
    other rows, and two metrics with the same differences get the same p-value."""
    return SeededGenerator(int(digest([resampling.seed, group])[:16], 16))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _binary(means: npt.NDArray[np.float64]) -> bool:
    return bool(((means == 0.0) | (means == 1.0)).all())


def compare_cases(
    group: str,
    metric: str,
    side_a: CaseValues,
    side_b: CaseValues,
    resampling: Resampling,
) -> PairedComparison:
    """B − A over the cases both sides scored (see the module docstring)."""
    a_means, b_means, single, (only_a, only_b) = paired_means(side_a, side_b)
    if not len(a_means):
        return PairedComparison(
            group, metric, 0, only_a, only_b, None, None, None, None, None, None, None, "none",
            None, None,
        )  # fmt: skip
    differences = b_means - a_means
    t = paired_t(differences.tolist())
    generator = _generator(resampling, group)
    boot_low, boot_high = bootstrap_ci(differences, resampling.bootstrap_rounds, generator)
    binary = _binary(a_means) and _binary(b_means)
    discordant: tuple[int, int] | None = None
    if single and binary:
        discordant = (int((differences == -1.0).sum()), int((differences == 1.0).sum()))
        test, p_value = "mcnemar-exact", mcnemar_exact(*discordant)
    else:
        test = "sign-flip"
        p_value = sign_flip_p(differences.tolist(), resampling.permutation_rounds, generator)
    n = len(differences)
    mde = minimum_detectable_effect(t.sd, n) if t.sd is not None and t.sd > 0 else None
    return PairedComparison(
        group=group,
        metric=metric,
        n=n,
        only_a=only_a,
        only_b=only_b,
        mean_a=_mean(a_means.tolist()),
        mean_b=_mean(b_means.tolist()),
        delta=t.mean,
        ci_low=t.ci_low,
        ci_high=t.ci_high,
        bootstrap_low=boot_low,
        bootstrap_high=boot_high,
        test=test,
        p_value=p_value,
        mde=mde,
        discordant=discordant,
    )


def with_holm(rows: Sequence[PairedComparison]) -> tuple[PairedComparison, ...]:
    """`rows` with `p_holm` set: Holm's adjustment across every row that has a p-value."""
    tested = [index for index, row in enumerate(rows) if row.p_value is not None]
    adjusted = holm([rows[index].p_value or 0.0 for index in tested])
    result = list(rows)
    for index, value in zip(tested, adjusted, strict=True):
        result[index] = attrs.evolve(rows[index], p_holm=value)
    return tuple(result)


def _label(key: tuple[str, ...]) -> str:
    return " / ".join(key)


def _keyed(
    groups: GroupScores, keep: Sequence[int], where: tuple[int, str] | None = None
) -> dict[tuple[str, ...], MetricScores]:
    """Groups re-keyed by the fields at `keep` (0 dataset, 1 model, 2 prompt), optionally only
    those whose field `where[0]` equals `where[1]`."""
    keyed: dict[tuple[str, ...], MetricScores] = {}
    for key, metrics in groups.items():
        if where is None or key[where[0]] == where[1]:
            keyed[tuple(key[index] for index in keep)] = metrics
    return keyed


def _pair(
    side_a: Mapping[tuple[str, ...], MetricScores],
    side_b: Mapping[tuple[str, ...], MetricScores],
    resampling: Resampling,
) -> tuple[tuple[PairedComparison, ...], tuple[str, ...]]:
    rows: list[PairedComparison] = []
    unmatched: list[str] = []
    for key in sorted(side_a.keys() | side_b.keys()):
        if key not in side_b or key not in side_a:
            unmatched.append(f"{_label(key)}: only in {'A' if key in side_a else 'B'}")
            continue
        metrics_a, metrics_b = side_a[key], side_b[key]
        for metric in sorted(metrics_a.keys() | metrics_b.keys()):
            if metric not in metrics_a or metric not in metrics_b:
                side = "A" if metric in metrics_a else "B"
                unmatched.append(f"{_label(key)}: metric {metric} only in {side}")
                continue
            rows.append(
                compare_cases(_label(key), metric, metrics_a[metric], metrics_b[metric], resampling)
            )
    return with_holm(rows), tuple(unmatched)


def compare_runs(
    a: tuple[str, GroupScores], b: tuple[str, GroupScores], resampling: Resampling
) -> Comparison:
    """Run B against run A, group by group. Groups match by dataset, model and prompt; a field
    that both runs hold one value of (one model each, say) is left out of the match, so two
    single-model runs compare their models."""
    (label_a, groups_a), (label_b, groups_b) = a, b
    keep = [
        index
        for index in (0, 1, 2)
        if index == 0
        or len({key[index] for key in groups_a}) > 1
        or len({key[index] for key in groups_b}) > 1
    ]
    rows, unmatched = _pair(_keyed(groups_a, keep), _keyed(groups_b, keep), resampling)
    return Comparison(label_a, label_b, "case", resampling, rows, unmatched)


def compare_within(
    groups: GroupScores, field: str, names: tuple[str, str], resampling: Resampling
) -> Comparison:
    """Within one run: `field` ("model" or "prompt") `names[1]` against `names[0]`, in every
    group of the other fields."""
    index = {"model": 1, "prompt": 2}[field]
    keep = [i for i in (0, 1, 2) if i != index]
    side_a = _keyed(groups, keep, (index, names[0]))
    side_b = _keyed(groups, keep, (index, names[1]))
    rows, unmatched = _pair(side_a, side_b, resampling)
    return Comparison(names[0], names[1], "case", resampling, rows, unmatched)


def group_names(groups: GroupScores, field: str) -> list[str]:
    """The distinct values of `field` ("model" or "prompt") among `groups`, sorted."""
    index = {"model": 1, "prompt": 2}[field]
    return sorted({key[index] for key in groups})


def missing(groups: GroupScores, field: str, names: Sequence[str]) -> list[str]:
    """Those of `names` that no group has as its `field`."""
    known = set(group_names(groups, field))
    return [name for name in names if name not in known]
