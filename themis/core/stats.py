"""Means with 95% confidence intervals that respect how the scores were sampled.

- One sample per case and 0/1 scores: the Wilson score interval (good coverage at small n and
  near 0 or 1, unlike the normal approximation).
- Otherwise: scores are averaged per case first (samples of one case are not independent), and a
  Student-t interval is taken over the case means, clipped to the scores' range [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from attrs import frozen

Z_95 = 1.959963984540054

# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@frozen
class Estimate:
    """A mean with its 95% interval; the bounds are `None` when n is too small to say."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    method: str


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = Z_95
    # Cornish-Fisher expansion; error below 1e-4 for df > 30.
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def wilson(successes: float, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval for `successes` out of `n`."""
    p = successes / n
    denominator = 1 + Z_95**2 / n
    centre = (p + Z_95**2 / (2 * n)) / denominator
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def estimate(scores_by_case: Mapping[str, Sequence[float]]) -> Estimate:
    """The mean of every score, with a 95% interval chosen as the module docstring says."""
    values = [score for scores in scores_by_case.values() for score in scores]
    n = len(values)
    if n == 0:
        return Estimate(None, None, None, 0, "none")
    mean = math.fsum(values) / n
    single = all(len(scores) == 1 for scores in scores_by_case.values())
    if single and all(value in (0.0, 1.0) for value in values):
        low, high = wilson(math.fsum(values), n)
        return Estimate(mean, low, high, n, "wilson")
    case_means = [math.fsum(scores) / len(scores) for scores in scores_by_case.values() if scores]
    k = len(case_means)
    if k < 2:
        return Estimate(mean, None, None, n, "t-cluster")
    centre = math.fsum(case_means) / k
    variance = math.fsum((value - centre) ** 2 for value in case_means) / (k - 1)
    half = t_quantile_975(k - 1) * math.sqrt(variance / k)
    # The mean of case means is the estimate the interval is built around; it equals the pooled
    # mean when every case has the same number of samples, and stays inside its CI when not.
    return Estimate(centre, max(0.0, centre - half), min(1.0, centre + half), n, "t-cluster")
