"""The `number` parser's grammar, and the one reading of a number every metric shares.

`LITERAL` is what a number looks like: an optional sign (`-`, `+` or `−`, only where it cannot be
a hyphen: not right after a digit or a letter), then digits with comma groups (`40,000`), or
with two or more dot groups (`1.000.000`), or plain (`1000`, `3.5`, `.5`), an optional decimal
part after comma groups, an optional exponent (`1e5`), or a fraction of two integers (`3/4`).
A single dot group (`1.000`) is a decimal point; a decimal comma (`3,5`) is not read.

From a response, `parse_number` reads the answer in this order: the content of the last
`\\boxed{...}`; else the number after the last `####` or answer marker (`answer is`, `Answer:`);
else the last number in the text. Dates (`2024-11-25`, `11/25/2024`) and clock times (`3:45`)
are skipped, not read as numbers. A number that is one end of a range (`3-5`, `3–5`, `3 to 5`)
is no single answer: the parse fails and says so. Currency signs before and units or `%` after
a number are ignored: `$1,234.50` reads 1234.5 and `45%` reads 45. In `\boxed{}`, `\frac{a}{b}`
is the fraction a/b.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation, getcontext
from fractions import Fraction
from functools import lru_cache

from returns.result import Failure, Result, Success

_SIGN = r"(?P<sign>(?<![\w.,])[-+−])?"
_MAGNITUDE = (
    r"(?P<magnitude>"
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]*\d)"  # 40,000 / 1,234.5
    r"|\d{1,3}(?:\.\d{3}){2,}(?![.\d]*\d)"  # 1.000.000
    r"|\d+/\d+(?![/\d])"  # 3/4
    r"|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"  # 1000 / 3.5 / 1e5
    r"|\.\d+(?:[eE][-+]?\d+)?"  # .5
    r")"
)
LITERAL = _SIGN + r"(?<![\w.])" + _MAGNITUDE + r"(?!\d)"
# Every match starts with a sign, a digit or a dot: saying so first lets a search skip the rest
# of the text quickly, and matches the same.
_NUMBER = re.compile(r"(?=[-+−.\d])" + LITERAL)
_SKIPPED = re.compile(
    r"\b\d{4}-\d{1,2}-\d{1,2}\b"  # ISO date
    r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"  # 11/25/2024, 25.11.2024, 25-11-2024
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b"  # 3:45, 12:30:15
)
_RANGE_JOIN = re.compile(r"[ \t]*(?:-|–|—|to)[ \t]*", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_FRAC = re.compile(r"\\d?frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}")
_ANSWER_MARKER = r"(?i:\banswer(?:[ \t]+is)?[ \t]*:?)"
_MARKER = re.compile(r"(?=[#aA])(?:####|" + _ANSWER_MARKER + ")")
# A whole-string number: spaces, a currency sign before, a `%` or a full stop after; no words.
_WHOLE = re.compile(r"\s*[$€£¥]?\s*" + LITERAL + r"\s*%?\s*\.?\s*")
# The spelling `canonical` writes, and most expected values: `LITERAL` reads it as `Decimal`
# reads it, so it skips the grammar (a hypothesis test holds the two readings equal).
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Every date or time `_SKIPPED` matches holds a digit, a separator and a digit.
_SEPARATED = re.compile(r"\d[-/.:]\d")
# The commonest answer, all of what `parse_number` reads it from: one run of ASCII digits
# without a leading zero, between blanks, perhaps a full stop after it ("The answer is 42.").
# The grammar finds that one number in it and nothing else, spelled as `canonical` spells it.
_LONE = r"\s*([1-9][0-9]*|0)\.?\s*"
_LONE_DIGITS = re.compile(_LONE)
# The commonest response's end: an answer marker (not `####`), then `_LONE_DIGITS` to the end.
# Where a text without `\boxed{` holds it, it holds its last marker (no marker begins inside an
# answer marker, nor in what follows it), and its digits are what `parse_number` reads there.
_ANSWERED = re.compile(r"(?=[aA])" + _ANSWER_MARKER + _LONE + r"\Z")
# How far from a text's end `_ANSWERED` is looked for (a long response that holds none is
# not searched through twice): ample for a marker, blanks and the digits `canonical` keeps.
_ANSWERED_WITHIN = 80


def _value(match: re.Match[str]) -> Decimal | None:
    magnitude = match.group("magnitude")
    if "/" in magnitude:
        numerator, denominator = magnitude.split("/")
        if int(denominator) == 0:
            return None
        fraction = Fraction(int(numerator), int(denominator))
        value = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    else:
        grouped = magnitude.count(".") > 1
        digits = magnitude.replace(",", "").replace(".", "") if grouped else magnitude
        try:
            value = Decimal(digits.replace(",", ""))
        except InvalidOperation:
            return None
    return -value if match.group("sign") in ("-", "−") else value


def canonical(value: Decimal) -> str:
    """One spelling per value: `40000`, `1234.5`, `-0.25` (no exponent, no trailing zeros)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


@lru_cache(maxsize=256)
def read_number(text: str) -> Decimal | None:
    """The value of `text` when the whole of it is one number (see `LITERAL`), else `None`.

    Metrics use this on both the answer and the expected value, so "40,000", "40000", "$40,000"
    and "40000.0" are one number everywhere. Remembered for the last texts read: every metric
    of a trial reads the same two (a `Decimal` is immutable).
    """
    if _PLAIN.fullmatch(text) is not None:
        return -Decimal(text[1:]) if text[0] == "-" else Decimal(text)
    return _read_literal(text)


def _read_literal(text: str) -> Decimal | None:
    """`read_number` by the grammar alone."""
    plain = text
    if "\\" in text:  # `\frac`, `\!` and `\,` all start with one
        plain = _FRAC.sub(r"\1/\2", text.replace("\\!", "").replace("\\,", ""))
    found = _WHOLE.fullmatch(plain)
    return None if found is None else _value(found)


def _numbers(text: str) -> list[re.Match[str]]:
    found = list(_NUMBER.finditer(text))
    if not found or _SEPARATED.search(text) is None:
        return found
    skipped = [span.span() for span in _SKIPPED.finditer(text)]
    return [
        match for match in found if not any(start <= match.start() < end for start, end in skipped)
    ]


def _in_range(text: str, numbers: list[re.Match[str]], index: int) -> bool:
    def joined(left: re.Match[str], right: re.Match[str]) -> bool:
        between = text[left.end() : right.start("magnitude")]
        return _RANGE_JOIN.fullmatch(between) is not None

    before = index > 0 and joined(numbers[index - 1], numbers[index])
    after = index + 1 < len(numbers) and joined(numbers[index], numbers[index + 1])
    return before or after


def parse_number(text: str) -> Result[str, str]:
    """The answer number of a response in canonical form, or why there is none.

    Where the answer is read from (after the last marker, else the whole text) holding only
    `_LONE_DIGITS`, its digits are the answer without the grammar's search (~6 us less)."""
    boxed = _BOXED.findall(text) if "\\boxed{" in text else None
    if boxed:
        value = read_number(boxed[-1])
        if value is None:
            return Failure(f"\\boxed{{{boxed[-1]}}} holds no single number")
        return Success(canonical(value))
    numbers: list[re.Match[str]] = []
    markers = list(_MARKER.finditer(text))
    if markers:  # the first number after the last marker
        source, chosen = text[markers[-1].end() :], 0
        lone = _lone_digits(source)
        if lone is not None:
            return Success(lone)
        numbers = _numbers(source)
    if not numbers:  # else the last number
        source, chosen = text, -1
        lone = _lone_digits(source)
        if lone is not None:
            return Success(lone)
        numbers = _numbers(source)
    if not numbers:
        return Failure("no number in response")
    index = chosen % len(numbers)
    match = numbers[index]
    if _in_range(source, numbers, index):
        return Failure(f"{match.group(0).strip()} is one end of a range, not one number")
    spelled = _canonical_of(match)
    if spelled is None:
        return Failure(f"{match.group(0)!r} is not a number")
    return Success(spelled)


def parse_numbers(texts: Iterable[str]) -> tuple[list[str | None], list[str | None]]:
    """`parse_number` of each of `texts`, as two columns: its answer (`None` when it has none)
    and why it has none (else `None`). A text that ends in an answer marker and lone digits
    (`_ANSWERED`, in its last `_ANSWERED_WITHIN` characters) is answered by one search,
    without a `Result` (a derived replay's chunk of trials, ADR 0121); any other by
    `parse_number`."""
    answers: list[str | None] = []
    errors: list[str | None] = []
    answer, error = answers.append, errors.append
    answered, precision = _ANSWERED.search, getcontext().prec
    for text in texts:
        found = None if "\\boxed{" in text else answered(text, len(text) - _ANSWERED_WITHIN)
        if found is not None and len(digits := found.group(1)) <= precision:
            answer(digits)
            error(None)
            continue
        found_answer, why = answer_or_error(parse_number(text))
        answer(found_answer)
        error(why)
    return answers, errors


def answer_or_error(parsed: Result[str, str]) -> tuple[str | None, str | None]:
    """A parse's answer and why it has none: `(answer, None)` or `(None, why)`."""
    # `isinstance`, not `match ... case Success(answer)`: the class pattern costs ~0.7 us
    if isinstance(parsed, Success):
        return parsed.unwrap(), None
    return None, parsed.failure()  # a `Failure`: why the response holds no answer


def _lone_digits(source: str) -> str | None:
    """The digits of `source` when it is `_LONE_DIGITS` and they are within the decimal
    context's precision (`canonical` rounds longer ones), else `None`."""
    lone = _LONE_DIGITS.fullmatch(source)
    if lone is None:
        return None
    digits = lone.group(1)
    return digits if len(digits) <= getcontext().prec else None


def _canonical_of(match: re.Match[str]) -> str | None:
    """`canonical(_value(match))` (`None` when it has no value), without a `Decimal` for the
    commonest answer: ASCII digits without a sign or a leading zero, already canonical. Only up
    to the decimal context's precision: `canonical` rounds longer numbers, and so must this."""
    magnitude = match.group("magnitude")
    if (
        match.group("sign") is None
        and magnitude.isascii()
        and magnitude.isdigit()
        and (magnitude[0] != "0" or len(magnitude) == 1)
        and len(magnitude) <= getcontext().prec
    ):
        return magnitude
    value = _value(match)
    return None if value is None else canonical(value)
