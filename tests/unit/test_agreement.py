"""Agreement statistics against reference implementations: statsmodels (Cohen's and Fleiss' κ)
and the `krippendorff` package (α at every level), on fixed data, to 1e-9."""

from __future__ import annotations

import random

import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa, to_table

from themis.core import agreement

# Eight raters' scores of 30 items on a 1-5 scale, some missing: fixed, from a seeded generator.
_RNG = random.Random(20261203)
_TRUTH = [_RNG.randint(1, 5) for _ in range(30)]
RATINGS = [
    [
        None if _RNG.random() < 0.1 else max(1, min(5, truth + _RNG.choice((-1, 0, 0, 0, 1))))
        for truth in _TRUTH
    ]
    for _ in range(8)
]


def test_cohen_kappa_matches_statsmodels() -> None:
    pairs = [(a, b) for a, b in zip(RATINGS[0], RATINGS[1], strict=True) if None not in (a, b)]
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    table, _ = to_table(np.array(pairs))
    expected = cohens_kappa(table).kappa
    assert agreement.cohen_kappa(first, second) == pytest.approx(expected, abs=1e-9)


def test_fleiss_kappa_matches_statsmodels() -> None:
    items = [
        [RATINGS[rater][item] for rater in range(8)]
        for item in range(30)
        if all(RATINGS[rater][item] is not None for rater in range(8))
    ]
    assert len(items) >= 5
    table, _ = aggregate_raters(np.array(items))
    expected = fleiss_kappa(table, method="fleiss")
    assert agreement.fleiss_kappa(items) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_alpha_matches_the_krippendorff_package(level: str) -> None:
    data = np.array([[np.nan if v is None else float(v) for v in row] for row in RATINGS])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    units = [[RATINGS[rater][item] for rater in range(8)] for item in range(30)]
    actual = agreement.krippendorff_alpha(
        [[None if v is None else float(v) for v in unit] for unit in units], level
    )
    assert actual == pytest.approx(expected, abs=1e-9)


def test_labels_agree_with_the_package_at_the_nominal_level() -> None:
    labels = [["yes", "no", "yes", "yes"], ["yes", "no", "no", "yes"], ["no", "no", "yes", "yes"]]
    coded = {"no": 0.0, "yes": 1.0}
    data = np.array([[coded[v] for v in row] for row in labels])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    units = [[coded[row[item]] for row in labels] for item in range(4)]
    assert agreement.krippendorff_alpha(units, "nominal") == pytest.approx(expected, abs=1e-9)


def test_undefined_agreement_is_none_not_a_number() -> None:
    assert agreement.cohen_kappa(["a", "a"], ["a", "a"]) is None
    assert agreement.fleiss_kappa([["a", "a"], ["a", "a"]]) is None
    assert agreement.krippendorff_alpha([[1.0, 1.0], [1.0, 1.0]], "interval") is None
    assert agreement.krippendorff_alpha([[1.0], [2.0]], "nominal") is None  # nothing pairable


def test_perfect_and_bad_inputs() -> None:
    assert agreement.cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == 1.0
    with pytest.raises(ValueError, match="same items"):
        agreement.cohen_kappa(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="same number"):
        agreement.fleiss_kappa([["a", "b"], ["a"]])
    with pytest.raises(ValueError, match="level"):
        agreement.krippendorff_alpha([[1.0, 2.0]], "ratio")
