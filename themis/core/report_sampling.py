"""The report's rows over samples: pass@k, majority@k and the reduced candidates' scores.

Each is one value per case, so its 95% CI comes from the case-level values (`stats.estimate`).
Labels name the aggregate and the metric it is taken over: `pass@10(execution)`,
`majority@5(exact_match)`, and `majority(exact_match)` for the `majority` reducer's candidates;
`execution:stage2` is the share of samples whose every validation rule of stage 2 passed.
A generation that failed for good counts as an incorrect sample, as in the per-sample rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

from attrs import frozen

from themis.core.reduction import group_id_of
from themis.core.sampling import majority_at_k, pass_at_k
from themis.core.spec import ExperimentSpec
from themis.core.state import RunState
from themis.core.stats import Estimate, estimate

# (sample index, parsed answer, scores by metric) of one settled sample of a case.
SampleResult = tuple[int, str | None, Mapping[str, float]]
# The samples settled together: (dataset, model, prompt, case id).
Unit = tuple[str, str, str, str]


@frozen
class SampledRow:
    """One aggregate over one metric for one row group."""

    label: str
    # Each case's (dataset, case id) unit values: what the estimate and a comparison pair on.
    values: Mapping[tuple[str, str], list[float]]
    failed: int
    unparsed: int

    @property
    def estimate(self) -> Estimate:
        return estimate(self.values)


def is_sampled(spec: ExperimentSpec) -> bool:
    """Whether the run has rows over samples (pass@k, majority@k, a reducer, stage rules)."""
    return bool(
        spec.pass_at_k
        or spec.majority_at_k
        or spec.reducer
        or any(metric.rules for metric in spec.metrics)
    )


def stage_key(metric: str, stage: int) -> str:
    """The sub-score (and report row) of one validation stage of an execution metric."""
    return f"{metric}:stage{stage}"


def pass_label(k: int, metric: str) -> str:
    return f"pass@{k}({metric})"


def majority_label(k: int, metric: str) -> str:
    return f"majority@{k}({metric})"


def reduced_label(reducer: str, metric: str) -> str:
    return f"{reducer}({metric})"


def sampled_rows(
    spec: ExperimentSpec,
    state: RunState,
    units: Mapping[Unit, Sequence[SampleResult]],
    failed: int,
    unparsed: int,
) -> Iterator[SampledRow]:
    """The sampled rows of one row group, metric by metric.

    `units` holds the settled samples of each (dataset, model, prompt, case) of the group; each
    unit gives one value, and the values of one case (dataset, case id) form its cluster.
    `failed` and `unparsed` are the group's per-sample counts, shown beside pass@k and
    majority@k.
    """
    for spec_metric in spec.metrics:
        metric = spec_metric.name
        for stage in sorted({rule.stage for rule in spec_metric.rules}):
            key = stage_key(metric, stage)
            rates = _clusters(
                (unit, [scores.get(key, 0.0) for *_, scores in samples])
                for unit, samples in units.items()
            )
            yield SampledRow(key, rates, failed, unparsed)
        for k in spec.pass_at_k:
            values = _clusters(
                (
                    unit,
                    [
                        pass_at_k(
                            len(samples),
                            sum(1 for *_, s in samples if s.get(metric, 0.0) >= 1.0),
                            k,
                        )
                    ],
                )
                for unit, samples in units.items()
                if len(samples) >= k
            )
            yield SampledRow(pass_label(k, metric), values, failed, unparsed)
        for k in spec.majority_at_k:
            majority: list[tuple[Unit, list[float]]] = []
            for unit, samples in units.items():
                value = majority_at_k(
                    [(index, answer, scores.get(metric, 0.0)) for index, answer, scores in samples],
                    k,
                )
                if value is not None:
                    majority.append((unit, [value]))
            yield SampledRow(majority_label(k, metric), _clusters(majority), failed, unparsed)
        if spec.reducer is not None:
            yield _reduced_row(spec.reducer.name, metric, state, units)


def _clusters(
    values: Iterable[tuple[Unit, list[float]]],
) -> dict[tuple[str, str], list[float]]:
    """Unit values gathered by case (dataset, case id): a case's units form one cluster."""
    clusters: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (dataset, _, _, case), unit_values in values:
        clusters[(dataset, case)].extend(unit_values)
    return clusters


def _reduced_row(
    reducer: str,
    metric: str,
    state: RunState,
    units: Mapping[Unit, Sequence[SampleResult]],
) -> SampledRow:
    values: list[tuple[Unit, list[float]]] = []
    failed = unparsed = 0
    for unit in units:
        dataset, model, prompt, case = unit
        group_id = group_id_of(dataset, case, prompt, model)
        score = state.scores.get(group_id)
        if score is None:
            continue
        values.append((unit, [score.scores.get(metric, 0.0)]))
        reduction = state.reductions.get(group_id)
        if reduction is not None and reduction.trial_key is None:
            failed += 1
        parse = state.parses.get(group_id)
        if parse is not None and parse.answer is None:
            unparsed += 1
    return SampledRow(reduced_label(reducer, metric), _clusters(values), failed, unparsed)
