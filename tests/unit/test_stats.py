"""Means with 95% intervals, checked against scipy and statsmodels to 1e-10.

The mean is the mean of case means; the interval is Wilson (one 0/1 sample per case), Wilson on
the design-effect-adjusted n (several 0/1 samples per case), or Student-t over case means.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from themis.core.stats import Estimate, effective_n, estimate, t_quantile, t_quantile_975, wilson

TOL = 1e-10


def _wilson_reference(count: float, nobs: float) -> tuple[float, float]:
    low, high = proportion_confint(count, nobs, alpha=0.05, method="wilson")
    return float(low), float(high)


# --- Student-t quantiles -------------------------------------------------------------------------

DFS = [*range(1, 61), 75, 99, 100, 101, 250, 999, 1000, 1001, 1500, 10**4, 10**5, 10**7]


@pytest.mark.parametrize("df", DFS)
@pytest.mark.parametrize("q", [0.975, 0.95, 0.995, 0.999, 0.9, 0.6])
def test_t_quantile_matches_scipy(df: int, q: float) -> None:
    assert t_quantile(q, df) == pytest.approx(scipy_stats.t.ppf(q, df), abs=TOL, rel=0)


def test_t_quantile_975_is_the_95_percent_two_sided_quantile() -> None:
    # The 3-decimal table it replaces was off by up to 5e-4 (df 1: 12.706 vs 12.7062047...).
    assert abs(t_quantile_975(1) - 12.706204736174698) < TOL
    assert abs(t_quantile_975(30) - scipy_stats.t.ppf(0.975, 30)) < TOL
    assert t_quantile_975(30) > t_quantile_975(31) > t_quantile_975(100) > t_quantile_975(1000)
    assert t_quantile(0.5, 7) == 0.0


def test_t_quantile_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="df must be >= 1"):
        t_quantile_975(0)
    with pytest.raises(ValueError, match="q must be"):
        t_quantile(1.0, 3)


# --- Wilson -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n"),
    [(8, 10), (5, 10), (1, 2), (50, 100), (0, 10), (10, 10), (1, 1), (0, 24), (3.2, 7.5)],
)
def test_wilson_matches_statsmodels(successes: float, n: float) -> None:
    low, high = wilson(successes, n)
    want_low, want_high = _wilson_reference(successes, n)
    assert low == pytest.approx(want_low, abs=TOL, rel=0)
    assert high == pytest.approx(want_high, abs=TOL, rel=0)


@pytest.mark.parametrize("n", range(1, 300))
def test_wilson_bounds_at_the_edges_are_exactly_0_and_1(n: int) -> None:
    """Not 5.55e-17 or 0.9999999999999999 (seen for n = 3 and n = 10 before)."""
    assert wilson(0, n)[0] == 0.0
    assert wilson(n, n)[1] == 1.0


# --- estimate: which interval, and the mean ------------------------------------------------------


def test_estimate_of_nothing() -> None:
    assert estimate({}) == Estimate(None, None, None, 0, "none")


def test_binary_single_sample_uses_wilson() -> None:
    scores = {f"c{index}": [1.0 if index < 8 else 0.0] for index in range(10)}
    result = estimate(scores)
    assert result.method == "wilson"
    assert result.n == 10
    assert result.mean == pytest.approx(0.8)
    assert (result.ci_low, result.ci_high) == wilson(8, 10)


def _cluster_reference(scores: dict[str, list[float]]) -> tuple[float, float, float]:
    """Mean of case means and Wilson on n / deff, computed independently with numpy."""
    means = np.array([np.mean(values) for values in scores.values()])
    trials = sum(len(values) for values in scores.values())
    p = float(means.mean())
    variance_of_mean = float(means.var(ddof=1)) / len(means)
    n_eff = min(trials, p * (1 - p) / variance_of_mean)
    low, high = _wilson_reference(p * n_eff, n_eff)
    return p, low, high


@pytest.mark.parametrize(
    "scores",
    [
        {"a": [1.0, 1.0], "b": [0.0, 0.0], "c": [1.0, 0.0], "d": [1.0, 1.0]},
        {f"c{i}": [float(i % 3 == 0), float(i % 2 == 0), 1.0] for i in range(30)},
        {f"c{i}": [float((i * j) % 5 == 0) for j in range(1, 6)] for i in range(17)},
        # mid-run: cases with different numbers of scored samples
        {"busy": [1.0] * 20, **{f"c{i}": [0.0, float(i % 2)] for i in range(9)}},
    ],
)
def test_clustered_binary_scores_use_wilson_on_the_effective_n(
    scores: dict[str, list[float]],
) -> None:
    result = estimate(scores)
    mean, low, high = _cluster_reference(scores)
    assert result.method == "wilson-deff"
    assert result.n == sum(len(values) for values in scores.values())
    assert result.mean == pytest.approx(mean, abs=TOL, rel=0)
    assert result.ci_low == pytest.approx(low, abs=TOL, rel=0)
    assert result.ci_high == pytest.approx(high, abs=TOL, rel=0)


@pytest.mark.parametrize("value", [0.0, 1.0])
@pytest.mark.parametrize("samples", [2, 3, 10])
def test_all_0_or_all_1_clustered_data_never_collapses(value: float, samples: int) -> None:
    """24 cases x `samples`, every score equal: as wide as one sample per case, never [0, 0]."""
    clustered = estimate({f"c{i}": [value] * samples for i in range(24)})
    single = estimate({f"c{i}": [value] for i in range(24)})
    want_low, want_high = _wilson_reference(24 * value, 24)
    assert clustered.method == "wilson-deff"
    assert clustered.mean == value
    assert clustered.ci_low == pytest.approx(want_low, abs=TOL, rel=0)
    assert clustered.ci_high == pytest.approx(want_high, abs=TOL, rel=0)
    assert (clustered.ci_low, clustered.ci_high) == (single.ci_low, single.ci_high)
    assert clustered.ci_high - clustered.ci_low > 0.13  # [0, 0.138] for all 0
    assert (clustered.ci_low == 0.0) if value == 0.0 else (clustered.ci_high == 1.0)


def test_more_samples_never_look_more_certain_than_independent_trials() -> None:
    # Every case has the same mean: no between-case variance, so n_eff is capped at n.
    assert effective_n([0.5, 0.5, 0.5], 6) == 6.0
    scores = {f"c{i}": [1.0, 0.0] for i in range(10)}
    result = estimate(scores)
    assert (result.ci_low, result.ci_high) == wilson(10, 20)


def _t_reference(case_means: list[float]) -> tuple[float, float, float]:
    mean = float(np.mean(case_means))
    low, high = scipy_stats.t.interval(
        0.95, len(case_means) - 1, loc=mean, scale=scipy_stats.sem(case_means)
    )
    return mean, max(0.0, float(low)), min(1.0, float(high))


@pytest.mark.parametrize(
    "scores",
    [
        {"a": [0.6, 0.8], "b": [0.4, 0.6], "c": [0.8, 1.0], "d": [0.5, 0.7], "e": [0.7, 0.7]},
        {"a": [0.5], "b": [1.0], "c": [0.0]},
        {f"c{i}": [((i * 7) % 10) / 10, ((i * 3) % 10) / 10] for i in range(40)},
        {"busy": [0.9] * 20, **{f"c{i}": [0.0, 0.5] for i in range(9)}},
    ],
)
def test_other_scores_use_t_over_case_means(scores: dict[str, list[float]]) -> None:
    result = estimate(scores)
    mean, low, high = _t_reference([float(np.mean(values)) for values in scores.values()])
    assert result.method == "t-cluster"
    assert result.mean == pytest.approx(mean, abs=TOL, rel=0)
    assert result.ci_low == pytest.approx(low, abs=TOL, rel=0)
    assert result.ci_high == pytest.approx(high, abs=TOL, rel=0)


def test_the_mean_is_the_mean_of_case_means() -> None:
    """One definition, complete or partial: each case weighs the same."""
    partial = {"busy": [1.0] * 20, **{f"c{i}": [0.0, 0.5] for i in range(9)}}
    result = estimate(partial)
    assert result.mean == pytest.approx((1.0 + 9 * 0.25) / 10)
    assert result.n == 38
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert result.ci_low <= result.mean <= result.ci_high
    complete = {f"c{i}": [float(i % 2), 1.0, 0.0] for i in range(6)}
    trials = [score for values in complete.values() for score in values]
    assert estimate(complete).mean == pytest.approx(math.fsum(trials) / len(trials))


def test_single_case_with_many_samples_has_no_interval() -> None:
    result = estimate({"only": [1.0, 0.0, 1.0]})
    assert result.mean == pytest.approx(2 / 3)
    assert result.ci_low is None
    assert result.ci_high is None
    assert result.n == 3
