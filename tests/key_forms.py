"""`key_forms`: an autouse fixture that runs every test of a module that imports it twice, once
with each form of a run's keys in its fold and plan record: the dicts of `str` keys of a small
run, and the bytes of a large run's (`KeyIndex`, `HexStrings`, ADR 0090), forced on for every
run however small. A module opts in with `from tests.key_forms import key_forms`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["key_forms"]


@pytest.fixture(autouse=True, scope="module", params=["dict keys", "compact keys"])
def key_forms(request: pytest.FixtureRequest) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "compact keys":
            patch.setattr("themis.core.state.is_large_run", lambda trials: True)
            patch.setattr("themis.core.planner.is_large_run", lambda trials: True)
        yield request.param
