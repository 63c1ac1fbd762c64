"""Builtin parsers (response text → answer) and metrics (answer vs expected → score in [0, 1]).

Each builtin has a version; it is part of the run's identity, so changing how an answer is parsed
or scored yields a new `run_id` instead of silently different numbers under the old one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, getcontext
from functools import lru_cache
from typing import TYPE_CHECKING

from returns.result import Failure, Result, Success

from themis.core.errors import PluginError
from themis.core.number_grammar import (
    answer_or_error,
    canonical,
    parse_number,
    parse_numbers,
    read_number,
)
from themis.core.plugins import PluginKind, is_plugin_name
from themis.core.spec import Case, MetricSpec, ParserSpec
from themis.core.validation import MAX_CHOICES

if TYPE_CHECKING:
    from themis.core.plugins import PluginRegistry

# number 2 / choice 2: the grammars of `number_grammar` and `choice_grammar` (issue 9).
# exact_match 2 / numeric_match 2: numbers compare by value, as `number_grammar.read_number`
# reads them.
PARSER_VERSIONS: dict[str, int] = {
    "raw": 1,
    "strip": 1,
    "number": 2,
    "regex": 1,
    "choice": 2,
    "code": 1,
}
METRIC_VERSIONS: dict[str, int] = {
    "exact_match": 2,
    "numeric_match": 2,
    "contains": 1,
    "execution": 1,
}
# A fenced block: its info string's first word (the language, may be empty) and its body.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.M)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def normalize_number(text: str) -> str | None:
    """`'1,234.50'` → `'1234.5'`; `None` when `text` is not one number."""
    value = read_number(text)
    return None if value is None else canonical(value)


def choice_count(spec: ParserSpec, case: Case) -> int | None:
    """How many choices the `choice` parser reads for `case`: `spec.choices`, else the case's
    `choices_field` (a list of options, or a count); `None` for other parsers or when unknown."""
    if spec.name != "choice":
        return None
    if spec.choices is not None:
        return spec.choices
    value = case.fields.get(spec.choices_field)
    if isinstance(value, list | tuple):
        count = len(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        return None
    return count if 2 <= count <= MAX_CHOICES else None


def parse_answer(
    spec: ParserSpec,
    text: str,
    choices: int | None = None,
    plugins: PluginRegistry | None = None,
) -> Result[str, str]:
    """Pull the answer out of `text`, or say why there is none.

    `choices`: the item's number of choices, for the `choice` parser (else `spec.choices`);
    `plugins`: where a parser plugin's implementation is found.
    """
    if is_plugin_name(spec.name):
        return _plugin_parse(spec, text, plugins)
    if spec.name == "raw":
        return Success(text)
    if spec.name == "strip":
        return Success(text.strip())
    if spec.name == "number":
        return parse_number(text)
    if spec.name == "regex":
        if spec.pattern is None:
            return Failure("regex parser needs a pattern")
        try:  # refused when a config compiles; a stored run may still hold a bad one
            found = _compiled(spec.pattern).search(text)
        except re.error as error:
            return Failure(f"invalid pattern {spec.pattern!r}: {error}")
        if found is None:
            return Failure(f"pattern {spec.pattern!r} did not match")
        try:
            value = found.group(spec.group)
        except IndexError:
            return Failure(f"pattern {spec.pattern!r} has no group {spec.group}")
        if value is None:  # an alternative without that group matched
            return Failure(f"group {spec.group} of pattern {spec.pattern!r} did not match")
        return Success(value.strip())
    if spec.name == "code":
        return parse_code(text, spec.language)
    if spec.name == "choice":
        count = choices if choices is not None else spec.choices
        if count is None:
            return Failure("the choice parser needs the item's number of choices")
        # Its patterns are compiled as it is imported: by a run that parses choices only.
        from themis.core.choice_grammar import parse_choice

        return parse_choice(text, count)
    return Failure(f"unknown parser {spec.name!r}")


def parse_answers(
    spec: ParserSpec,
    texts: Sequence[str],
    choices: Sequence[int | None],
    plugins: PluginRegistry | None = None,
) -> tuple[list[str | None], list[str | None]]:
    """`parse_answer` of each of `texts` (with its item's `choices`), as two columns: its answer
    (`None` when none) and why it has none (else `None`). The `number` parser's by
    `parse_numbers` (a derived replay's chunk of trials, ADR 0121)."""
    if spec.name == "number":
        return parse_numbers(texts)
    answers: list[str | None] = []
    errors: list[str | None] = []
    for text, options in zip(texts, choices, strict=True):
        answer, error = answer_or_error(parse_answer(spec, text, options, plugins))
        answers.append(answer)
        errors.append(error)
    return answers, errors


def _implementation(
    kind: PluginKind, name: str, plugins: PluginRegistry | None
) -> Callable[..., object]:
    found = None if plugins is None else plugins.get(kind, name)
    if found is None or found.implementation is None:
        raise PluginError(f"{kind} plugin {name!r} is not loaded")
    return found.implementation


def _plugin_parse(spec: ParserSpec, text: str, plugins: PluginRegistry | None) -> Result[str, str]:
    """A parser plugin returns the answer, or `None` (or raises `ValueError`) when none."""
    parse = _implementation(PluginKind.PARSER, spec.name, plugins)
    try:
        answer = parse(text, **spec.params)
    except ValueError as error:
        return Failure(f"parser {spec.name!r}: {error}")
    except Exception as error:  # a plugin's bug is the trial's failure, named, not a crash
        return Failure(f"parser {spec.name!r} raised {type(error).__name__}: {error}")
    if answer is None:
        return Failure(f"parser {spec.name!r} found no answer")
    return Success(str(answer))


def parse_code(text: str, language: str | None) -> Result[str, str]:
    """The first fenced code block (in `language` when given, else an untagged one), or the
    whole response when it holds no fence at all (a bare completion)."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return Success(text) if text.strip() else Failure("empty response")
    if language is None:
        return Success(blocks[0][1])
    wanted = language.casefold()
    for tag, body in blocks:
        if tag.casefold() == wanted:
            return Success(body)
    for tag, body in blocks:
        if not tag:
            return Success(body)
    return Failure(f"no {language} code block in response")


def _exact(spec: MetricSpec, answer: str, expected: str) -> float:
    got, want = read_number(answer), read_number(expected)
    if got is not None and want is not None:  # "40,000" and "40000" are one number
        return float(got == want)
    if spec.case_sensitive:
        return float(answer.strip() == expected.strip())
    return float(answer.strip().casefold() == expected.strip().casefold())


@lru_cache(maxsize=64)
def _tolerance(tolerance: float) -> Decimal:
    return Decimal(repr(tolerance))


def _numeric(spec: MetricSpec, answer: str, expected: str) -> float:
    got, want = read_number(answer), read_number(expected)
    if got is None or want is None:
        return 0.0
    return float(abs(got - want) <= _tolerance(spec.tolerance))


def _contains(spec: MetricSpec, answer: str, expected: str) -> float:
    if spec.case_sensitive:
        return float(expected.strip() in answer)
    return float(expected.strip().casefold() in answer.casefold())


_METRICS: dict[str, Callable[[MetricSpec, str, str], float]] = {
    "exact_match": _exact,
    "numeric_match": _numeric,
    "contains": _contains,
}


def score_answer(
    spec: MetricSpec,
    answer: str | None,
    expected: str | None,
    plugins: PluginRegistry | None = None,
) -> float:
    """The score of one parsed answer; no answer or no expected value scores 0.

    `execution` is not scored here: it runs the answer (`themis.core.execution`). A metric
    plugin (found in `plugins`) is called as `metric(answer, expected, **params)`.
    """
    if is_plugin_name(spec.name):
        if answer is None or expected is None:
            return 0.0
        return _plugin_score(spec, answer, expected, plugins)
    if spec.name not in _METRICS:
        raise ValueError(f"metric {spec.name!r} is not scored by comparing answers")
    if answer is None or expected is None:
        return 0.0
    return _METRICS[spec.name](spec, answer, expected)


def metric_scorer(
    spec: MetricSpec, plugins: PluginRegistry | None = None
) -> Callable[[str | None, str | None], float]:
    """`score_answer` of `spec` as one callable, which builtin (or plugin) scores decided once:
    every answer gets the score `score_answer` gives it (an execution's trials score each
    answer with every metric, so the name is looked up once, not per trial)."""
    compare = None if is_plugin_name(spec.name) else _METRICS.get(spec.name)
    if compare is None:  # a plugin, or a metric that does not compare: `score_answer` says so

        def scored(answer: str | None, expected: str | None) -> float:
            return score_answer(spec, answer, expected, plugins)

        return scored

    def compared(answer: str | None, expected: str | None) -> float:
        if answer is None or expected is None:
            return 0.0
        return compare(spec, answer, expected)

    return compared


def score_column(
    spec: MetricSpec,
    answers: Sequence[str | None],
    expected: Sequence[str | None],
    plugins: PluginRegistry | None = None,
) -> list[float]:
    """`score_answer` of each of `answers` against its `expected` answer (`metric_scorer`'s
    scores, ADR 0121): `numeric_match`'s of two short runs of ASCII digits by `int`s, which
    compare as their `Decimal`s do (no rounding within the context's precision)."""
    scored = metric_scorer(spec, plugins)
    tolerance = _tolerance(spec.tolerance) if spec.name == "numeric_match" else None
    if tolerance is None or not tolerance.is_finite():
        return list(map(scored, answers, expected))
    within = math.floor(tolerance)  # (an integer distance is within it iff within its floor)
    digits = min(getcontext().prec, _INT_DIGITS)
    scores = []
    for answer, wanted in zip(answers, expected, strict=True):
        if (
            answer is not None
            and wanted is not None
            and len(answer) <= digits
            and len(wanted) <= digits
            and answer.isdecimal()
            and wanted.isdecimal()
            and answer.isascii()
            and wanted.isascii()
        ):
            scores.append(float(abs(int(answer) - int(wanted)) <= within))
        else:
            scores.append(scored(answer, wanted))
    return scores


# The longest runs of digits `score_column` compares as `int`s.
_INT_DIGITS = 18


def _plugin_score(
    spec: MetricSpec, answer: str, expected: str, plugins: PluginRegistry | None
) -> float:
    score = _implementation(PluginKind.METRIC, spec.name, plugins)
    try:
        value = score(answer, expected, **spec.params)
    except Exception as error:
        raise PluginError(
            f"metric plugin {spec.name!r} raised {type(error).__name__}: {error}"
        ) from error
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PluginError(f"metric plugin {spec.name!r} returned {value!r}, not a score in [0, 1]")
    return float(value)
