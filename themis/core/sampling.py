"""Metrics over the k samples of one case: pass@k (unbiased) and majority@k (a vote).

`pass_at_k` is the estimator of Chen et al. (2021): with n samples of which c are correct, the
probability that at least one of k samples drawn without replacement is correct,
1 − C(n−c, k)/C(n, k). The binomials overflow floats for realistic n, so it is taken as the
product 1 − ∏_{i=n−c+1}^{n} (1 − k/i), which stays within a few ulps of the exact value.

`vote` is the tie-broken majority vote the `majority` reducer and majority@k share: the answer
given most often wins; on a tie, the one whose first vote came from the lowest sample index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import field, frozen


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k for `c` correct samples out of `n` (1 ≤ k ≤ n)."""
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def _votes(value: Mapping[str, int]) -> Mapping[str, int]:
    return dict(value)


@frozen
class Vote:
    """The outcome of a majority vote: the winning answer (None: no sample had an answer), the
    sample whose answer it is (the first that gave it) and every answer's count."""

    answer: str | None
    sample: int | None
    counts: Mapping[str, int] = field(converter=_votes)


def vote(answers: Sequence[tuple[int, str | None]]) -> Vote:
    """The majority of `(sample index, parsed answer)` pairs; unparsed answers do not vote.

    Deterministic whatever the order of `answers`: counts tie-break on the lowest sample index
    at which an answer first appeared.
    """
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for sample, answer in answers:
        if answer is None:
            continue
        counts[answer] = counts.get(answer, 0) + 1
        first[answer] = min(first.get(answer, sample), sample)
    if not counts:
        return Vote(None, None, {})
    winner = min(counts, key=lambda answer: (-counts[answer], first[answer]))
    return Vote(winner, first[winner], {answer: counts[answer] for answer in sorted(counts)})


def majority_at_k(samples: Sequence[tuple[int, str | None, float]], k: int) -> float | None:
    """The score of the majority answer of samples 0 .. k-1.

    `samples` are `(sample index, parsed answer, score)`; a deterministic metric gives every
    sample with the same answer the same score, so the winner's score is that of the sample the
    vote names. `None` while one of the first `k` samples is unknown; 0 when none of them has an
    answer.
    """
    if k < 1:
        raise ValueError(f"majority@k needs k >= 1, got {k}")
    chosen = {sample: (answer, score) for sample, answer, score in samples if 0 <= sample < k}
    if len(chosen) < k:
        return None
    result = vote([(sample, answer) for sample, (answer, _) in chosen.items()])
    if result.sample is None:
        return 0.0
    return chosen[result.sample][1]
