"""The paired statistics as pure Python loops, as `themis.core.paired` computed them before it
was vectorised (ADR 0033): the reference its numpy version must equal bit for bit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from themis.core.paired import EXACT_FLIPS, quantile
from themis.core.seeded import SeededGenerator

_TIE = 1e-12


def mcnemar_exact(only_a: int, only_b: int) -> float:
    n = only_a + only_b
    if n == 0:
        return 1.0
    smaller = min(only_a, only_b)
    tail = Fraction(sum(math.comb(n, i) for i in range(smaller + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


def sign_flip_p(differences: Sequence[float], rounds: int, generator: SeededGenerator) -> float:
    n = len(differences)
    observed = abs(math.fsum(differences))
    threshold = observed - _TIE * max(1.0, observed)
    if n <= EXACT_FLIPS:
        hits = 0
        for pattern in range(1 << n):
            total = math.fsum(-d if (pattern >> i) & 1 else d for i, d in enumerate(differences))
            hits += abs(total) >= threshold
        return hits / (1 << n)
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
    sums = [0.0] * 256
    for pattern in range(1, 256):
        low = pattern & -pattern
        index = low.bit_length() - 1
        sums[pattern] = sums[pattern ^ low] + (chunk[index] if index < len(chunk) else 0.0)
    return sums


def bootstrap_ci(
    differences: Sequence[float], rounds: int, generator: SeededGenerator, level: float = 0.95
) -> tuple[float, float]:
    n = len(differences)
    means = sorted(
        sum(map(differences.__getitem__, generator.indices(n, n))) / n for _ in range(rounds)
    )
    tail = (1 - level) / 2
    return quantile(means, tail), quantile(means, 1 - tail)
