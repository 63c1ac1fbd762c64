"""The vectorised paired statistics equal, bit for bit, the pure-Python loops they replaced
(`paired_reference`), on random data of every shape the comparison feeds them: 0/1 case
differences (whole numbers: any summing order is exact), means of a few samples (summing order
matters: the drawing order is kept), odd sizes around the byte and word boundaries.

Where the differences take few distinct values (n >= `COUNTED` · k), the resampling counts
instead (ADR 0043): other digits, the same distributions, checked in `test_paired_counting.py`;
here only the sizes that still draw every unit are compared with the loops."""

from __future__ import annotations

import math
import random

import pytest

from tests.unit import paired_reference as reference
from themis.core.case_values import case_means
from themis.core.paired import COUNTED, EXACT_FLIPS, bootstrap_ci, mcnemar_exact, sign_flip_p
from themis.core.seeded import SeededGenerator


def _differences(kind: str, n: int, seed: int) -> list[float]:
    draw = random.Random(seed)
    if kind == "binary":
        return [float(draw.random() < 0.6) - float(draw.random() < 0.5) for _ in range(n)]
    if kind == "thirds":  # case means of three 0/1 samples
        return [(draw.randrange(4) - draw.randrange(4)) / 3 for _ in range(n)]
    return [draw.gauss(0.05, 1.0) for _ in range(n)]


SIZES = [1, 2, 7, 8, 9, 13, 63, 64, 65, 257, 1001]
KINDS = ["binary", "thirds", "real"]


def _drawn(kind: str, n: int, seed: int, magnitudes: bool) -> bool:
    """Whether these differences are resampled unit by unit (not counted)."""
    differences = _differences(kind, n, seed)
    values = {abs(d) for d in differences if d} if magnitudes else set(differences)
    return len(values) * COUNTED > n


BOOTSTRAPPED = [(k, n) for n in SIZES for k in KINDS if _drawn(k, n, n, magnitudes=False)]
FLIPPED = [
    (k, n)
    for n in [n for n in SIZES if n > EXACT_FLIPS] + [EXACT_FLIPS]
    for k in KINDS
    if n <= EXACT_FLIPS or _drawn(k, n, 7 * n, magnitudes=True)
]


def test_seeded_block_is_the_stream_of_next_u64() -> None:
    generator, one_by_one = SeededGenerator(2**64 - 3), SeededGenerator(2**64 - 3)
    assert generator.block(300).tolist() == [one_by_one.next_u64() for _ in range(300)]
    assert generator.next_u64() == one_by_one.next_u64()


@pytest.mark.parametrize(("kind", "n"), BOOTSTRAPPED)
def test_bootstrap_equals_the_loop_it_replaced(kind: str, n: int) -> None:
    differences = _differences(kind, n, n)
    new, old = SeededGenerator(n + 1), SeededGenerator(n + 1)
    assert bootstrap_ci(differences, 301, new) == reference.bootstrap_ci(differences, 301, old)
    assert new.next_u64() == old.next_u64()  # the same draws consumed


@pytest.mark.parametrize(("kind", "n"), FLIPPED)
def test_sign_flip_equals_the_loop_it_replaced(kind: str, n: int) -> None:
    differences = _differences(kind, n, 7 * n)
    new, old = SeededGenerator(n), SeededGenerator(n)
    assert sign_flip_p(differences, 503, new) == reference.sign_flip_p(differences, 503, old)
    assert new.next_u64() == old.next_u64()


def test_sign_flip_near_ties_equal_the_loop() -> None:
    """A difference set whose flipped sums often equal the observed one (the tie tolerance)."""
    differences = [0.1, 0.2, 0.3] * 7 + [-0.6] * 3
    for seed in range(5):
        new, old = SeededGenerator(seed), SeededGenerator(seed)
        assert sign_flip_p(differences, 999, new) == reference.sign_flip_p(differences, 999, old)


@pytest.mark.parametrize("seed", range(30))
def test_mcnemar_equals_the_sum_of_binomials(seed: int) -> None:
    draw = random.Random(seed)
    only_a, only_b = draw.randrange(0, 400), draw.randrange(0, 400)
    assert mcnemar_exact(only_a, only_b) == reference.mcnemar_exact(only_a, only_b)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_case_means_are_fsum_means(size: int) -> None:
    draw = random.Random(size)
    pool = [0.0, -0.0, 1.0, 0.1, 0.2, 1 / 3, -2.5, 1e-300]
    side = {f"c{i}": [draw.choice(pool) for _ in range(size)] for i in range(300)}
    cases = sorted(side)
    means, single = case_means(side, cases)
    expected = [math.fsum(side[case]) / size for case in cases]
    assert [str(value) for value in means.tolist()] == [str(value) for value in expected]
    assert single == (size == 1)
