"""Builtin parsers (text → answer) and metrics (answer vs expected → score)."""

from __future__ import annotations

import pytest
from returns.result import Failure, Success

from themis.core.scoring import (
    METRIC_VERSIONS,
    PARSER_VERSIONS,
    metric_scorer,
    normalize_number,
    parse_answer,
    score_answer,
)
from themis.core.spec import (
    METRIC_NAMES,
    PARSER_NAMES,
    PURE_METRIC_NAMES,
    MetricSpec,
    ParserSpec,
    ValidationRule,
)


def test_every_builtin_has_a_version() -> None:
    assert set(PARSER_VERSIONS) == set(PARSER_NAMES)
    assert set(METRIC_VERSIONS) == set(METRIC_NAMES)


# --- parsers -----------------------------------------------------------------------------------


def test_raw_keeps_the_text_verbatim() -> None:
    assert parse_answer(ParserSpec(name="raw"), "  Paris \n") == Success("  Paris \n")


def test_strip_trims_whitespace() -> None:
    assert parse_answer(ParserSpec(name="strip"), "  Paris \n") == Success("Paris")
    assert parse_answer(ParserSpec(), "\tx ") == Success("x")  # strip is the default


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("42", "42"),
        ("The answer is 1,234.50 dollars", "1234.5"),
        ("It is -7.", "-7"),
        ("x = -0.25", "-0.25"),
        ("about .5", "0.5"),
        ("3.0", "3"),
        ("first 2, then 5, finally 11", "11"),
        ("12 apples and -3 pears", "-3"),
        ("Total: 1,000,000", "1000000"),
    ],
)
def test_number_parser(text: str, answer: str) -> None:
    assert parse_answer(ParserSpec(name="number"), text) == Success(answer)


@pytest.mark.parametrize("text", ["", "no digits here", "minus - sign"])
def test_number_parser_without_a_number_fails(text: str) -> None:
    assert parse_answer(ParserSpec(name="number"), text) == Failure("no number in response")


def test_normalize_number() -> None:
    assert normalize_number("1,234.50") == "1234.5"
    assert normalize_number(" -12 ") == "-12"
    assert normalize_number("0.1") == "0.1"
    assert normalize_number("abc") is None
    assert normalize_number("inf") is None
    assert normalize_number("nan") is None


def test_regex_parser_takes_the_group() -> None:
    spec = ParserSpec(name="regex", pattern=r"Answer:\s*(\w+)\s*\((\d)\)")
    assert parse_answer(spec, "Reasoning...\nAnswer:  Paris (2)") == Success("Paris")
    second = ParserSpec(name="regex", pattern=spec.pattern, group=2)
    assert parse_answer(second, "Answer: Paris (2)") == Success("2")


def test_regex_parser_spans_lines() -> None:
    spec = ParserSpec(name="regex", pattern=r"<a>(.*)</a>")
    assert parse_answer(spec, "<a>line one\nline two </a>") == Success("line one\nline two")


def test_regex_parser_failures() -> None:
    assert parse_answer(ParserSpec(name="regex"), "Answer: x") == Failure(
        "regex parser needs a pattern"
    )
    assert parse_answer(ParserSpec(name="regex", pattern=r"Answer: (\d+)"), "Answer: x") == Failure(
        "pattern 'Answer: (\\\\d+)' did not match"
    )
    no_group = ParserSpec(name="regex", pattern=r"Answer: (\w)", group=3)
    assert parse_answer(no_group, "Answer: x") == Failure(
        "pattern 'Answer: (\\\\w)' has no group 3"
    )


@pytest.mark.parametrize(
    ("text", "answer"),
    [("B", "B"), ("The answer is (C).", "C"), ("Option J is right", "J"), ("D) 42", "D")],
)
def test_choice_parser(text: str, answer: str) -> None:
    assert parse_answer(ParserSpec(name="choice"), text, 10) == Success(answer)


@pytest.mark.parametrize("text", ["", "none of these", "ABC", "b"])
def test_choice_parser_without_a_letter_fails(text: str) -> None:
    assert parse_answer(ParserSpec(name="choice"), text, 10) == Failure(
        "no choice letter in response"
    )


# --- metrics -----------------------------------------------------------------------------------


def test_exact_match_ignores_case_and_surrounding_space_by_default() -> None:
    spec = MetricSpec(name="exact_match")
    assert score_answer(spec, " Paris\n", "paris") == 1.0
    assert score_answer(spec, "Straße", "STRASSE") == 1.0  # casefold, not lower
    assert score_answer(spec, "Paris, France", "Paris") == 0.0


def test_exact_match_case_sensitive() -> None:
    spec = MetricSpec(name="exact_match", case_sensitive=True)
    assert score_answer(spec, "Paris", "paris") == 0.0
    assert score_answer(spec, " Paris ", "Paris") == 1.0


def test_numeric_match_with_tolerance() -> None:
    strict = MetricSpec(name="numeric_match")
    loose = MetricSpec(name="numeric_match", tolerance=0.01)
    assert score_answer(strict, "1,000", "1000") == 1.0
    assert score_answer(strict, "3.14", "3.14159") == 0.0
    assert score_answer(loose, "3.14", "3.14159") == 1.0
    assert score_answer(loose, "3.2", "3.14159") == 0.0
    assert score_answer(strict, "-2", "-2.0") == 1.0


def test_numeric_match_of_a_non_number_is_zero() -> None:
    spec = MetricSpec(name="numeric_match")
    assert score_answer(spec, "seven", "7") == 0.0
    assert score_answer(spec, "7", "seven") == 0.0


def test_contains() -> None:
    spec = MetricSpec(name="contains")
    assert score_answer(spec, "The capital is PARIS.", " paris ") == 1.0
    assert score_answer(spec, "The capital is Lyon.", "paris") == 0.0
    sensitive = MetricSpec(name="contains", case_sensitive=True)
    assert score_answer(sensitive, "The capital is PARIS.", "paris") == 0.0
    assert score_answer(sensitive, "The capital is Paris.", "Paris") == 1.0


@pytest.mark.parametrize("name", PURE_METRIC_NAMES)
def test_no_answer_or_no_expected_scores_zero(name: str) -> None:
    spec = MetricSpec(name=name)
    assert score_answer(spec, None, "1") == 0.0
    assert score_answer(spec, "1", None) == 0.0
    assert score_answer(spec, "1", "1") == 1.0


_METRIC_SPECS = [
    MetricSpec(name="exact_match"),
    MetricSpec(name="exact_match", case_sensitive=True),
    MetricSpec(name="numeric_match"),
    MetricSpec(name="numeric_match", tolerance=0.01),
    MetricSpec(name="contains"),
    MetricSpec(name="contains", case_sensitive=True),
]
_TEXTS = [
    None,
    "",
    "7",
    "7.0",
    "-7",
    "1,000",
    "1000",
    "3.14",
    "3.14159",
    " Paris\n",
    "paris",
    "PARIS",
]


@pytest.mark.parametrize("spec", _METRIC_SPECS, ids=repr)
def test_a_metric_s_scorer_scores_every_answer_as_score_answer_does(spec: MetricSpec) -> None:
    scored = metric_scorer(spec)
    for answer in _TEXTS:
        for expected in _TEXTS:
            assert scored(answer, expected) == score_answer(spec, answer, expected)


def test_a_scorer_of_a_metric_that_does_not_compare_refuses_as_score_answer_does() -> None:
    rules = (ValidationRule(stage=1, command="python3 sol.py"),)
    scored = metric_scorer(MetricSpec(name="execution", rules=rules))  # refused when used
    with pytest.raises(ValueError, match="not scored by comparing"):
        scored("1", "1")


def test_unknown_names_are_rejected_by_the_spec() -> None:
    with pytest.raises(ValueError, match="name: must be one of"):
        ParserSpec(name="json")
    with pytest.raises(ValueError, match="name: must be one of"):
        MetricSpec(name="bleu")
