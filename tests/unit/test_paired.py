"""Paired statistics, one test per statistic, checked against statsmodels and scipy to 1e-9.

The seeded ones (bootstrap, Monte Carlo sign flips) are checked for reproducibility and against
scipy's own resampling within sampling error; a simulation shows that the paired test rejects
two identical models about as often as its level says.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from themis.core.comparison import Resampling, compare_cases, with_holm
from themis.core.paired import (
    EXACT_FLIPS,
    bootstrap_ci,
    holm,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_t,
    power_at,
    quantile,
    sign_flip_p,
)
from themis.core.seeded import SeededGenerator

TOL = 1e-9

# Fixed data: 20 cases' scores on two sides (continuous) and their differences.
SIDE_A = [0.62, 0.71, 0.55, 0.90, 0.48, 0.77, 0.66, 0.81, 0.59, 0.70,
          0.52, 0.88, 0.64, 0.73, 0.69, 0.58, 0.80, 0.61, 0.75, 0.67]  # fmt: skip
SIDE_B = [0.70, 0.69, 0.61, 0.93, 0.55, 0.79, 0.72, 0.80, 0.66, 0.78,
          0.50, 0.91, 0.70, 0.79, 0.68, 0.66, 0.85, 0.60, 0.81, 0.74]  # fmt: skip
DIFFERENCES = [b - a for a, b in zip(SIDE_A, SIDE_B, strict=True)]


def test_seeded_generator_is_splitmix64() -> None:
    generator = SeededGenerator(0)
    # SplitMix64's published first outputs for seed 0.
    assert generator.next_u64() == 0xE220A8397B1DCDAF
    assert generator.next_u64() == 0x6E789E6AA1B965F4
    draws = [SeededGenerator(7).below(6) for _ in range(3)]
    assert draws == [draws[0]] * 3  # the same seed, the same draw
    generator = SeededGenerator(1)
    counts = np.bincount([generator.below(6) for _ in range(60_000)], minlength=6)
    assert scipy_stats.chisquare(counts).pvalue > 0.001
    indices = SeededGenerator(5).indices(60_001, 7)
    assert len(indices) == 60_001
    assert scipy_stats.chisquare(np.bincount(indices, minlength=7)).pvalue > 0.001
    assert SeededGenerator(5).indices(10, 1000) == SeededGenerator(5).indices(10, 1000)
    bits = SeededGenerator(6).bits(100_000)
    assert bits < 1 << 100_000
    assert abs(bits.bit_count() - 50_000) < 5 * math.sqrt(25_000)
    signs = SeededGenerator(2).signs(130)
    assert len(signs) == 130
    assert set(signs) == {-1, 1}


@pytest.mark.parametrize(
    ("only_a", "only_b"),
    [(0, 0), (0, 1), (3, 10), (10, 3), (7, 7), (0, 25), (40, 61), (120, 90), (1, 500)],
)
def test_mcnemar_exact_matches_statsmodels(only_a: int, only_b: int) -> None:
    table = [[50, only_a], [only_b, 30]]
    expected = mcnemar(table, exact=True).pvalue
    assert mcnemar_exact(only_a, only_b) == pytest.approx(expected, abs=TOL, rel=TOL)


def test_paired_t_matches_scipy_ttest_rel() -> None:
    result = paired_t(DIFFERENCES)
    reference = scipy_stats.ttest_rel(SIDE_B, SIDE_A)
    interval = reference.confidence_interval(0.95)
    assert result.mean == pytest.approx(np.mean(DIFFERENCES), abs=TOL)
    assert result.p_value == pytest.approx(reference.pvalue, abs=TOL, rel=TOL)
    assert result.ci_low == pytest.approx(interval.low, abs=TOL)
    assert result.ci_high == pytest.approx(interval.high, abs=TOL)
    assert result.sd == pytest.approx(np.std(DIFFERENCES, ddof=1), abs=TOL)


def test_paired_t_without_spread_or_units() -> None:
    assert paired_t([0.0, 0.0, 0.0]).p_value == 1.0
    single = paired_t([0.5])
    assert (single.mean, single.ci_low, single.p_value) == (0.5, None, None)
    with pytest.raises(ValueError, match="no paired differences"):
        paired_t([])


@pytest.mark.parametrize("n", [2, 5, 9, EXACT_FLIPS])
def test_exact_sign_flip_matches_scipy_permutation_test(n: int) -> None:
    a, b = SIDE_A[:n], SIDE_B[:n]
    reference = scipy_stats.permutation_test(
        (b, a),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        n_resamples=np.inf,
        vectorized=False,
    )
    p = sign_flip_p(DIFFERENCES[:n], rounds=0, generator=SeededGenerator(0))
    assert p == pytest.approx(reference.pvalue, abs=TOL, rel=TOL)


def test_monte_carlo_sign_flip_is_seeded_and_near_the_exact_p() -> None:
    n = 16  # beyond EXACT_FLIPS: random sign patterns
    reference = scipy_stats.permutation_test(
        (SIDE_B[:n], SIDE_A[:n]),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        n_resamples=np.inf,
        vectorized=False,
    ).pvalue
    first = sign_flip_p(DIFFERENCES[:n], 4000, SeededGenerator(11))
    again = sign_flip_p(DIFFERENCES[:n], 4000, SeededGenerator(11))
    assert first == again
    # The Monte Carlo p has a standard error of sqrt(p(1-p)/4000) < 0.008.
    assert first == pytest.approx(reference, abs=0.025)


def test_bootstrap_is_reproducible_and_agrees_with_scipy() -> None:
    first = bootstrap_ci(DIFFERENCES, 4000, SeededGenerator(3))
    assert first == bootstrap_ci(DIFFERENCES, 4000, SeededGenerator(3))
    assert first != bootstrap_ci(DIFFERENCES, 4000, SeededGenerator(4))
    reference = scipy_stats.bootstrap(
        (np.array(DIFFERENCES),),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert first[0] == pytest.approx(reference.low, abs=0.004)
    assert first[1] == pytest.approx(reference.high, abs=0.004)


def test_quantile_interpolates_like_numpy() -> None:
    values = sorted(DIFFERENCES)
    for q in (0.0, 0.025, 0.3, 0.5, 0.975, 1.0):
        assert quantile(values, q) == pytest.approx(np.quantile(values, q), abs=1e-15)


def test_holm_matches_statsmodels() -> None:
    p_values = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.9]
    expected = multipletests(p_values, alpha=0.05, method="holm")[1]
    assert holm(p_values) == pytest.approx(list(expected), abs=1e-12)
    assert holm([]) == []


@pytest.mark.parametrize("n", [5, 20, 72, 500])
def test_minimum_detectable_effect_has_80_percent_power_by_statsmodels(n: int) -> None:
    sd = 0.37
    mde = minimum_detectable_effect(sd, n)
    # statsmodels' one-sample (ratio=0) normal power, both tails counted, like `power_at`.
    power = NormalIndPower().power(effect_size=mde / sd, nobs1=n, alpha=0.05, ratio=0)
    assert power == pytest.approx(0.8, abs=TOL)
    assert power_at(mde / sd, n) == pytest.approx(power, abs=TOL)
    solved = NormalIndPower().solve_power(nobs1=n, alpha=0.05, power=0.8, ratio=0)
    assert mde == pytest.approx(solved * sd, rel=1e-5)  # statsmodels' root finder's precision


def test_compare_cases_uses_mcnemar_for_one_binary_sample_per_case() -> None:
    a = {f"c{i}": [float(i % 3 == 0)] for i in range(30)}
    b = {f"c{i}": [float(i % 2 == 0)] for i in range(30)}
    b["extra"] = [1.0]
    row = compare_cases("g", "exact_match", a, b, Resampling())
    only_a = sum(1 for i in range(30) if i % 3 == 0 and i % 2 != 0)
    only_b = sum(1 for i in range(30) if i % 2 == 0 and i % 3 != 0)
    assert (row.test, row.discordant, row.n, row.only_b) == (
        "mcnemar-exact",
        (only_a, only_b),
        30,
        1,
    )
    assert row.p_value == pytest.approx(mcnemar([[0, only_a], [only_b, 0]]).pvalue, abs=TOL)
    assert row.delta == pytest.approx((only_b - only_a) / 30, abs=TOL)


def test_compare_cases_clusters_samples_by_case() -> None:
    # Three samples per case: the unit is the case mean, tested by sign flips.
    a = {f"c{i}": [float((i + s) % 4 == 0) for s in range(3)] for i in range(20)}
    b = {f"c{i}": [float((i + s) % 3 == 0) for s in range(3)] for i in range(20)}
    row = compare_cases("g", "m", a, b, Resampling(seed=5))
    differences = [sum(b[c]) / 3 - sum(a[c]) / 3 for c in sorted(a)]
    reference = scipy_stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    assert row.test == "sign-flip"
    assert (row.ci_low, row.ci_high) == pytest.approx((reference.low, reference.high), abs=TOL)
    assert row == compare_cases("g", "m", a, b, Resampling(seed=5))  # seeded: reproducible
    other = compare_cases("h", "m", b, a, Resampling(seed=5))
    rows = with_holm([row, other])
    expected = multipletests([row.p_value, other.p_value], method="holm")[1]
    assert [r.p_holm for r in rows] == pytest.approx(list(expected), abs=TOL)


def test_paired_test_false_positive_rate_is_near_alpha_for_identical_models() -> None:
    """Two models drawn from the same per-case success rates: the clustered paired test (case
    means, sign flips) and McNemar (one sample per case) reject at about α = 0.05."""
    generator = random.Random(2026)
    simulations, cases, samples = 300, 40, 3
    rejections = {"sign-flip": 0, "mcnemar-exact": 0}
    for simulation in range(simulations):
        difficulty = [generator.betavariate(2, 2) for _ in range(cases)]
        for draws in (samples, 1):

            def side(draws: int = draws, rates: list[float] = difficulty) -> dict[str, list[float]]:
                return {
                    f"c{i}": [float(generator.random() < p) for _ in range(draws)]
                    for i, p in enumerate(rates)
                }

            resampling = Resampling(seed=simulation, bootstrap_rounds=10, permutation_rounds=400)
            row = compare_cases(str(simulation), "m", side(), side(), resampling)
            rejections[row.test] += (row.p_value or 1.0) < 0.05
    rates = {test: count / simulations for test, count in rejections.items()}
    # 300 simulations: a rate's standard error at 0.05 is 0.0126. McNemar's exact test is
    # conservative (below α); neither may be far above it.
    assert 0.02 <= rates["sign-flip"] <= 0.085, rates
    assert 0.01 <= rates["mcnemar-exact"] <= 0.075, rates
    assert not math.isnan(sum(rates.values()))
