"""Paired statistics for comparing two sides on the same cases.

Each function takes the per-unit differences (B − A, one per paired case) or counts, and is
checked against scipy/statsmodels in `tests/unit/test_paired.py`:

- `mcnemar_exact`: the exact (binomial) McNemar p-value from the discordant counts.
- `paired_t`: the mean difference with its Student-t interval and p-value (scipy `ttest_rel`).
  With one unit per case, that interval is clustered by case by construction.
- `sign_flip_p`: the sign-flip permutation test of a zero mean difference; exact enumeration up
  to `EXACT_FLIPS` units, else Monte Carlo with a seeded generator (n / 8 table look-ups a
  round).
- `bootstrap_ci`: the percentile interval of the mean difference, resampling units with a
  seeded generator (reproducible for a given seed).
- `holm`: Holm's step-down adjustment of a family of p-values.
- `minimum_detectable_effect`: the smallest true difference a two-sided level-α test on n
  paired units detects with the given power (normal approximation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from statistics import NormalDist

from attrs import frozen

from themis.core.seeded import SeededGenerator
from themis.core.stats import t_quantile, t_two_sided_p

EXACT_FLIPS = 12  # 2**12 = 4,096 sign patterns: enumerate them rather than sample
_TIE = 1e-12  # relative tolerance when a resampled statistic equals the observed one


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """The two-sided exact McNemar p-value for `only_a` pairs where only A succeeded and
    `only_b` where only B did: 2 · P(X <= min) for X ~ Binomial(only_a + only_b, 1/2), at most 1."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    smaller = min(only_a, only_b)
    tail = Fraction(sum(math.comb(n, i) for i in range(smaller + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


@frozen
class PairedT:
    """The mean of paired differences with its t interval and two-sided p-value."""

    mean: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    sd: float | None


def paired_t(differences: Sequence[float], level: float = 0.95) -> PairedT:
    """Student's t on the differences (df = n − 1); no interval or p-value below 2 units."""
    n = len(differences)
    if n == 0:
        raise ValueError("no paired differences")
    mean = math.fsum(differences) / n
    if n < 2:
        return PairedT(mean, None, None, None, None)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (n - 1))
    if sd == 0.0:
        return PairedT(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, 0.0)
    se = sd / math.sqrt(n)
    half = t_quantile(0.5 + level / 2, n - 1) * se
    return PairedT(mean, mean - half, mean + half, t_two_sided_p(mean / se, n - 1), sd)


def sign_flip_p(differences: Sequence[float], rounds: int, generator: SeededGenerator) -> float:
    """The two-sided sign-flip permutation p-value of a zero mean difference.

    Exact (every sign pattern) up to `EXACT_FLIPS` units: the share of patterns whose |sum| is
    at least the observed one. Beyond, `rounds` random patterns: (1 + hits) / (1 + rounds).
    """
    n = len(differences)
    if n == 0:
        raise ValueError("no paired differences")
    observed = abs(math.fsum(differences))
    threshold = observed - _TIE * max(1.0, observed)
    if n <= EXACT_FLIPS:
        hits = 0
        for pattern in range(1 << n):
            total = math.fsum(-d if (pattern >> i) & 1 else d for i, d in enumerate(differences))
            hits += abs(total) >= threshold
        return hits / (1 << n)
    # A flipped sum is total − 2 · (the sum of the flipped differences). The flipped ones come
    # eight at a time from a table of every byte pattern's partial sum: n / 8 look-ups a round.
    total = math.fsum(differences)
    tables = [_partial_sums(differences[start : start + 8]) for start in range(0, n, 8)]
    size = len(tables)
    hits = 0
    for _ in range(rounds):
        flips = generator.bits(n).to_bytes(size, "little")
        flipped = sum(map(list.__getitem__, tables, flips))
        hits += abs(total - 2.0 * flipped) >= threshold
    return (1 + hits) / (1 + rounds)


def _partial_sums(chunk: Sequence[float]) -> list[float]:
    """The sum of `chunk`'s values selected by each of the 256 bit patterns."""
    sums = [0.0] * 256
    for pattern in range(1, 256):
        low = pattern & -pattern
        index = low.bit_length() - 1
        sums[pattern] = sums[pattern ^ low] + (chunk[index] if index < len(chunk) else 0.0)
    return sums


def quantile(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile of sorted values, interpolated linearly (numpy's default method)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_ci(
    differences: Sequence[float], rounds: int, generator: SeededGenerator, level: float = 0.95
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean difference over `rounds` resamples."""
    n = len(differences)
    if n == 0:
        raise ValueError("no paired differences")
    means = sorted(
        sum(map(differences.__getitem__, generator.indices(n, n))) / n for _ in range(rounds)
    )
    tail = (1 - level) / 2
    return quantile(means, tail), quantile(means, 1 - tail)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def power_at(effect: float, n: int, alpha: float = 0.05) -> float:
    """The power of the two-sided level-`alpha` z test on n units to detect a standardized
    effect (difference / sd), counting rejections in either direction."""
    normal = NormalDist()
    z = normal.inv_cdf(1 - alpha / 2)
    shift = effect * math.sqrt(n)
    return normal.cdf(shift - z) + normal.cdf(-shift - z)


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest difference detected with `power` by a two-sided level-`alpha` test of the
    mean of n paired differences whose standard deviation is `sd` (solves `power_at` = power)."""
    if n < 1 or sd < 0:
        raise ValueError("need n >= 1 and sd >= 0")
    low, high = 0.0, 1.0
    while power_at(high, n, alpha) < power:
        high *= 2
    for _ in range(200):  # bisection to the last bit
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if power_at(middle, n, alpha) < power:
            low = middle
        else:
            high = middle
    return high * sd
