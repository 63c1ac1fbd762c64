"""Means with 95% intervals: Wilson for one binary sample per case, clustered t otherwise."""

from __future__ import annotations

import pytest

from themis.core.stats import Estimate, estimate, t_quantile_975, wilson


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (5, 10, 0.2366, 0.7634),
        (1, 2, 0.0945, 0.9055),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_known_values(successes: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson(successes, n)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


def test_wilson_edges_stay_in_unit_interval() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4)
    assert high <= 1.0
    assert high == pytest.approx(1.0, abs=1e-12)
    low, high = wilson(1, 1)
    assert 0.0 <= low < high <= 1.0


@pytest.mark.parametrize(
    ("df", "value"), [(1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (29, 2.045), (30, 2.042)]
)
def test_t_quantile_table(df: int, value: float) -> None:
    assert t_quantile_975(df) == value


@pytest.mark.parametrize(
    ("df", "value"), [(31, 2.0395), (40, 2.0211), (60, 2.0003), (100, 1.9840), (1000, 1.9623)]
)
def test_t_quantile_approximation_beyond_the_table(df: int, value: float) -> None:
    assert t_quantile_975(df) == pytest.approx(value, abs=2e-4)


def test_t_quantile_tends_to_the_normal_quantile() -> None:
    assert t_quantile_975(10**7) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile_975(30) > t_quantile_975(31) > t_quantile_975(100) > t_quantile_975(1000)


def test_t_quantile_rejects_df_below_one() -> None:
    with pytest.raises(ValueError, match="df must be >= 1"):
        t_quantile_975(0)


def test_estimate_of_nothing() -> None:
    assert estimate({}) == Estimate(None, None, None, 0, "none")


def test_binary_single_sample_uses_wilson() -> None:
    scores = {f"c{index}": [1.0 if index < 8 else 0.0] for index in range(10)}
    result = estimate(scores)
    assert result.method == "wilson"
    assert result.n == 10
    assert result.mean == pytest.approx(0.8)
    assert (result.ci_low, result.ci_high) == wilson(8, 10)


def test_non_binary_single_sample_uses_t_over_cases() -> None:
    result = estimate({"a": [0.5], "b": [1.0], "c": [0.0]})
    assert result.method == "t-cluster"
    assert result.mean == pytest.approx(0.5)


def test_multi_sample_uses_t_interval_over_case_means() -> None:
    # Case means 0.7, 0.5, 0.9, 0.6, 0.7: centre 0.68, s^2 = 0.088 / 4 = 0.022,
    # se = sqrt(0.022 / 5) = 0.066332, t(4) = 2.776, half-width = 0.184139.
    scores = {
        "a": [0.6, 0.8],
        "b": [0.4, 0.6],
        "c": [0.8, 1.0],
        "d": [0.5, 0.7],
        "e": [0.7, 0.7],
    }
    result = estimate(scores)
    assert result.method == "t-cluster"
    assert result.n == 10
    assert result.mean == pytest.approx(0.68)
    assert result.ci_low == pytest.approx(0.495861, abs=1e-6)
    assert result.ci_high == pytest.approx(0.864139, abs=1e-6)


def test_multi_sample_binary_scores_cluster_by_case() -> None:
    # 0/1 scores, but two samples per case: not independent, so not Wilson over 8 trials.
    result = estimate({"a": [1.0, 1.0], "b": [0.0, 0.0], "c": [1.0, 0.0], "d": [1.0, 1.0]})
    assert result.method == "t-cluster"
    assert result.mean == pytest.approx(0.625)
    assert result.ci_low == 0.0  # clipped: centre 0.625 - 3.182 * 0.2394 < 0
    assert result.ci_high == 1.0


def test_single_case_with_many_samples_has_no_interval() -> None:
    result = estimate({"only": [1.0, 0.0, 1.0]})
    assert result.mean == pytest.approx(2 / 3)
    assert result.ci_low is None
    assert result.ci_high is None
    assert result.n == 3


def test_mean_lies_within_its_interval_when_cases_have_unequal_samples() -> None:
    # Mid-run, cases can have different numbers of finished samples; the reported mean must be
    # the estimator the interval is built around (the mean of case means), not the pooled mean.
    scores = {"busy": [1.0] * 20, **{f"c{index}": [0.0, 0.5] for index in range(9)}}
    result = estimate(scores)
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert result.mean is not None
    assert result.ci_low <= result.mean <= result.ci_high
    assert result.mean == pytest.approx((1.0 + 9 * 0.25) / 10)
    assert result.n == 38
