"""A chunk's trials parsed and scored as columns (ADR 0115) give each trial the answer, the
error and the scores a trial's own parse and score give it (`parse_answer`, `metric_scorer`),
whatever the parser, the texts and the expected answers."""

from __future__ import annotations

from decimal import InvalidOperation, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Success

from themis.core import scoring
from themis.core.answered import answered_columns
from themis.core.number_grammar import read_number
from themis.core.scoring import metric_scorer, parse_answer, score_column
from themis.core.spec import MetricSpec, ParserSpec

TEXTS = st.text(max_size=12) | st.sampled_from(
    ["The answer is 12.", "none", "\\boxed{3}", "B", "(c) maybe", "1,000.50", "  42  ", ""]
)
PARSERS = st.sampled_from(
    [
        ParserSpec(name="number"),
        ParserSpec(name="strip"),
        ParserSpec(name="raw"),
        ParserSpec(name="regex", pattern=r"(\d+)"),
        ParserSpec(name="regex", pattern=r"(\d+"),  # refused when run: each trial's error
        ParserSpec(name="choice", choices=4),
        ParserSpec(name="choice"),
    ]
)
METRICS = st.lists(
    st.sampled_from(
        [
            MetricSpec(name="exact_match"),
            MetricSpec(name="numeric_match"),
            MetricSpec(name="contains"),
            MetricSpec(name="exact_match", case_sensitive=True),
            MetricSpec(name="numeric_match", tolerance=2.5),
            MetricSpec(name="numeric_match", tolerance=0.0),
            MetricSpec(name="numeric_match", tolerance=float("inf")),
        ]
    ),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    parser=PARSERS,
    metrics=METRICS,
    trials=st.lists(st.tuples(TEXTS, st.none() | st.integers(2, 5), st.none() | TEXTS), max_size=6),
)
def test_each_trial_is_answered_as_its_own_parse_and_score_answer_it(
    parser: ParserSpec, metrics: list[MetricSpec], trials: list[tuple[str, int | None, str | None]]
) -> None:
    scorers = [metric_scorer(metric) for metric in metrics]
    texts = [text for text, _, _ in trials]
    choices = [options for _, options, _ in trials]
    expected = [wanted for _, _, wanted in trials]
    answers, errors, scores = answered_columns(parser, texts, choices, expected, metrics)
    for index, (text, options, wanted) in enumerate(trials):
        parsed = parse_answer(parser, text, options)
        if isinstance(parsed, Success):
            assert (answers[index], errors[index]) == (parsed.unwrap(), None)
        else:
            assert (answers[index], errors[index]) == (None, parsed.failure())
        assert scores[index] == tuple(scored(answers[index], wanted) for scored in scorers)
    assert len(answers) == len(errors) == len(scores) == len(trials)


# Answers and expected values `score_column` may compare as `int`s, and near misses: leading
# zeros, more digits than it takes, other digits than ASCII, a sign, a decimal part.
_NUMBERS = st.one_of(
    st.none(),
    st.from_regex(r"[0-9]{1,20}", fullmatch=True),
    st.sampled_from(["0", "7", "8", "007", "-7", "7.0", "7.5", "٧", "", " 7", "1e1", "10"]),
)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(_NUMBERS, _NUMBERS), max_size=6),
    tolerance=st.sampled_from([0.0, 1e-6, 1.0, 2.5, 1e30, float("inf"), float("nan")]),
    precision=st.sampled_from([28, 4, 19]),
)
def test_a_score_column_holds_each_answer_s_own_score(
    pairs: list[tuple[str | None, str | None]], tolerance: float, precision: int
) -> None:
    metric = MetricSpec(name="numeric_match", tolerance=tolerance)
    answers = [answer for answer, _ in pairs]
    expected = [wanted for _, wanted in pairs]
    scored = metric_scorer(metric)
    with localcontext() as context:
        context.prec = precision
        read_number.cache_clear()  # (a value read before under another precision: the same)
        try:
            own = [scored(answer, wanted) for answer, wanted in pairs]
        except InvalidOperation:  # a NaN tolerance: compared, it refuses
            with pytest.raises(InvalidOperation):
                score_column(metric, answers, expected)
            return
        assert score_column(metric, answers, expected) == own


def test_a_score_column_compares_short_ascii_digits_as_ints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(text: str) -> None:
        raise AssertionError(f"read_number({text!r})")

    monkeypatch.setattr(scoring, "read_number", refused)
    metric = MetricSpec(name="numeric_match", tolerance=1.5)
    assert score_column(metric, ["12", "0", "9"], ["13", "2", None]) == [1.0, 0.0, 0.0]


def test_a_score_column_rounds_a_distance_as_the_decimal_context_does() -> None:
    metric = MetricSpec(name="numeric_match", tolerance=12340.0)
    with localcontext() as context:
        context.prec = 4  # 12341 - 0 is 1.234E+4: within the tolerance, as `Decimal`s compare
        read_number.cache_clear()
        assert score_column(metric, ["12341"], ["0"]) == [metric_scorer(metric)("12341", "0")]
        assert score_column(metric, ["12341"], ["0"]) == [1.0]
