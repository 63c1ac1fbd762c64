"""One side's case values on one metric, as a comparison pairs them: each case's mean.

A side comes either as a mapping (case id → the scores of its settled samples) or, from a
store that aggregated them already (the viewer's kept trial rows, ADR 0043), as `CaseMeans`:
sorted case ids with each case's mean and number of values, as arrays, so that pairing 50,000
cases is a numpy intersection rather than a Python loop. Either way a case's mean is
`fsum(values) / len(values)`, the report's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from attrs import frozen

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@frozen(eq=False)
class CaseMeans:
    """Case ids in sorted (code point) order, each case's mean and its number of values."""

    cases: npt.NDArray[np.str_]
    means: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]

    @classmethod
    def of(cls, side: Mapping[str, Sequence[float]]) -> CaseMeans:
        """The means of the cases that have a value."""
        import numpy as np

        cases = sorted(case for case, values in side.items() if values)
        means, _ = case_means(side, cases)
        counts = np.fromiter((len(side[case]) for case in cases), np.int64, len(cases))
        return cls(np.array(cases, dtype=np.str_), means, counts)

    @classmethod
    def from_sums(
        cls,
        cases: npt.ArrayLike,
        counts: npt.ArrayLike,
        sums: npt.ArrayLike,
        whole: npt.ArrayLike,
    ) -> CaseMeans | None:
        """The means of sorted cases from each one's number of values, their sum (however
        added) and whether all were whole numbers; cases of no value are left out. `None`
        unless sum / count is exactly the `fsum` mean for every case: a case of at most two
        values (their sum is rounded once in any order) or of whole numbers (every sum
        exact)."""
        import numpy as np

        all_sizes = np.asarray(counts, dtype=np.int64)
        keep = all_sizes > 0
        sizes = all_sizes[keep]
        totals = np.asarray(_filled(sums, 0.0), dtype=np.float64)[keep]
        exact = (sizes <= 2) | np.asarray(_filled(whole, False), dtype=bool)[keep]
        if not bool(exact.all()) or float(np.abs(totals).sum()) >= 2.0**53:
            return None
        return cls(np.asarray(cases, dtype=np.str_)[keep], totals / sizes + 0.0, sizes)


CaseValues = Mapping[str, Sequence[float]] | CaseMeans


def _filled(values: npt.ArrayLike, fill: float | bool) -> npt.ArrayLike:
    """`values` with its masked entries (DuckDB's NULLs) set to `fill`: `np.ma.filled` without
    its import (~50 ms, paid by a viewer's first comparison) when nothing is masked."""
    filled = getattr(values, "filled", None)  # a numpy masked array has it
    return values if filled is None else filled(fill)


def case_means(
    side: Mapping[str, Sequence[float]], cases: Sequence[str]
) -> tuple[npt.NDArray[np.float64], bool]:
    """Each case's mean, `fsum(values) / len(values)` as the report takes it, and whether every
    case has one value. Cases of one or two values take one numpy pass: a sum of at most two
    floats is rounded once, as `fsum` rounds it (`+ 0.0` gives `fsum`'s 0.0 for −0.0)."""
    import numpy as np

    lists = [side[case] for case in cases]
    sizes = {len(values) for values in lists}
    if sizes == {1}:
        return np.array([values[0] for values in lists], dtype=np.float64) + 0.0, True
    if sizes == {2}:
        pairs = np.array(lists, dtype=np.float64).reshape(len(lists), 2)
        return ((pairs[:, 0] + pairs[:, 1]) + 0.0) / 2, False
    means = [math.fsum(values) / len(values) for values in lists]
    return np.array(means, dtype=np.float64), sizes == {1}


def paired_means(
    side_a: CaseValues, side_b: CaseValues
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], bool, tuple[int, int]]:
    """The means of the cases both sides have, in sorted case order (A's, B's), whether every
    such case has one value on each side, and how many cases only A, and only B, has."""
    import numpy as np

    a = side_a if isinstance(side_a, CaseMeans) else CaseMeans.of(side_a)
    b = side_b if isinstance(side_b, CaseMeans) else CaseMeans.of(side_b)
    _, at_a, at_b = np.intersect1d(a.cases, b.cases, assume_unique=True, return_indices=True)
    single = bool((a.counts[at_a] == 1).all() and (b.counts[at_b] == 1).all())
    unpaired = (len(a.cases) - len(at_a), len(b.cases) - len(at_b))
    return a.means[at_a], b.means[at_b], single, unpaired
