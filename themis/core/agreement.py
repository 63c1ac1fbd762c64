"""Inter-rater agreement: Cohen's κ, Fleiss' κ and Krippendorff's α (nominal, ordinal, interval).

Pure and exact (stdlib floats), checked against statsmodels and the `krippendorff` package in
the tests. Each returns `None` where the statistic is undefined (no pairable ratings, or every
rating the same, so agreement by chance is already perfect).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence

LEVELS = ("nominal", "ordinal", "interval")
Rating = Hashable


def cohen_kappa(first: Sequence[Rating], second: Sequence[Rating]) -> float | None:
    """Cohen's κ of two raters who rated the same items (`first[i]` and `second[i]`)."""
    if len(first) != len(second):
        raise ValueError("cohen_kappa: both raters must rate the same items")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[c] * counts_b[c] for c in counts_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(items: Sequence[Sequence[Rating]]) -> float | None:
    """Fleiss' κ of items each rated by the same number (≥ 2) of raters."""
    if not items:
        return None
    raters = len(items[0])
    if raters < 2 or any(len(item) != raters for item in items):
        raise ValueError("fleiss_kappa: every item needs the same number (>= 2) of ratings")
    total: Counter[Rating] = Counter()
    agreement = 0.0
    for item in items:
        counts = Counter(item)
        total.update(counts)
        agreement += (sum(c * c for c in counts.values()) - raters) / (raters * (raters - 1))
    observed = agreement / len(items)
    ratings = len(items) * raters
    expected = sum((count / ratings) ** 2 for count in total.values())
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: Sequence[Sequence[float | None]], level: str) -> float | None:
    """Krippendorff's α of `units` (each unit: its ratings, `None` where a rater gave none) at
    measurement `level` (`nominal`, `ordinal` or `interval`); units with fewer than two ratings
    are not pairable and left out."""
    if level not in LEVELS:
        raise ValueError(f"krippendorff_alpha: level must be one of {', '.join(LEVELS)}")
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [values for values in pairable if len(values) >= 2]
    coincidences: defaultdict[tuple[float, float], float] = defaultdict(float)
    for values in pairable:
        weight = 1.0 / (len(values) - 1)
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidences[(a, b)] += weight
    marginals: defaultdict[float, float] = defaultdict(float)
    for (a, _), count in coincidences.items():
        marginals[a] += count
    n = sum(marginals.values())
    if n <= 1:
        return None
    delta = _distance(level, marginals)
    observed = sum(count * delta(a, b) for (a, b), count in coincidences.items())
    expected = sum(marginals[a] * marginals[b] * delta(a, b) for a in marginals for b in marginals)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def _distance(level: str, marginals: Mapping[float, float]) -> Callable[[float, float], float]:
    if level == "nominal":
        return lambda a, b: 0.0 if a == b else 1.0
    if level == "interval":
        return lambda a, b: (float(a) - float(b)) ** 2
    # ordinal: the squared distance in ranks, each value's rank the middle of its own mass
    position: dict[float, float] = {}
    cumulative = 0.0
    for value in sorted(marginals):
        cumulative += marginals[value]
        position[value] = cumulative - marginals[value] / 2
    return lambda a, b: (position[a] - position[b]) ** 2


__all__ = ["LEVELS", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha"]
