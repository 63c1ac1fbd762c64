"""A judge's response → its verdict and score in [0, 1], strictly; verdicts → one score.

Strict: a response the verdict format does not fit (no `VERDICT:` line, a number off the scale,
a label not in the set, JSON without a criterion) is a `Failure` naming why, which the judge
stage records as a judge failure with the raw text. It is never read as a score of 0.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from functools import lru_cache

from attrs import field, frozen
from returns.result import Failure, Result, Success

from themis.core.number_grammar import read_number
from themis.core.plugins import PluginKind, PluginRegistry, is_plugin_name
from themis.core.spec import VerdictSpec

UNPARSEABLE = "unparseable_verdict"  # the `error_kind` of a judge failure the parser refused
_FENCED_JSON = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _floats(value: Mapping[str, float]) -> Mapping[str, float]:
    return dict(value)


@frozen
class Verdict:
    """What a judge said (`verdict`: the number, label or JSON it gave), its score in [0, 1]
    and, for a JSON verdict, each criterion's own value."""

    verdict: str
    score: float
    criteria: Mapping[str, float] = field(factory=dict, converter=_floats)


@lru_cache(maxsize=32)
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


def parse_verdict(spec: VerdictSpec, text: str) -> Result[Verdict, str]:
    """The verdict in `text` under `spec`, or why there is none (see the module docstring)."""
    if spec.kind == "json":
        return _json_verdict(spec, text)
    found = _pattern(spec.pattern).findall(text)
    if not found:
        return Failure("no verdict line (e.g. 'VERDICT: ...') in the response")
    last = found[-1]
    return read_value(spec, last if isinstance(last, str) else last[0])


def read_verdict(
    spec: VerdictSpec, text: str, plugins: PluginRegistry | None = None
) -> Result[Verdict, str]:
    """`parse_verdict`, or the judge plugin `spec.kind` names (found in `plugins`) called as
    `f(text, **params)`: a score in [0, 1], or `None` for no verdict. A plugin that raises or
    returns anything else is a judge failure naming it, never a score."""
    if not is_plugin_name(spec.kind):
        return parse_verdict(spec, text)
    found = None if plugins is None else plugins.get(PluginKind.JUDGE, spec.kind)
    if found is None or found.implementation is None:
        return Failure(f"judge plugin {spec.kind!r} is not loaded")
    try:
        value = found.implementation(text, **spec.params)
    except Exception as error:  # a plugin's bug is this verdict's failure, named
        return Failure(f"judge plugin {spec.kind!r} raised {type(error).__name__}: {error}")
    if value is None:
        return Failure(f"judge plugin {spec.kind!r} found no verdict")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return Failure(f"judge plugin {spec.kind!r} returned {value!r}, not a score in [0, 1]")
    return Success(Verdict(verdict=f"{float(value):g}", score=float(value)))


def read_value(spec: VerdictSpec, text: str) -> Result[Verdict, str]:
    """A scale or label verdict's value (`4`, `correct`) as a `Verdict` (e.g. a human's)."""
    if spec.kind == "json":
        return _json_verdict(spec, text)
    value = text.strip().strip("\"'`*").strip()
    if spec.kind == "scale":
        number = read_number(value)
        if number is None:
            return Failure(f"verdict {value!r} is not a number")
        score = float(number)
        if not spec.min <= score <= spec.max:
            return Failure(f"verdict {value!r} is outside the scale {spec.min:g}..{spec.max:g}")
        return Success(Verdict(value, (score - spec.min) / (spec.max - spec.min)))
    by_label = {label.casefold(): (label, score) for label, score in spec.labels.items()}
    chosen = by_label.get(value.casefold().rstrip("."))
    if chosen is None:
        return Failure(f"verdict {value!r} is not one of the labels {', '.join(spec.labels)}")
    return Success(Verdict(chosen[0], chosen[1]))


def _json_object(text: str) -> Mapping[str, object] | None:
    fenced = _FENCED_JSON.findall(text)
    candidates = [*fenced] if fenced else [text.strip()]
    if not fenced and "{" in text:
        candidates.append(text[text.index("{") : text.rindex("}") + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _json_verdict(spec: VerdictSpec, text: str) -> Result[Verdict, str]:
    document = _json_object(text)
    if document is None:
        return Failure("no JSON object in the response")
    values: dict[str, float] = {}
    for name in spec.criteria:
        value = document.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return Failure(f"criterion {name!r} is missing or not a number ({value!r})")
        if not math.isfinite(value) or not spec.min <= value <= spec.max:
            return Failure(f"criterion {name!r} = {value!r} is outside {spec.min:g}..{spec.max:g}")
        values[name] = float(value)
    span = spec.max - spec.min
    score = statistics.fmean((value - spec.min) / span for value in values.values())
    shown = json.dumps(values, sort_keys=True)
    return Success(Verdict(shown, score, values))


def aggregate(aggregation: str, scores: Sequence[float]) -> float | None:
    """The candidate's score from its verdicts' scores (in repeat order): `mean`, `median`, or
    `majority` (the most frequent score; a tie goes to the one given first). `None` if none."""
    if not scores:
        return None
    if aggregation == "median":
        return float(statistics.median(scores))
    if aggregation == "majority":
        counts: dict[float, int] = {}
        for score in scores:
            counts[score] = counts.get(score, 0) + 1
        top = max(counts.values())
        return next(score for score in scores if counts[score] == top)
    return statistics.fmean(scores)
