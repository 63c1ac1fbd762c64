"""`end_parts`: an autouse fixture that runs every test of a module that imports it twice, once
with a run's end reading its fold's maps and keys in parts of 2 rows (`END_PART`, the key
join's `_PART`: ADR 0103; the report's `FACTS_PART`: ADR 0119), so that every test's few
trials span many parts, and once with the sizes a run uses. A module opts in with
`from tests.end_parts import end_parts`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["end_parts"]

PARTS = (
    "themis.core.report_columns.END_PART",
    "themis.core.report_fold.END_PART",
    "themis.core.key_index._PART",
    "themis.core.report.FACTS_PART",
)


@pytest.fixture(autouse=True, scope="module", params=["parts of 2 rows", "whole parts"])
def end_parts(request: pytest.FixtureRequest) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "parts of 2 rows":
            for where in PARTS:
                patch.setattr(where, 2)
        yield request.param
