"""The report's judge part: one row per judge and row group (by default dataset × model ×
prompt; `themis.core.breakdown`, as for the metric rows), and agreement.

A candidate's score is its verdicts aggregated (`JudgeSpec.aggregation`); a row's mean is the
mean of its case means (a case stays one cluster). A candidate that has
nothing to judge (its generation failed, or its answer did not parse when the judge reads parsed
answers) scores 0 and is counted in `failed` or `unparsed`, as for the metrics. A candidate all
of whose verdicts failed (the judge's call failed, or its verdict did not parse) is a judge
failure: left out of the mean, never a 0, and counted in `judge_failed`.

Where each candidate stands: `themis.core.judged`; the agreement rows:
`themis.core.judge_agreement`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence

from themis.core.breakdown import Breakdown, case_fields
from themis.core.judge_agreement import agreement_rows
from themis.core.judged import Judged, Place, judged_candidates
from themis.core.judging import candidate_count, cases_by_place
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.report import AgreementRow, ReportRow
from themis.core.spec import JudgeSpec
from themis.core.state import RunState
from themis.core.stats import estimate
from themis.core.verdicts import aggregate

Group = tuple[str | None, ...]  # the row's (dataset, model, prompt), `*` when pooled, then fields


def judge_report(
    compiled: CompiledRun,
    state: RunState,
    record: PlanRecord | None = None,
    by: Breakdown | None = None,
) -> tuple[list[ReportRow], list[AgreementRow]]:
    """The judge rows and agreement rows of the report (see the module docstring); `by`:
    what rows are grouped by."""
    rows: list[ReportRow] = []
    agreement: list[AgreementRow] = []
    cases = cases_by_place(compiled.spec)
    by = by or Breakdown()
    for judge in compiled.spec.judges:
        judged = list(judged_candidates(compiled, judge, state, record))
        rows += _rows(judge, judged, by, case_fields(compiled.spec, by))
        agreement += agreement_rows(judge, judged, cases)
    return rows, agreement


def judge_progress(
    compiled: CompiledRun, state: RunState, record: PlanRecord | None = None
) -> tuple[int, int, int]:
    """The judge stage in candidates, over every judge: `(planned, done, failed)`. Done: every
    verdict recorded, one at least given; failed: nothing to judge, or every verdict failed."""
    spec = compiled.spec
    planned = done = failed = 0
    for judge in spec.judges:
        planned += candidate_count(compiled, judge)
        per = len(judge.models) * judge.repeats
        for item in judged_candidates(compiled, judge, state, record):
            if item.missing is not None or (not item.verdicts and item.failed_judgements == per):
                failed += 1
            elif item.verdicts and len(item.verdicts) + item.failed_judgements == per:
                done += 1
    return planned, done, failed


def judge_case_scores(
    compiled: CompiledRun, state: RunState
) -> dict[Place, dict[str, dict[str, list[float]]]]:
    """Place -> judge -> case id -> its candidates' scores, as the judge rows count them (a
    judge failure left out): what a comparison pairs by case."""
    result: dict[Place, dict[str, dict[str, list[float]]]] = defaultdict(dict)
    for judge in compiled.spec.judges:
        scores, _ = _scores(judge, list(judged_candidates(compiled, judge, state, None)), _by_place)
        for (dataset, model, prompt), cases in scores.items():
            place = (str(dataset), str(model), str(prompt))
            result[place][judge.name] = {str(case): values for case, values in cases.items()}
    return dict(result)


def _by_place(item: Judged) -> tuple[Group, Hashable]:
    return item.place, item.case_id


def _grouping(
    by: Breakdown, fields_of: Mapping[tuple[str, str], tuple[str | None, ...]]
) -> Callable[[Judged], tuple[Group, Hashable]]:
    """A candidate's row group under `by` (`themis.core.breakdown`) and its cluster: its case
    (with its dataset when datasets are pooled)."""
    by_dataset = "dataset" in by.plan

    def group(item: Judged) -> tuple[Group, Hashable]:
        dataset, model, prompt = item.place
        row = (*by.place(dataset, model, prompt), *fields_of.get((dataset, item.case_id), ()))
        return row, item.case_id if by_dataset else (dataset, item.case_id)

    return group


def _scores(
    judge: JudgeSpec,
    judged: Sequence[Judged],
    group_of: Callable[[Judged], tuple[Group, Hashable]],
) -> tuple[dict[Group, dict[Hashable, list[float]]], dict[Group, Counter[str]]]:
    """Each row group's candidate scores per cluster, and its tallies of failed, unparsed and
    judge_failed candidates."""
    scores: dict[Group, dict[Hashable, list[float]]] = defaultdict(lambda: defaultdict(list))
    tallies: dict[Group, Counter[str]] = defaultdict(Counter)
    for item in judged:
        group, cluster = group_of(item)
        tally = tallies[group]
        if item.missing is not None:
            tally[item.missing] += 1
            scores[group][cluster].append(0.0)
            continue
        score = aggregate(judge.aggregation, [verdict.score for verdict in item.verdicts])
        if score is not None:
            scores[group][cluster].append(score)
        elif item.failed_judgements:
            tally["judge_failed"] += 1
    return scores, tallies


def _rows(
    judge: JudgeSpec,
    judged: Sequence[Judged],
    by: Breakdown,
    fields_of: Mapping[tuple[str, str], tuple[str | None, ...]],
) -> Iterator[ReportRow]:
    scores, tallies = _scores(judge, judged, _grouping(by, fields_of))
    for group in dict.fromkeys([*scores, *tallies]):
        result = estimate(scores.get(group, {}))
        tally = tallies[group]
        yield ReportRow(
            dataset=str(group[0]),
            model=str(group[1]),
            prompt=str(group[2]),
            metric=judge.name,
            mean=result.mean,
            ci_low=result.ci_low,
            ci_high=result.ci_high,
            n=result.n,
            failed=tally["failed"],
            unparsed=tally["unparsed"],
            ci_method=result.method,
            judge_failed=tally["judge_failed"],
            judge=True,
            case_fields=dict(zip(by.fields, group[3:], strict=True)),
        )
