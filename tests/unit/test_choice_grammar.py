"""The `choice` parser's grammar, row by row (docs/reference/parsers-and-metrics.md).

Where a row notes Inspect AI, it is how Inspect's `multiple_choice` solver + `choice` scorer read
the same text: its `parse_answers` looks for `ANSWER: <letters>` (case-insensitive, a strict
line form first, then anywhere) and keeps the letters only if they are among the sample's
choices; text without `ANSWER:` is left to a last-resort fallback, or unread in older versions.
"""

from __future__ import annotations

import string

import pytest
from returns.result import Failure, Success

from themis.core.choice_grammar import RULES, deciding_rule, letters, parse_choice
from themis.core.scoring import parse_answer
from themis.core.spec import ParserSpec

NONE = "no choice letter in response"

# (response, number of choices, the letter read, or the reason it is unparsed)
TABLE: list[tuple[str, int, str]] = [
    # every documented form, for A (the letter the old last-resort pattern could not read)
    ("A", 4, "A"),
    ("A)", 4, "A"),
    ("A.", 4, "A"),
    ("(A)", 4, "A"),
    ("(a)", 4, "A"),
    ("[A]", 4, "A"),
    ("Answer: A", 4, "A"),  # Inspect AI: A
    ("ANSWER: A", 4, "A"),  # Inspect AI: A (its own prompt's format)
    ("answer: a", 4, "A"),
    ("The answer is A", 4, "A"),
    ("The answer is A.", 4, "A"),
    ("The correct answer is (A), because it is warm.", 4, "A"),
    ("**A**", 4, "A"),
    ("Final answer: **A**", 4, "A"),
    ("\\boxed{A}", 4, "A"),
    ("A) are seen in nature", 4, "A"),  # TruthfulQA: 65 such answers were unread before
    ("Option A is correct", 4, "A"),
    ("A is the correct answer.", 4, "A"),
    ("Vitamin D matters, so A", 4, "A"),  # not D: "D matters" is a word in a sentence
    # the other letters, each in some form
    ("B", 4, "B"),
    ("Answer: (C)", 4, "C"),
    ("D.", 4, "D"),
    ("E", 5, "E"),
    ("The answer is F", 6, "F"),
    ("G) the seventh option", 7, "G"),
    ("(h)", 8, "H"),
    ("I", 9, "I"),  # "I" is a letter like any other when it stands alone
    ("ANSWER: I", 10, "I"),
    ("The answer is I.", 10, "I"),
    ("Answer: J", 10, "J"),
    *((letter, 26, letter) for letter in "KLMNOPQRSTUVWXYZ"),
    # words and sentences are not letters
    ("The answer is a dog.", 4, NONE),
    ("The answer is: I think it is C", 4, "C"),
    ("I think the answer is C.", 4, "C"),
    ("A dog barks", 4, NONE),
    ("none of these", 4, NONE),
    ("", 4, NONE),
    ("ABC", 4, NONE),
    ("b", 4, NONE),  # a lone lower-case letter is a word, not an answer
    ("A or B", 4, NONE),
    ("Let me think. A is wrong.\nB", 4, "B"),
    ("apple(s), so (B)", 4, "B"),
    # letters beyond the item's choices are refused, never replaced by another
    ("E", 4, "E is not one of the 4 choices A-D"),  # Inspect AI: unread (not a choice)
    ("Answer: J", 4, "J is not one of the 4 choices A-D"),
    ("I", 4, "I is not one of the 4 choices A-D"),
    ("C", 2, "C is not one of the 2 choices A-B"),
    # ambiguous answers are unparsed, with the letters named
    ("The answer is A.\n\nThe answer is B.", 4, "ambiguous: reads A and B (marked rule)"),
    ("(A) is wrong, (B) and (C) are right", 4, "ambiguous: reads A and B and C (enclosed rule)"),
    ("A. Paris\nB. Berlin", 4, "ambiguous: reads A and B (line rule)"),
    # an explicit answer wins over letters elsewhere
    ("A) Paris is wrong. B) Berlin. Answer: B", 4, "B"),
    ("(A) looks plausible, but the final answer is C.", 4, "C"),
]


@pytest.mark.parametrize(("text", "count", "expected"), TABLE)
def test_choice_table(text: str, count: int, expected: str) -> None:
    read = parse_choice(text, count)
    if len(expected) == 1:
        assert read == Success(expected)
    else:
        assert read == Failure(expected)


def test_the_table_covers_every_letter_and_rule() -> None:
    read = {row[2] for row in TABLE if len(row[2]) == 1}
    assert read == set(string.ascii_uppercase)
    assert len(TABLE) >= 40
    decided_by = {deciding_rule(text) for text, _, _ in TABLE}
    assert decided_by == {rule.name for rule in RULES} | {None}


def test_letters() -> None:
    assert letters(4) == "ABCD"
    assert letters(26) == string.ascii_uppercase


def test_the_count_must_be_a_real_choice_count() -> None:
    assert parse_choice("A", 1) == Failure("the number of choices must be 2..26, got 1")
    assert parse_choice("A", 27) == Failure("the number of choices must be 2..26, got 27")


def test_parse_answer_takes_the_items_count_or_the_configured_one() -> None:
    assert parse_answer(ParserSpec(name="choice"), "E", 5) == Success("E")
    assert parse_answer(ParserSpec(name="choice", choices=4), "E") == Failure(
        "E is not one of the 4 choices A-D"
    )
    assert parse_answer(ParserSpec(name="choice"), "A") == Failure(
        "the choice parser needs the item's number of choices"
    )


def test_only_the_choice_parser_takes_a_choice_count() -> None:
    with pytest.raises(ValueError, match="only the choice parser"):
        ParserSpec(name="number", choices=4)
    with pytest.raises(ValueError, match="from 2 to 26"):
        ParserSpec(name="choice", choices=1)
