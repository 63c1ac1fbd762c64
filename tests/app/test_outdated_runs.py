"""A run stored under older parser/metric versions stays readable, and is never extended."""

from __future__ import annotations

import pytest

import themis
from tests.unit.builders import small_spec
from themis.adapters.stores.memory import MemoryStore
from themis.core.errors import ThemisError
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot

# `small_spec()` as compiled before issue 9 (number parser, exact_match, numeric_match v1).
V1_RUN_ID = "401e28ed786aa9ae30ab46a0af7d0120e40c8caa10220e8fe25670d673146a0c"
OLD_VERSIONS = "number v1 \\(now v2\\), exact_match v1 \\(now v2\\), numeric_match v1 \\(now v2\\)"


def _store_with_an_old_run() -> MemoryStore:
    store = MemoryStore()
    store.save_snapshot(
        RunSnapshot(run_id=V1_RUN_ID, created_at=0.0, spec=small_spec(), runtime=RuntimeConfig())
    )
    return store


def test_an_old_run_is_reported() -> None:
    report = themis.load_report(V1_RUN_ID[:10], store=_store_with_an_old_run())
    assert report.run_id == V1_RUN_ID
    assert (report.planned, report.pending) == (16, 16)


def test_an_old_run_is_not_resumed_or_replayed() -> None:
    store = _store_with_an_old_run()
    with pytest.raises(ThemisError, match=f"cannot resume run 401e28ed786a: .*{OLD_VERSIONS}"):
        themis.resume(V1_RUN_ID, store=store)
    with pytest.raises(ThemisError, match=f"cannot replay run 401e28ed786a: .*{OLD_VERSIONS}"):
        themis.replay(V1_RUN_ID, "parse", store=store)
