"""The `number` parser's grammar and the number reading metrics share, row by row."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from themis.core import number_grammar as grammar
from themis.core.number_grammar import parse_number, read_number
from themis.core.scoring import score_answer
from themis.core.spec import MetricSpec

NONE = "no number in response"

# (response, the canonical number read, or the reason it is unparsed)
TABLE: list[tuple[str, str]] = [
    ("42", "42"),
    ("It is -7.", "-7"),
    ("x = -0.25", "-0.25"),
    ("−12", "-12"),  # U+2212 minus sign
    ("about .5", "0.5"),
    ("3.0", "3"),
    ("3.14", "3.14"),
    ("0.0", "0"),
    ("1e5", "100000"),
    ("40,000", "40000"),
    ("Total: 1,000,000", "1000000"),
    ("1.000.000", "1000000"),  # dot groups, two or more of them
    ("1.000", "1"),  # one dot group is a decimal point
    ("$1,234.50", "1234.5"),
    ("45%", "45"),
    ("12km", "12"),
    ("The answer is 40,000 dollars", "40000"),
    ("3/4", "0.75"),
    ("first 2, then 5, finally 11", "11"),
    ("12 apples and -3 pears", "-3"),
    ("10 - 5 = 5", "5"),  # a spaced minus is an operator
    ("#### 72", "72"),
    ("The answer is 12. It took 3 steps.", "12"),
    ("The answer is 1234567890123456789012345678.", "1234567890123456789012345678"),  # 28 digits
    ("The answer is 10000000000000000000000000001.", "10000000000000000000000000000"),  # rounded
    ("It costs 5 dollars. Answer: -3", "-3"),
    ("Answer: 18\n\nSteps: 1, 2", "18"),
    ("\\boxed{42}", "42"),
    ("so 3 + 4 = \\boxed{7}, not 8", "7"),
    ("\\boxed{\\frac{1}{2}}", "0.5"),
    ("\\boxed{1,000}", "1000"),
    ("25.11.2024 was day 7", "7"),  # a date is not a number
    ("at 3:45 we had 9", "9"),  # nor a clock time
    ("Released 2024-11-25, version 3", "3"),
    ("3-5 hours", "5 is one end of a range, not one number"),
    ("3 to 5", "5 is one end of a range, not one number"),
    ("between 10–20 apples", "20 is one end of a range, not one number"),
    ("2024-11-25", NONE),
    ("", NONE),
    ("no digits here", NONE),
    ("minus - sign", NONE),
    ("\\boxed{x+1}", "\\boxed{x+1} holds no single number"),
    ("1/0", "'1/0' is not a number"),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_number_table(text: str, expected: str) -> None:
    read = parse_number(text)
    if expected == NONE or not expected.lstrip("-").replace(".", "").isdigit():
        assert read == Failure(expected)
    else:
        assert read == Success(expected)


def test_the_table_is_long_enough() -> None:
    assert len(TABLE) >= 30


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("40,000", "40000"),
        ("40000.0", "40000"),
        ("$40,000", "40000"),
        (" 7 ", "7"),
        ("-3.", "-3"),
        ("45%", "45"),
        ("1.000.000", "1000000"),
        ("\\frac{3}{4}", "0.75"),
    ],
)
def test_read_number_takes_a_whole_string(text: str, value: str) -> None:
    read = read_number(text)
    assert read is not None
    assert read == read_number(value)


@pytest.mark.parametrize("text", ["Paris", "5 apples", "3-5", "3 to 5", "", "1 2"])
def test_read_number_refuses_anything_but_one_number(text: str) -> None:
    assert read_number(text) is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("40000", "40,000"), ("40,000", "40000"), ("1000000", "1.000.000"), ("0.5", ".50")],
)
def test_exact_match_and_numeric_match_agree_on_numbers_written_two_ways(
    answer: str, expected: str
) -> None:
    assert score_answer(MetricSpec(name="exact_match"), answer, expected) == 1.0
    assert score_answer(MetricSpec(name="numeric_match"), answer, expected) == 1.0


def test_exact_match_still_compares_text_that_is_not_a_number() -> None:
    assert score_answer(MetricSpec(name="exact_match"), "5 apples", "5 pears") == 0.0
    assert score_answer(MetricSpec(name="exact_match"), "40001", "40,000") == 0.0


# The readings before their shortcuts, verbatim: the grammar applied to the whole text.
_NUMBER = re.compile(grammar.LITERAL)
_MARKER = re.compile(r"####|(?i:\banswer(?:[ \t]+is)?[ \t]*:?)")


def _read_by_the_grammar(text: str) -> Decimal | None:
    plain = grammar._FRAC.sub(r"\1/\2", text.replace("\\!", "").replace("\\,", ""))
    found = grammar._WHOLE.fullmatch(plain)
    return None if found is None else grammar._value(found)


def _numbers_by_the_grammar(text: str) -> list[re.Match[str]]:
    skipped = [span.span() for span in grammar._SKIPPED.finditer(text)]
    return [
        match
        for match in _NUMBER.finditer(text)
        if not any(start <= match.start() < end for start, end in skipped)
    ]


def _parse_by_the_grammar(text: str) -> Result[str, str]:
    boxed = grammar._BOXED.findall(text)
    if boxed:
        value = _read_by_the_grammar(boxed[-1])
        if value is None:
            return Failure(f"\\boxed{{{boxed[-1]}}} holds no single number")
        return Success(grammar.canonical(value))
    source, chosen = text, -1
    markers = list(_MARKER.finditer(text))
    if markers and _numbers_by_the_grammar(text[markers[-1].end() :]):
        source, chosen = text[markers[-1].end() :], 0
    numbers = _numbers_by_the_grammar(source)
    if not numbers:
        return Failure("no number in response")
    index = chosen % len(numbers)
    match = numbers[index]
    if grammar._in_range(source, numbers, index):
        return Failure(f"{match.group(0).strip()} is one end of a range, not one number")
    value = grammar._value(match)
    if value is None:
        return Failure(f"{match.group(0)!r} is not a number")
    return Success(grammar.canonical(value))


# Texts dense in what the grammar looks at: digits, separators, signs, markers, boxes.
_PIECES = st.sampled_from(
    [
        *"0123456789",
        *" .,-+−/:%$#\n\t",
        "٣",
        "answer is ",
        "Answer:",
        "####",
        "\\boxed{",
        "}",
        "\\frac{",
        "{",
        "\\!",
        "\\,",
        "e",
        "to",
        "–",
        "x",
        "2024-11-25",
        "3:45",
        "1,000",
    ]
)
_TEXTS = st.lists(_PIECES, max_size=14).map("".join)
_PLAIN = st.from_regex(r"-?[0-9]{1,30}(\.[0-9]{1,30})?", fullmatch=True)


def _same(left: Decimal | None, right: Decimal | None) -> bool:
    return repr(left) == repr(right)  # the same value and the same spelling of it


@settings(max_examples=400)
@given(text=st.one_of(_TEXTS, _PLAIN, st.text(max_size=12)))
def test_read_number_reads_as_the_grammar_does(text: str) -> None:
    assert _same(read_number(text), _read_by_the_grammar(text))


@settings(max_examples=400)
@given(text=st.one_of(_TEXTS, _PLAIN.map(lambda number: f"The answer is {number}.")))
def test_parse_number_parses_as_the_grammar_does(text: str) -> None:
    assert parse_number(text) == _parse_by_the_grammar(text)


# Answers that are one run of digits where the parser looks (`_LONE_DIGITS`'s shortcut), and
# near misses: leading zeros, more digits than the decimal context keeps, a sign, a second dot,
# blanks of every kind around them.
_BLANKS = st.text(alphabet=" \t\n\r\u00a0\u2003\u3000\x0b", max_size=3)
_LONE = st.tuples(
    st.sampled_from(["", "The answer is", "Answer:", "####", "So 3 + 4, answer is", "It is"]),
    _BLANKS,
    st.sampled_from(["", "", "", "-", "+", "0", "00"]),
    st.from_regex(r"[0-9]{1,32}", fullmatch=True),
    st.sampled_from(["", ".", ".", "..", ". ", ".5", "%", ","]),
    _BLANKS,
).map("".join)


@settings(max_examples=600)
@given(text=_LONE)
def test_a_lone_number_parses_as_the_grammar_does(text: str) -> None:
    assert parse_number(text) == _parse_by_the_grammar(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("  7\n", "7"),
        ("Answer:\u00a00.", "0"),
        ("#### 12345678901234567890123456789", "12345678901234567890123456790"),  # rounded
    ],
)
def test_a_lone_number_is_its_digits_as_the_grammar_reads_them(text: str, expected: str) -> None:
    assert parse_number(text) == _parse_by_the_grammar(text) == Success(expected)


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_the_table_parses_as_the_grammar_does(text: str, expected: str) -> None:
    assert parse_number(text) == _parse_by_the_grammar(text)


@pytest.mark.parametrize(
    ("answer", "canonical"),
    [("12", "12"), ("0", "0"), ("007", "7"), ("٣٢", "32"), ("+12", "12"), ("120", "120")],
)
def test_digits_read_without_a_decimal_are_canonical_as_the_grammar_gives_them(
    answer: str, canonical: str
) -> None:
    text = f"The answer is {answer}."
    assert parse_number(text) == _parse_by_the_grammar(text) == Success(canonical)


# Ends `parse_numbers` answers by its one search (`_ANSWERED`), and near misses: a word before
# the marker, a `####` or a box around it, the marker spelled in other cases, a long text.
_ENDS = st.tuples(
    st.sampled_from(["", "x", "The ", "So 3 + 4, ", "#", "\\boxed{2} ", "1 ", "an", "-"]),
    st.sampled_from(["answer", "Answer", "ANSWER", "anſwer", "####", "answers"]),
    st.sampled_from(["", " is", "\tis", " is ", " IS", ":", " : ", " is:", "is"]),
    _BLANKS,
    st.sampled_from(["", "0", "00", "-", "٣"]),
    st.from_regex(r"[0-9]{0,31}", fullmatch=True),
    st.sampled_from(["", ".", "..", ". ", "%", ",", " 5", "}"]),
    _BLANKS,
    st.sampled_from(["", " " * 70, "a" * 90]),
).map(lambda parts: parts[-1] + "".join(parts[:-1]))


@settings(max_examples=600)
@given(texts=st.lists(st.one_of(_ENDS, _LONE, _TEXTS), max_size=5))
def test_parse_numbers_parses_each_text_as_parse_number_does(texts: list[str]) -> None:
    answers, errors = grammar.parse_numbers(texts)
    for text, answer, error in zip(texts, answers, errors, strict=True):
        parsed = parse_number(text)
        assert (answer, error) == (
            (parsed.unwrap(), None) if isinstance(parsed, Success) else (None, parsed.failure())
        )
    assert len(answers) == len(errors) == len(texts)


def test_parse_numbers_answers_a_text_ending_in_an_answer_by_one_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(text: str) -> Result[str, str]:
        raise AssertionError(f"parse_number({text!r})")

    monkeypatch.setattr(grammar, "parse_number", refused)
    texts = ["The answer is 42.", "Answer: 0", "so the answer is\t 1234 "]
    assert grammar.parse_numbers(texts) == (["42", "0", "1234"], [None, None, None])
