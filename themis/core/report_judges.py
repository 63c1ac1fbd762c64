"""The report's judge part: one row per judge and row group (by default dataset × model ×
prompt; `themis.core.breakdown`, as for the metric rows), and agreement.

A candidate's score is its verdicts aggregated (`JudgeSpec.aggregation`); a row's mean is the
mean of its case means (a case stays one cluster). A candidate that has
nothing to judge (its generation failed, or its answer did not parse when the judge reads parsed
answers) scores 0 and is counted in `failed` or `unparsed`, as for the metrics. A candidate all
of whose verdicts failed (the judge's call failed, or its verdict did not parse) is a judge
failure: left out of the mean, never a 0, and counted in `judge_failed`.

Agreement treats each (judge model, repeat) as a rater: Cohen's κ with exactly two raters,
Fleiss' κ over the candidates every rater judged, Krippendorff's α at the nominal, ordinal and
interval levels over all of them; with a `human_field`, Cohen's κ of the human's verdict against
the judge's most frequent verdict, and α (interval) of their scores.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence

from attrs import frozen
from returns.result import Success

from themis.core.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha
from themis.core.breakdown import Breakdown, case_fields
from themis.core.events import JudgeCompleted, JudgeFailed, judgement_id
from themis.core.judging import (
    candidate_count,
    candidates,
    cases_by_place,
    pair_label,
    stored_in,
)
from themis.core.planner import CompiledRun, PlanRecord, trial_refs
from themis.core.reduction import plan_groups
from themis.core.report import AgreementRow, ReportRow
from themis.core.spec import Case, JudgeSpec
from themis.core.state import RunState
from themis.core.stats import estimate
from themis.core.verdicts import aggregate, read_value

Place = tuple[str, str, str]  # dataset, model, prompt
Group = tuple[str | None, ...]  # the row's (dataset, model, prompt), `*` when pooled, then fields


@frozen
class _Judged:
    """One candidate's place and its verdicts (`None`: not judged yet) or why it has none."""

    place: Place
    case_id: str
    verdicts: tuple[JudgeCompleted, ...] = ()
    failed_judgements: int = 0
    missing: str | None = None  # "failed" / "unparsed": nothing to judge, scored 0


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
        judged = list(_judged(compiled, judge, state, record))
        rows += _rows(judge, judged, by, case_fields(compiled.spec, by))
        agreement += _agreement(judge, judged, cases)
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
        for item in _judged(compiled, judge, state, record):
            if item.missing is not None or (not item.verdicts and item.failed_judgements == per):
                failed += 1
            elif item.verdicts and len(item.verdicts) + item.failed_judgements == per:
                done += 1
    return planned, done, failed


def _verdicts(
    judge: JudgeSpec, state: RunState, candidate_id: str
) -> tuple[list[JudgeCompleted], int]:
    given: list[JudgeCompleted] = []
    failed = 0
    for model in judge.models:
        for repeat in range(judge.repeats):
            held = state.judgements.get(judgement_id(judge.name, candidate_id, model.name, repeat))
            if isinstance(held, JudgeCompleted):
                given.append(held)
            elif isinstance(held, JudgeFailed):
                failed += 1
    return given, failed


def _judged(
    compiled: CompiledRun, judge: JudgeSpec, state: RunState, record: PlanRecord | None
) -> Iterator[_Judged]:
    if judge.pairwise:
        for candidate in candidates(compiled, judge, stored_in(state), record):
            given, failed = _verdicts(judge, state, candidate.candidate_id)
            place = (candidate.dataset, pair_label(judge), candidate.prompt)
            yield _Judged(place, candidate.case_id, tuple(given), failed)
        return
    if judge.candidate == "reduced":
        for group in plan_groups(compiled, record):
            reduction = state.reductions.get(group.group_id)
            if reduction is None:
                continue
            place = (group.dataset, group.model, group.prompt)
            if reduction.text is None:
                yield _Judged(place, group.case_id, missing="failed")
                continue
            given, failed = _verdicts(judge, state, group.group_id)
            yield _Judged(place, group.case_id, tuple(given), failed)
        return
    for ref in trial_refs(compiled, record):
        place = (ref.dataset, ref.model, ref.prompt)
        if state.failed_generation(ref.trial_key) is not None:
            yield _Judged(place, ref.case_id, missing="failed")
            continue
        if ref.trial_key not in state.generations:
            continue
        if judge.candidate == "parsed":
            parse = state.parses.get(ref.trial_id)
            if parse is None:
                continue
            if parse.answer is None:
                yield _Judged(place, ref.case_id, missing="unparsed")
                continue
        given, failed = _verdicts(judge, state, ref.trial_id)
        yield _Judged(place, ref.case_id, tuple(given), failed)


def judge_case_scores(
    compiled: CompiledRun, state: RunState
) -> dict[Place, dict[str, dict[str, list[float]]]]:
    """Place -> judge -> case id -> its candidates' scores, as the judge rows count them (a
    judge failure left out): what a comparison pairs by case."""
    result: dict[Place, dict[str, dict[str, list[float]]]] = defaultdict(dict)
    for judge in compiled.spec.judges:
        scores, _ = _scores(judge, list(_judged(compiled, judge, state, None)), _by_place)
        for (dataset, model, prompt), cases in scores.items():
            place = (str(dataset), str(model), str(prompt))
            result[place][judge.name] = {str(case): values for case, values in cases.items()}
    return dict(result)


def _by_place(item: _Judged) -> tuple[Group, Hashable]:
    return item.place, item.case_id


def _grouping(
    by: Breakdown, fields_of: Mapping[tuple[str, str], tuple[str | None, ...]]
) -> Callable[[_Judged], tuple[Group, Hashable]]:
    """A candidate's row group under `by` (`themis.core.breakdown`) and its cluster: its case
    (with its dataset when datasets are pooled)."""
    by_dataset = "dataset" in by.plan

    def group(item: _Judged) -> tuple[Group, Hashable]:
        dataset, model, prompt = item.place
        row = (*by.place(dataset, model, prompt), *fields_of.get((dataset, item.case_id), ()))
        return row, item.case_id if by_dataset else (dataset, item.case_id)

    return group


def _scores(
    judge: JudgeSpec,
    judged: Sequence[_Judged],
    group_of: Callable[[_Judged], tuple[Group, Hashable]],
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
    judged: Sequence[_Judged],
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


def _category(judge: JudgeSpec, verdict: JudgeCompleted) -> Hashable:
    return verdict.verdict if judge.verdict.kind == "labels" else verdict.score


def _agreement(
    judge: JudgeSpec, judged: Sequence[_Judged], cases: dict[tuple[str, str], Case]
) -> Iterator[AgreementRow]:
    raters = [(model.name, repeat) for model in judge.models for repeat in range(judge.repeats)]
    units = [item for item in judged if item.verdicts]
    if len(raters) >= 2 and units:
        yield from _rater_agreement(judge, raters, units)
    if judge.human_field is not None and not judge.pairwise:
        yield from _human_agreement(judge, units, cases)


def _rater_agreement(
    judge: JudgeSpec, raters: list[tuple[str, int]], units: Sequence[_Judged]
) -> Iterator[AgreementRow]:
    by_rater = [
        {(verdict.model, verdict.repeat): verdict for verdict in item.verdicts} for item in units
    ]
    full = [ratings for ratings in by_rater if len(ratings) == len(raters)]
    name = judge.name
    if len(raters) == 2 and full:
        first = [_category(judge, ratings[raters[0]]) for ratings in full]
        second = [_category(judge, ratings[raters[1]]) for ratings in full]
        yield AgreementRow(name, "cohen_kappa", cohen_kappa(first, second), 2, len(full))
    if full:
        items = [[_category(judge, ratings[rater]) for rater in raters] for ratings in full]
        yield AgreementRow(name, "fleiss_kappa", fleiss_kappa(items), len(raters), len(full))
    categories = sorted({_category(judge, v) for item in units for v in item.verdicts}, key=str)
    index = {category: float(number) for number, category in enumerate(categories)}
    nominal = [
        [None if r not in ratings else index[_category(judge, ratings[r])] for r in raters]
        for ratings in by_rater
    ]
    scored = [
        [None if r not in ratings else ratings[r].score for r in raters] for ratings in by_rater
    ]
    for level, values in (("nominal", nominal), ("ordinal", scored), ("interval", scored)):
        value = krippendorff_alpha(values, level)
        yield AgreementRow(name, f"krippendorff_alpha_{level}", value, len(raters), len(units))


def _human_agreement(
    judge: JudgeSpec, units: Sequence[_Judged], cases: dict[tuple[str, str], Case]
) -> Iterator[AgreementRow]:
    human_labels: list[Hashable] = []
    judge_labels: list[Hashable] = []
    pairs: list[list[float | None]] = []
    for item in units:
        case = cases[(item.place[0], item.case_id)]
        value = case.fields.get(judge.human_field or "")
        text = value if isinstance(value, str) else json.dumps(value)
        human = read_value(judge.verdict, text)
        if not isinstance(human, Success):
            continue
        verdict = human.unwrap()
        categories = [_category(judge, v) for v in item.verdicts]
        most = Counter(categories).most_common(1)[0][1]
        judge_labels.append(next(c for c in categories if categories.count(c) == most))
        human_labels.append(verdict.verdict if judge.verdict.kind == "labels" else verdict.score)
        pairs.append(
            [verdict.score, aggregate(judge.aggregation, [v.score for v in item.verdicts])]
        )
    if not pairs:
        return
    kappa = cohen_kappa(human_labels, judge_labels)
    yield AgreementRow(judge.name, "human_cohen_kappa", kappa, 2, len(pairs))
    alpha = krippendorff_alpha(pairs, "interval")
    yield AgreementRow(judge.name, "human_krippendorff_alpha_interval", alpha, 2, len(pairs))
