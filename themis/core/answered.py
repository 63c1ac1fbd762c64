"""A chunk of trials parsed and scored as columns (a derived replay's trials, ADR 0115).

A batch execution parses and scores each trial in turn (`TrialRunner._parsed`, then
`CandidateScorer.score_answered`), building an event for each. A derived replay whose trials
are taken as columns parses and scores a chunk's texts a column at a time instead (ADR 0121):
each trial's answer, error and scores as `parse_answer` and the `metric_scorer`s give them,
with no event built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from themis.core.scoring import parse_answers, score_column
from themis.core.spec import MetricSpec, ParserSpec

if TYPE_CHECKING:
    from themis.core.plugins import PluginRegistry

__all__ = ["Answered", "answered_columns"]

# Each trial's answer (`None` when none was parsed), the reason there is none (else `None`),
# and its scores in the scorers' order.
Answered = tuple[list[str | None], list[str | None], list[tuple[float, ...]]]


def answered_columns(
    parser: ParserSpec,
    texts: Sequence[str],
    choices: Sequence[int | None],
    expected: Sequence[str | None],
    metrics: Sequence[MetricSpec],
    plugins: PluginRegistry | None = None,
) -> Answered:
    """Each of `texts` parsed by `parser` (with its trial's `choices`) and its answer scored by
    each of `metrics` against its trial's `expected` answer: a column at a time
    (`parse_answers`, `score_column`), each trial's scores then put together."""
    answers, errors = parse_answers(parser, texts, choices, plugins)
    columns = [score_column(metric, answers, expected, plugins) for metric in metrics]
    scores: list[tuple[float, ...]] = (
        list(zip(*columns, strict=True)) if columns else [()] * len(answers)
    )
    return answers, errors, scores
