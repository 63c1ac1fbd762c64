"""Resampling by counting (ADR 0043) draws from the same distributions as drawing every unit.

Where the differences take few distinct values, a bootstrap round is a multinomial draw of the
counts of each value and a sign-flip round a binomial draw per magnitude, so the seeded digits
differ from ADR 0033's stream; these tests check the numbers where they legitimately change:
the bootstrap interval against `scipy.stats.bootstrap(method="percentile")` and the sign-flip
p-value against an exact enumeration and the old implementation (`paired_reference`), each
within a few Monte Carlo standard errors, on binary, few-valued and continuous designs.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tests.unit import paired_reference as reference
from themis.core.comparison import Resampling, compare_cases
from themis.core.paired import COUNTED, _counted_means, bootstrap_ci, sign_flip_p
from themis.core.seeded import SeededGenerator

ROUNDS = 20_000


def _design(kind: str, n: int, seed: int) -> list[float]:
    draw = random.Random(seed)
    if kind == "binary":  # one 0/1 sample a side: differences -1, 0, 1
        return [float(draw.random() < 0.7) - float(draw.random() < 0.55) for _ in range(n)]
    if kind == "few":  # case means of three 0/1 samples a side: seven values
        return [(draw.randrange(4) - draw.randrange(4)) / 3 for _ in range(n)]
    return [draw.gauss(0.05, 0.4) for _ in range(n)]  # continuous: n distinct values


def _counted(differences: list[float]) -> bool:
    """Whether the bootstrap counts (few distinct values)."""
    return len(set(differences)) * COUNTED <= len(differences)


def _flips_counted(differences: list[float]) -> bool:
    """Whether the sign-flip test counts (few distinct nonzero magnitudes)."""
    return len({abs(d) for d in differences if d}) * COUNTED <= len(differences)


@pytest.mark.parametrize(("kind", "n"), [("binary", 400), ("few", 600), ("continuous", 300)])
def test_bootstrap_interval_agrees_with_scipy_percentile(kind: str, n: int) -> None:
    differences = _design(kind, n, n)
    assert _counted(differences) == (kind != "continuous")
    low, high = bootstrap_ci(differences, ROUNDS, SeededGenerator(n))
    scipy_interval = scipy_stats.bootstrap(
        (np.array(differences),),
        np.mean,
        n_resamples=ROUNDS,
        method="percentile",
        rng=np.random.default_rng(n),
    ).confidence_interval
    # A 2.5 % quantile of B resampled means has a standard error of about 2.7 / sqrt(B)
    # standard errors of the mean; two independent estimates differ by sqrt(2) times that.
    se = float(np.std(differences, ddof=1)) / math.sqrt(n)
    allowed = 5 * math.sqrt(2) * 2.7 / math.sqrt(ROUNDS) * se
    assert low == pytest.approx(scipy_interval.low, abs=allowed)
    assert high == pytest.approx(scipy_interval.high, abs=allowed)


def test_counted_resampled_means_have_the_bootstrap_distribution() -> None:
    """Beyond the interval's ends: the counted means' mean and spread are those of the mean of
    n draws with replacement (mean x̄, variance σ²/n with σ² the population variance)."""
    differences = np.array(_design("few", 900, 3))
    means = _counted_means(differences, ROUNDS, SeededGenerator(8))
    assert means is not None
    n = len(differences)
    sd = float(np.std(differences)) / math.sqrt(n)
    assert float(means.mean()) == pytest.approx(differences.mean(), abs=5 * sd / math.sqrt(ROUNDS))
    # The sample variance of B draws has a relative standard error of about sqrt(2 / B).
    assert float(means.std()) == pytest.approx(sd, rel=5 * math.sqrt(2 / ROUNDS))


def test_counting_is_seeded_and_advances_the_generator_alike() -> None:
    differences = _design("binary", 2000, 1)
    first, again = SeededGenerator(5), SeededGenerator(5)
    assert bootstrap_ci(differences, 999, first) == bootstrap_ci(differences, 999, again)
    assert first.next_u64() == again.next_u64()
    assert bootstrap_ci(differences, 999, SeededGenerator(6)) != bootstrap_ci(
        differences, 999, SeededGenerator(5)
    )
    assert sign_flip_p(differences, 999, SeededGenerator(5)) == sign_flip_p(
        differences, 999, SeededGenerator(5)
    )


def _exact_counted_p(differences: list[float]) -> float:
    """The exact sign-flip p-value of differences with few magnitudes: every combination of
    how many units of each magnitude flip, weighted by its number of sign patterns."""
    magnitudes: dict[float, int] = {}
    for value in differences:
        if value != 0.0:
            magnitudes[abs(value)] = magnitudes.get(abs(value), 0) + 1
    observed = abs(math.fsum(differences))
    threshold = observed - 1e-12 * max(1.0, observed)
    total = math.fsum(abs(value) for value in differences)
    sizes = list(magnitudes.items())
    hits = 0
    for flips in itertools.product(*(range(size + 1) for _, size in sizes)):
        flipped = math.fsum(a * f for (a, _), f in zip(sizes, flips, strict=True))
        if abs(total - 2.0 * flipped) >= threshold:
            hits += math.prod(math.comb(m, f) for (_, m), f in zip(sizes, flips, strict=True))
    return float(Fraction(hits, 2 ** sum(size for _, size in sizes)))  # zeros flip nothing


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counted_sign_flip_agrees_with_exact_enumeration(seed: int) -> None:
    draw = random.Random(seed)
    differences = [draw.choice([-1.0, 0.0, 1.0, 1.0, 0.5, -0.5]) for _ in range(4 * COUNTED)]
    assert _flips_counted(differences)
    exact = _exact_counted_p(differences)
    p = sign_flip_p(differences, ROUNDS, SeededGenerator(seed))
    assert p == pytest.approx(exact, abs=5 * math.sqrt(exact * (1 - exact) / ROUNDS) + 1e-4)


def test_drawn_sign_flip_agrees_with_exact_enumeration_on_small_n() -> None:
    """Continuous differences beyond `EXACT_FLIPS`: all 2**16 sign patterns enumerated."""
    differences = _design("continuous", 16, 4)
    patterns = np.array(list(itertools.product([1.0, -1.0], repeat=16)))
    observed = abs(math.fsum(differences))
    sums = np.abs(patterns @ np.array(differences))
    exact = float(np.mean(sums >= observed - 1e-12 * max(1.0, observed)))
    p = sign_flip_p(differences, ROUNDS, SeededGenerator(9))
    assert p == pytest.approx(exact, abs=5 * math.sqrt(exact * (1 - exact) / ROUNDS) + 1e-4)


@pytest.mark.parametrize(
    "values", [(-1.0, 0.0, 0.0, 1.0), (-2 / 3, -1 / 3, 0.0, 0.0, 1 / 3, 2 / 3, 1.0, -1.0)]
)
def test_counted_sign_flip_agrees_with_the_old_implementation(values: tuple[float, ...]) -> None:
    """3,000 cases, a small shift (p about 0.1): the old stream's and the counted p-values."""
    draw = random.Random(11)
    differences = [draw.choice(values) for _ in range(3000)] + [1 / 3] * 40
    assert _flips_counted(differences)
    old = reference.sign_flip_p(differences, 4000, SeededGenerator(2))
    new = sign_flip_p(differences, ROUNDS, SeededGenerator(2))
    assert 0.01 < old < 0.99
    spread = math.sqrt(old * (1 - old) / 4000 + new * (1 - new) / ROUNDS)
    assert new == pytest.approx(old, abs=5 * spread)


def test_a_comparison_row_reproduces_from_its_seed() -> None:
    draw = random.Random(4)
    a = {f"c{i}": [float(draw.random() < 0.6) for _ in range(3)] for i in range(3000)}
    b = {f"c{i}": [float(draw.random() < 0.65) for _ in range(3)] for i in range(3000)}
    row = compare_cases("g", "m", a, b, Resampling(seed=3))
    assert row.test == "sign-flip"
    assert row == compare_cases("g", "m", a, b, Resampling(seed=3))
    assert row.bootstrap_low is not None
    assert row.bootstrap_high is not None
    assert row.bootstrap_low < (row.delta or 0.0) < row.bootstrap_high
