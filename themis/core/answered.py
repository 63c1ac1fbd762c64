"""A chunk of trials parsed and scored as columns (a derived replay's trials, ADR 0115).

A batch execution parses and scores each trial in turn (`TrialRunner._parsed`, then
`CandidateScorer.score_answered`), building an event for each. A derived replay whose trials
are taken as columns parses and scores a chunk's texts in one loop instead: the same
`parse_answer` and the same `metric_scorer`s, each trial's answer, error and scores as those
give them, with no event built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from returns.result import Success

from themis.core.scoring import parse_answer
from themis.core.spec import ParserSpec

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
    scorers: Sequence[Callable[[str | None, str | None], float]],
    plugins: PluginRegistry | None = None,
) -> Answered:
    """Each of `texts` parsed by `parser` (with its trial's `choices`) and its answer scored by
    each of `scorers` (`metric_scorer`s) against its trial's `expected` answer."""
    answers: list[str | None] = []
    errors: list[str | None] = []
    scores: list[tuple[float, ...]] = []
    for text, options, wanted in zip(texts, choices, expected, strict=True):
        parsed = parse_answer(parser, text, options, plugins)
        # `isinstance`, not `match ... case Success(answer)`: the class pattern costs ~0.7 us
        if isinstance(parsed, Success):
            answer, error = parsed.unwrap(), None
        else:  # a `Failure`: why the response holds no answer
            answer, error = None, parsed.failure()
        answers.append(answer)
        errors.append(error)
        scores.append(tuple([scored(answer, wanted) for scored in scorers]))
    return answers, errors, scores
