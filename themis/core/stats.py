"""Means with 95% confidence intervals that respect how the scores were sampled.

The mean is the mean of case means: each case weighs the same however many of its samples are
scored (in a complete run, with every case sampled alike, that is the mean over trials). The
interval, named in `Estimate.method`:

- `wilson`: one sample per case and 0/1 scores — the Wilson score interval over the cases.
- `wilson-deff`: several samples per case and 0/1 scores — the Wilson interval on the effective
  sample size n / deff, where the design effect deff compares the case means' variance with the
  binomial variance (samples of one case are correlated). When every score is 0, or every score
  is 1, the correlation cannot be estimated and each case counts once (n_eff = cases): more
  samples never make the interval narrower than that.
- `t-cluster`: other scores — a Student-t interval over the case means (exact quantiles),
  clipped to [0, 1].

Bounds within 1e-12 of 0 or 1 are snapped to them, so no bound reads 1.39e-17.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

from attrs import frozen

Z_95 = NormalDist().inv_cdf(0.975)
_SNAP = 1e-12


@frozen
class Estimate:
    """A mean with its 95% interval; the bounds are `None` when n is too small to say."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    method: str


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def _t_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom, t >= 0."""
    x = df / (df + t * t)
    a, b = df / 2.0, 0.5
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        incomplete = math.exp(log_front) * _continued_fraction(a, b, x) / a
    else:
        incomplete = 1.0 - math.exp(log_front) * _continued_fraction(b, a, 1.0 - x) / b
    return incomplete / 2.0


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom (a two-sided p-value)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    x = df / (df + t * t)
    if x >= 1.0:  # |t| too small to move x off 1: no evidence at all
        return 1.0
    if x <= 0.0:
        return 0.0
    return min(1.0, 2.0 * _t_tail(abs(t), df))


def _t_density(t: float, df: float) -> float:
    log_density = (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(t * t / df)
    )
    return math.exp(log_density)


def _t_expansion(q: float, df: float) -> float:
    """Hill's (1970) expansion of the t quantile in 1/df: error below 1e-14 for df > 1000."""
    z = NormalDist().inv_cdf(q)
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / df ** (power + 1) for power, term in enumerate(terms))


def t_quantile(q: float, df: int) -> float:
    """The `q` quantile (0.5 <= q < 1) of Student's t with `df` degrees of freedom, to ~1e-13.

    Closed forms for df 1 and 2; Newton's method on the exact tail (incomplete beta) up to
    df 1000; Hill's expansion beyond, where its error is below 1e-14.
    """
    if df < 1:
        raise ValueError("df must be >= 1")
    if not 0.5 <= q < 1.0:
        raise ValueError("q must be in [0.5, 1)")
    if q == 0.5:
        return 0.0
    if df == 1:
        return math.tan(math.pi * (q - 0.5))
    if df == 2:
        return (2 * q - 1) / math.sqrt(2 * q * (1 - q))
    if df > 1000:
        return _t_expansion(q, df)
    tail = 1.0 - q
    t = _t_expansion(q, df)
    for _ in range(100):
        step = (_t_tail(t, df) - tail) / _t_density(t, df)
        t += step
        if abs(step) <= 1e-14 * t:
            break
    return t


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (two-sided 95%)."""
    return t_quantile(0.975, df)


def _snap(value: float) -> float:
    if abs(value) < _SNAP:
        return 0.0
    if abs(value - 1.0) < _SNAP:
        return 1.0
    return value


def wilson(successes: float, n: float) -> tuple[float, float]:
    """The Wilson score 95% interval for `successes` out of `n` (both may be fractional)."""
    p = successes / n
    denominator = 1 + Z_95**2 / n
    centre = (p + Z_95**2 / (2 * n)) / denominator
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n * n)) / denominator
    low = 0.0 if successes <= 0 else _snap(max(0.0, centre - half))
    high = 1.0 if successes >= n else _snap(min(1.0, centre + half))
    return low, high


def effective_n(case_means: Sequence[float], trials: int) -> float:
    """The trials' effective sample size, n / deff, for 0/1 scores clustered in cases.

    deff = (variance of the mean of case means) / (binomial variance p(1-p)/n), so
    n_eff = p(1-p) / (s^2 / k). With p at 0 or 1 the variance is 0 and the correlation unknown:
    each case counts once (n_eff = k). n_eff never exceeds n (deff >= 1).
    """
    k = len(case_means)
    p = math.fsum(case_means) / k
    variance = math.fsum((value - p) ** 2 for value in case_means) / (k - 1)
    if p <= 0.0 or p >= 1.0:
        return float(k)
    if variance == 0.0:
        return float(trials)
    return min(float(trials), p * (1 - p) / (variance / k))


def estimate(scores_by_case: Mapping[Any, Sequence[float]]) -> Estimate:
    """The mean of case means, with a 95% interval chosen as the module docstring says."""
    groups = [scores for scores in scores_by_case.values() if scores]
    n = sum(len(scores) for scores in groups)
    if n == 0:
        return Estimate(None, None, None, 0, "none")
    case_means = [case_mean(scores) for scores in groups]
    binary = all(value in (0.0, 1.0) for scores in groups for value in scores)
    return estimate_of_means(case_means, n, binary=binary)


def case_mean(scores: Sequence[float]) -> float:
    """One case's mean, as `estimate` takes it."""
    return math.fsum(scores) / len(scores)


def estimate_of_means(case_means: Sequence[float], n: int, *, binary: bool) -> Estimate:
    """`estimate` of cases whose means are `case_means` (in any order: every sum is exact),
    over `n` scores in all, `binary` when each is 0 or 1."""
    if n == 0:
        return Estimate(None, None, None, 0, "none")
    k = len(case_means)
    mean = _snap(math.fsum(case_means) / k)
    if binary and n == k:
        low, high = wilson(math.fsum(case_means), k)
        return Estimate(mean, low, high, n, "wilson")
    if k < 2:
        return Estimate(mean, None, None, n, "wilson-deff" if binary else "t-cluster")
    if binary:
        n_eff = effective_n(case_means, n)
        low, high = wilson(mean * n_eff, n_eff)
        return Estimate(mean, low, high, n, "wilson-deff")
    variance = math.fsum((value - mean) ** 2 for value in case_means) / (k - 1)
    half = t_quantile_975(k - 1) * math.sqrt(variance / k)
    low, high = _snap(max(0.0, mean - half)), _snap(min(1.0, mean + half))
    return Estimate(mean, low, high, n, "t-cluster")
