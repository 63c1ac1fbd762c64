"""A research lab's own metric and parser, used by examples/plugin-metric.toml as Themis plugins.

Themis finds them as `mylab_metrics:within` and `mylab_metrics:last_number` once this directory
is importable (on `PYTHONPATH`, or installed as a package with entry points).
"""

from __future__ import annotations

import re

from themis import plugin


@plugin("metric", version="1")
def within(answer: str, expected: str, *, percent: float = 5.0) -> float:
    """1 when the answer is within `percent` % of the expected number, else 0."""
    try:
        got, want = float(answer), float(expected)
    except ValueError:
        return 0.0
    return float(abs(got - want) <= abs(want) * percent / 100)


@plugin("parser", version="1")
def last_number(text: str) -> str | None:
    """The last number in the response, or no answer."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    return numbers[-1] if numbers else None
