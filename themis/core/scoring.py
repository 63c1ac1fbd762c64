"""Builtin parsers (response text → answer) and metrics (answer vs expected → score in [0, 1]).

Each builtin has a version; it is part of the run's identity, so changing how an answer is parsed
or scored yields a new `run_id` instead of silently different numbers under the old one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache

from returns.result import Failure, Result, Success

from themis.core.spec import MetricSpec, ParserSpec

PARSER_VERSIONS: dict[str, int] = {"raw": 1, "strip": 1, "number": 1, "regex": 1, "choice": 1}
METRIC_VERSIONS: dict[str, int] = {"exact_match": 1, "numeric_match": 1, "contains": 1}

_NUMBER = re.compile(r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")
# Most explicit first: "answer is (B)", "(B)", a line that is just "B" / "B." / "B)".
_CHOICES = (
    re.compile(r"answer\s*(?:is|:)?\s*:?\s*\(?([A-J])\b", re.IGNORECASE),
    re.compile(r"\(([A-J])\)"),
    re.compile(r"^\s*([A-J])\s*[.):]?\s*$", re.MULTILINE),
    re.compile(r"\b([B-HJ])\b"),
)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def normalize_number(text: str) -> str | None:
    """`'1,234.50'` → `'1234.5'`; `None` when `text` is not a number."""
    try:
        value = float(text.replace(",", "").strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def parse_answer(spec: ParserSpec, text: str) -> Result[str, str]:
    """Pull the answer out of `text`, or say why there is none."""
    if spec.name == "raw":
        return Success(text)
    if spec.name == "strip":
        return Success(text.strip())
    if spec.name == "number":
        matches = _NUMBER.findall(text)
        if not matches:
            return Failure("no number in response")
        normalized = normalize_number(matches[-1])
        return Success(normalized) if normalized is not None else Failure("no number in response")
    if spec.name == "regex":
        if spec.pattern is None:
            return Failure("regex parser needs a pattern")
        found = _compiled(spec.pattern).search(text)
        if found is None:
            return Failure(f"pattern {spec.pattern!r} did not match")
        try:
            return Success(found.group(spec.group).strip())
        except IndexError:
            return Failure(f"pattern {spec.pattern!r} has no group {spec.group}")
    if spec.name == "choice":
        for pattern in _CHOICES:
            choice = pattern.search(text)
            if choice:
                return Success(choice.group(1).upper())
        return Failure("no choice letter in response")
    return Failure(f"unknown parser {spec.name!r}")


def _exact(spec: MetricSpec, answer: str, expected: str) -> float:
    if spec.case_sensitive:
        return float(answer.strip() == expected.strip())
    return float(answer.strip().casefold() == expected.strip().casefold())


def _numeric(spec: MetricSpec, answer: str, expected: str) -> float:
    try:
        got = float(answer.replace(",", ""))
        want = float(expected.replace(",", ""))
    except ValueError:
        return 0.0
    return float(abs(got - want) <= spec.tolerance)


def _contains(spec: MetricSpec, answer: str, expected: str) -> float:
    if spec.case_sensitive:
        return float(expected.strip() in answer)
    return float(expected.strip().casefold() in answer.casefold())


_METRICS: dict[str, Callable[[MetricSpec, str, str], float]] = {
    "exact_match": _exact,
    "numeric_match": _numeric,
    "contains": _contains,
}


def score_answer(spec: MetricSpec, answer: str | None, expected: str | None) -> float:
    """The score of one parsed answer; no answer or no expected value scores 0."""
    if answer is None or expected is None:
        return 0.0
    return _METRICS[spec.name](spec, answer, expected)
