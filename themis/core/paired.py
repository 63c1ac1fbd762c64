"""Paired statistics for comparing two sides on the same cases.

Each function takes the per-unit differences (B − A, one per paired case) or counts, and is
checked against scipy/statsmodels in `tests/unit/test_paired.py`:

- `mcnemar_exact`: the exact (binomial) McNemar p-value from the discordant counts.
- `paired_t`: the mean difference with its Student-t interval and p-value (scipy `ttest_rel`).
  With one unit per case, that interval is clustered by case by construction.
- `sign_flip_p`: the sign-flip permutation test of a zero mean difference; exact enumeration up
  to `EXACT_FLIPS` units, else Monte Carlo with a seeded generator.
- `bootstrap_ci`: the percentile interval of the mean difference, resampling units with a
  seeded generator (reproducible for a given seed).

Both resample by counting when the differences take few distinct values (binary scores, means
of a few samples; ADR 0043): a bootstrap round is then a multinomial draw of how often each
distinct value is drawn, and a sign-flip round a binomial draw per distinct magnitude of how
many of its units flip: the same resampling distributions as drawing every unit, at O(k)
instead of O(n) per round. Those draws come from numpy's legacy generator (`RandomState`,
whose streams numpy keeps frozen), seeded from the row's `SeededGenerator`. Differences with
many distinct values draw units from the `SeededGenerator` stream itself, as before.
- `holm`: Holm's step-down adjustment of a family of p-values.
- `minimum_detectable_effect`: the smallest true difference a two-sided level-α test on n
  paired units detects with the given power (normal approximation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from statistics import NormalDist
from typing import TYPE_CHECKING

from attrs import frozen

from themis.core.seeded import SeededGenerator

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
from themis.core.stats import t_quantile, t_two_sided_p

EXACT_FLIPS = 12  # 2**12 = 4,096 sign patterns: enumerate them rather than sample
_TIE = 1e-12  # relative tolerance when a resampled statistic equals the observed one
_CHUNK = 1 << 21  # array elements per block of resampling rounds (16 MiB of float64)
# Resample by counting when n >= COUNTED * (distinct values): k binomial draws a round cost
# about as much as COUNTED unit draws.
COUNTED = 32


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """The two-sided exact McNemar p-value for `only_a` pairs where only A succeeded and
    `only_b` where only B did: 2 · P(X <= min) for X ~ Binomial(only_a + only_b, 1/2), at most 1."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    smaller = min(only_a, only_b)
    # Σ C(n, i) for i <= smaller, each term from the last: exact integers, one product each.
    term = total = 1
    for i in range(smaller):
        term = term * (n - i) // (i + 1)
        total += term
    return float(min(Fraction(1), 2 * Fraction(total, 2**n)))


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
    counted = _counted_flip_hits(differences, threshold, rounds, generator)
    if counted is not None:
        return (1 + counted) / (1 + rounds)
    total = math.fsum(differences)
    return (1 + _flip_hits(differences, total, threshold, rounds, generator)) / (1 + rounds)


def counting_generator(generator: SeededGenerator) -> np.random.RandomState:
    """numpy's legacy generator (frozen streams: the same draws in every numpy version),
    seeded by the next two 64-bit draws of `generator` (as four 32-bit words)."""
    import numpy as np

    words = [int(draw) for draw in generator.block(2)]
    return np.random.RandomState([part for w in words for part in (w & 0xFFFFFFFF, w >> 32)])


def _counted_flip_hits(
    differences: Sequence[float], threshold: float, rounds: int, generator: SeededGenerator
) -> int | None:
    """`_flip_hits` by counting, or `None` when the differences take too many distinct
    magnitudes. A flipped sum is Σ_j a_j · (m_j − 2 F_j) over the distinct nonzero magnitudes
    a_j, m_j units having a_j and F_j ~ Binomial(m_j, 1/2) of them flipped: a unit's flipped
    difference ±a_j has the same distribution whichever its sign."""
    import numpy as np

    values = np.abs(np.asarray(differences, dtype=np.float64))
    magnitudes, sizes = np.unique(values[values != 0.0], return_counts=True)
    if len(magnitudes) * COUNTED > len(differences):
        return None
    draws = counting_generator(generator)
    flipped = np.zeros(rounds)
    for magnitude, size in zip(magnitudes.tolist(), sizes.tolist(), strict=True):
        flipped += magnitude * draws.binomial(size, 0.5, size=rounds)
    total = math.fsum(magnitude * size for magnitude, size in zip(magnitudes, sizes, strict=True))
    return int(np.count_nonzero(np.abs(total - 2.0 * flipped) >= threshold))


def _flip_hits(
    differences: Sequence[float],
    total: float,
    threshold: float,
    rounds: int,
    generator: SeededGenerator,
) -> int:
    """How many of `rounds` random sign patterns give |flipped sum| >= threshold.

    A flipped sum is total − 2 · (the sum of the flipped differences). Pattern bits come from
    `generator.bits(n)`, read a byte at a time: the flipped ones' sum is the sum over bytes of a
    table of every byte pattern's partial sum (`_partial_sums`), added byte after byte.
    """
    import numpy as np

    n = len(differences)
    tables = _partial_sums(differences)
    size, words = tables.shape[0], (n + 63) // 64
    offsets = np.arange(size, dtype=np.int64) * 256
    exact = _order_free(differences)
    hits = 0
    for chunk in _chunks(rounds, size):
        draws = generator.block(chunk * words).astype("<u8").reshape(chunk, words)
        flips = draws.view(np.uint8).reshape(chunk, words * 8)[:, :size].astype(np.int64)
        if n % 8:
            flips[:, -1] &= (1 << (n % 8)) - 1
        looked_up = tables.ravel()[flips + offsets]
        flipped = looked_up.sum(axis=1) if exact else np.cumsum(looked_up, axis=1)[:, -1]
        hits += int(np.count_nonzero(np.abs(total - 2.0 * flipped) >= threshold))
    return hits


def _partial_sums(differences: Sequence[float]) -> npt.NDArray[np.float64]:
    """Per run of 8 differences, the sum of those selected by each of the 256 bit patterns
    (a table row per run; a last short run is padded with zeros)."""
    import numpy as np

    size = (len(differences) + 7) // 8
    padded = np.zeros(size * 8)
    padded[: len(differences)] = differences
    chunks = padded.reshape(size, 8)
    sums = np.zeros((size, 256))
    for pattern in range(1, 256):
        low = pattern & -pattern
        sums[:, pattern] = sums[:, pattern ^ low] + chunks[:, low.bit_length() - 1]
    return sums


def _order_free(values: Sequence[float] | npt.NDArray[np.float64]) -> bool:
    """Whether any sum of any selection of `values`, added in any order, is exact: whole
    numbers whose absolute total stays below 2**53."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return bool(np.all(array == np.round(array)) and np.abs(array).sum() < 2.0**53)


def _chunks(rounds: int, width: int) -> Iterator[int]:
    """Round counts whose (rounds × width) arrays stay near `_CHUNK` elements."""
    step = max(1, _CHUNK // max(1, width))
    for start in range(0, rounds, step):
        yield min(step, rounds - start)


def quantile(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile of sorted values, interpolated linearly (numpy's default method)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_ci(
    differences: Sequence[float] | npt.NDArray[np.float64],
    rounds: int,
    generator: SeededGenerator,
    level: float = 0.95,
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean difference over `rounds` resamples.

    With few distinct values (n >= `COUNTED` · k), a round draws how often each is drawn
    (`_counted_means`). Else each round draws n indices as `generator.indices(n, n)` does (two
    per 64-bit draw, multiply-shift) and sums the drawn differences in drawing order, so the
    interval is the same, bit for bit, as the loop over rounds it replaced (ADR 0033)."""
    import numpy as np

    n = len(differences)
    if n == 0:
        raise ValueError("no paired differences")
    values = np.asarray(differences, dtype=np.float64)
    counted = _counted_means(values, rounds, generator)
    if counted is not None:
        return _percentile(np.sort(counted).tolist(), level)
    exact = _order_free(values)
    whole = values.astype(np.int64) if exact else values
    pairs, size = (n + 1) // 2, np.uint64(n)
    means = []
    for chunk in _chunks(rounds, n):
        draws = generator.block(chunk * pairs).reshape(chunk, pairs)
        # Indices below 2**32, so their uint64 bits read as int64 unchanged (no copy).
        low = (((draws & np.uint64(0xFFFFFFFF)) * size) >> np.uint64(32)).view(np.int64)
        high = (((draws >> np.uint64(32)) * size) >> np.uint64(32)).view(np.int64)[:, : n // 2]
        if exact:  # whole numbers: any order sums exactly
            sums = (whole[low].sum(axis=1) + whole[high].sum(axis=1)).astype(np.float64)
        else:  # the drawing order: low, high, low, high, ...
            drawn = np.empty((chunk, 2 * pairs))
            drawn[:, 0::2] = values[low]
            drawn[:, 1 : 2 * (n // 2) : 2] = values[high]
            sums = np.cumsum(drawn[:, :n], axis=1)[:, -1]
        means.append(sums / n)
    return _percentile(np.sort(np.concatenate(means)).tolist() if means else [], level)


def _percentile(ordered: list[float], level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    return quantile(ordered, tail), quantile(ordered, 1 - tail)


def _counted_means(
    values: npt.NDArray[np.float64], rounds: int, generator: SeededGenerator
) -> npt.NDArray[np.float64] | None:
    """Each round's resampled mean, drawn as the multinomial counts of the k distinct values
    (n draws with their shares as probabilities: the distribution of what n draws of units
    would give), or `None` when n < `COUNTED` · k."""
    import numpy as np

    distinct, counts = np.unique(values, return_counts=True)
    n = len(values)
    if len(distinct) * COUNTED > n:
        return None
    drawn = counting_generator(generator).multinomial(n, counts / n, size=rounds)
    sums = np.zeros(rounds)
    for column, value in enumerate(distinct.tolist()):  # a fixed order: the same sum anywhere
        sums += drawn[:, column] * value
    result: npt.NDArray[np.float64] = sums / n
    return result


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
