"""Case means given as arrays (`CaseMeans`, ADR 0043) compare exactly as the case lists they
summarise: the means from sums are the `fsum` means wherever `from_sums` accepts them, and a
comparison row of `CaseMeans` sides equals the row of the lists."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from themis.core.case_values import CaseMeans
from themis.core.comparison import Resampling, compare_cases

POOL = [0.0, -0.0, 1.0, 2.0, 0.1, 0.2, 1 / 3, 0.7, -2.5, 1e-300]
sides = st.dictionaries(
    st.sampled_from([f"c{i}" for i in range(40)] + ["é", "Z", "a b"]),
    st.lists(st.sampled_from(POOL), min_size=0, max_size=4),
    max_size=43,
)


def _summed(side: dict[str, list[float]]) -> CaseMeans | None:
    """`from_sums` fed as a store would feed it: sorted cases (those of no value among them,
    counted 0), sums added in another order."""
    cases = sorted(side)
    sums = [sum(reversed(side[case])) for case in cases]
    whole = [all(v == round(v) for v in side[case]) for case in cases]
    counts = [len(side[case]) for case in cases]
    return CaseMeans.from_sums(cases, counts, sums, whole)


@settings(max_examples=300, deadline=None)
@given(sides)
def test_means_from_sums_are_the_fsum_means_where_accepted(side: dict[str, list[float]]) -> None:
    summed, listed = _summed(side), CaseMeans.of(side)
    exact = all(len(values) <= 2 or all(v == round(v) for v in values) for values in side.values())
    assert (summed is not None) == exact
    expected = [math.fsum(side[case]) / len(side[case]) for case in listed.cases.tolist()]
    assert [str(v) for v in listed.means.tolist()] == [str(v + 0.0) for v in expected]
    if summed is not None:
        assert summed.cases.tolist() == listed.cases.tolist()
        assert summed.counts.tolist() == listed.counts.tolist()
        assert [str(v) for v in summed.means.tolist()] == [str(v) for v in listed.means.tolist()]


@settings(max_examples=150, deadline=None)
@given(sides, sides)
def test_a_row_of_case_means_equals_the_row_of_case_lists(
    side_a: dict[str, list[float]], side_b: dict[str, list[float]]
) -> None:
    resampling = Resampling(seed=2, bootstrap_rounds=50, permutation_rounds=60)
    listed = compare_cases("g", "m", side_a, side_b, resampling)
    means_a, means_b = _summed(side_a), _summed(side_b)
    if means_a is not None and means_b is not None:
        assert compare_cases("g", "m", means_a, means_b, resampling) == listed
    assert compare_cases("g", "m", CaseMeans.of(side_a), side_b, resampling) == listed


@settings(max_examples=100, deadline=None)
@given(sides)
def test_masked_sums_as_duckdb_gives_them_read_as_their_filled_values(
    side: dict[str, list[float]],
) -> None:
    """A case of no value has a NULL sum and a NULL `whole` in DuckDB's numpy columns: masked
    entries, read as 0.0 and False."""
    import numpy as np

    cases = sorted(side)
    counts = [len(side[case]) for case in cases]
    empty = [not side[case] for case in cases]
    sums = [math.fsum(side[case]) for case in cases]
    whole = [all(v == round(v) for v in side[case]) for case in cases]
    masked = CaseMeans.from_sums(
        cases,
        counts,
        np.ma.masked_array([0.5 if e else s for e, s in zip(empty, sums, strict=True)], empty),
        np.ma.masked_array([True if e else w for e, w in zip(empty, whole, strict=True)], empty),
    )
    plain = CaseMeans.from_sums(
        cases, counts, sums, [w and not e for e, w in zip(empty, whole, strict=True)]
    )
    assert (masked is None) == (plain is None)
    if masked is not None and plain is not None:
        assert masked.cases.tolist() == plain.cases.tolist()
        assert masked.counts.tolist() == plain.counts.tolist()
        assert masked.means.tolist() == plain.means.tolist()
