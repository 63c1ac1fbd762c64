"""A finished execution writes its trials' places in a thread while the report is built (ADR
0058), and the run returns only once they are kept; a store failure there still fails the run.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

import themis
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.errors import StoreError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["models.strong.options.latency_s=0", "models.weak.options.latency_s=0"]


def _experiment(tmp_path: Path) -> themis.Experiment:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data", dirs_exist_ok=True)
    config = Path(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))
    return themis.Experiment.from_file(config, overrides=FAST)


def test_the_places_are_written_while_the_report_is_built_and_kept_when_the_run_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from themis.app.usecases import runs

    reporting = threading.Event()
    seen: dict[str, Any] = {}
    save_places, build_report = DuckDBStore.save_places, runs.build_report

    def places_waiting_for_the_report(store: DuckDBStore, *args: Any) -> None:
        seen["places_thread"] = threading.get_ident()
        # Written one after the other, the report would never start while this waits.
        seen["beside_the_report"] = reporting.wait(timeout=5)
        save_places(store, *args)
        seen["places_kept"] = True

    def report(*args: Any, **kwargs: Any) -> Any:
        reporting.set()
        return build_report(*args, **kwargs)

    monkeypatch.setattr(DuckDBStore, "save_places", places_waiting_for_the_report)
    monkeypatch.setattr(runs, "build_report", report)
    store = tmp_path / "s.duckdb"
    result = _experiment(tmp_path).run(store=store, progress="off")
    assert seen["beside_the_report"]
    assert seen["places_thread"] != threading.get_ident()
    assert seen.get("places_kept")  # joined before the run returned
    with duckdb.connect(str(store), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM trial_places").fetchone()
    assert row is not None
    assert row[0] == result.report.planned


def test_a_store_failure_while_keeping_the_places_still_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(store: DuckDBStore, *args: Any) -> None:
        raise StoreError("disk full while keeping the places")

    monkeypatch.setattr(DuckDBStore, "save_places", failing)
    with pytest.raises(StoreError, match="disk full while keeping the places"):
        _experiment(tmp_path).run(store=tmp_path / "s.duckdb", progress="off")
