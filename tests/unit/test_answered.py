"""A chunk's trials parsed and scored as columns (ADR 0115) give each trial the answer, the
error and the scores a trial's own parse and score give it (`parse_answer`, `metric_scorer`),
whatever the parser, the texts and the expected answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Success

from themis.core.answered import answered_columns
from themis.core.scoring import metric_scorer, parse_answer
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
    answers, errors, scores = answered_columns(parser, texts, choices, expected, scorers)
    for index, (text, options, wanted) in enumerate(trials):
        parsed = parse_answer(parser, text, options)
        if isinstance(parsed, Success):
            assert (answers[index], errors[index]) == (parsed.unwrap(), None)
        else:
            assert (answers[index], errors[index]) == (None, parsed.failure())
        assert scores[index] == tuple(scored(answers[index], wanted) for scored in scorers)
    assert len(answers) == len(errors) == len(scores) == len(trials)
