"""A judge's agreement rows (`AgreementRow`), from its candidates' verdicts
(`themis.core.judged`).

Each (judge model, repeat) is a rater: Cohen's κ with exactly two raters, Fleiss' κ over the
candidates every rater judged, Krippendorff's α at the nominal, ordinal and interval levels over
all of them; with a `human_field`, Cohen's κ of the human's verdict against the judge's most
frequent verdict, and α (interval) of their scores. The statistics: `themis.core.agreement`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence

from returns.result import Success

from themis.core.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha
from themis.core.events import JudgeCompleted
from themis.core.judged import Judged
from themis.core.report import AgreementRow
from themis.core.spec import Case, JudgeSpec
from themis.core.verdicts import aggregate, read_value

__all__ = ["agreement_rows"]


def _category(judge: JudgeSpec, verdict: JudgeCompleted) -> Hashable:
    return verdict.verdict if judge.verdict.kind == "labels" else verdict.score


def agreement_rows(
    judge: JudgeSpec, judged: Sequence[Judged], cases: dict[tuple[str, str], Case]
) -> Iterator[AgreementRow]:
    """The agreement of `judge`'s raters over the `judged` candidates with verdicts, and with
    the human's verdicts in `cases` when it names a `human_field`."""
    raters = [(model.name, repeat) for model in judge.models for repeat in range(judge.repeats)]
    units = [item for item in judged if item.verdicts]
    if len(raters) >= 2 and units:
        yield from _rater_agreement(judge, raters, units)
    if judge.human_field is not None and not judge.pairwise:
        yield from _human_agreement(judge, units, cases)


def _rater_agreement(
    judge: JudgeSpec, raters: list[tuple[str, int]], units: Sequence[Judged]
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
    judge: JudgeSpec, units: Sequence[Judged], cases: dict[tuple[str, str], Case]
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
