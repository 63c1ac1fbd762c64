"""An execution keeps its trials' places in a thread as soon as it has read the whole plan,
while its last calls are out (ADR 0073); one that did not read it all, while the report is
built (ADR 0058). The run returns only once they are kept; a store failure there still fails
the run, a run failing meanwhile leaves no thread inside the store, and a process killed
meanwhile leaves no places, which readers compute and a resume keeps.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import themis
from tests.interrupts import killed_script
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_tables import read_log
from themis.app.usecases.run_places import PlacesKeeper
from themis.core.errors import StoreError
from themis.core.events import RunCompleted
from themis.core.planner import trial_refs
from themis.core.trial_columns import EventTexts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["models.strong.options.latency_s=0", "models.weak.options.latency_s=0"]


def _experiment(tmp_path: Path) -> themis.Experiment:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data", dirs_exist_ok=True)
    config = Path(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))
    return themis.Experiment.from_file(config, overrides=FAST)


def test_a_fresh_run_keeps_its_places_before_its_last_event_is_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    placing = threading.Event()
    seen: dict[str, Any] = {}
    save_places, append = DuckDBStore.save_places, DuckDBStore.append_texts

    def places_noted(store: DuckDBStore, *args: Any, **kwargs: Any) -> None:
        seen["places_thread"] = threading.get_ident()
        placing.set()
        save_places(store, *args, **kwargs)

    def append_waiting_for_the_places(
        store: DuckDBStore, run_id: str, seq: int, texts: EventTexts
    ) -> None:
        if texts.kinds[-1] == RunCompleted.kind:  # the writer appends texts (ADR 0125)
            # Kept only after the run's end, the places would never start while this waits.
            seen["places_before_the_end"] = placing.wait(timeout=5)
        append(store, run_id, seq, texts)

    monkeypatch.setattr(DuckDBStore, "save_places", places_noted)
    monkeypatch.setattr(DuckDBStore, "append_texts", append_waiting_for_the_places)
    store = tmp_path / "s.duckdb"
    result = _experiment(tmp_path).run(store=store, progress="off")
    assert seen["places_before_the_end"]
    assert seen["places_thread"] != threading.get_ident()
    with duckdb.connect(str(store), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM trial_places").fetchone()
    assert row == (result.report.planned,)


def test_a_derived_replay_keeps_its_places_before_its_trials_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its whole plan is checked before it runs, so the plan's record is complete before the
    first trial, and the places are kept beside the trials, not after the last (ADR 0112)."""
    from themis.app.usecases import runs

    store = tmp_path / "s.duckdb"
    source = _experiment(tmp_path).run(store=store, progress="off")
    placing = threading.Event()
    seen: dict[str, Any] = {}
    save_places, run_trio = DuckDBStore.save_places, runs._run_trio

    def places_noted(store: DuckDBStore, *args: Any, **kwargs: Any) -> None:
        seen["places_from"] = kwargs.get("places_from")
        placing.set()
        save_places(store, *args, **kwargs)

    def trials_waiting_for_the_places(*args: Any) -> Any:
        # Started only once the execution has read its whole plan, the places would never
        # start while this waits.
        seen["places_before_the_trials"] = placing.wait(timeout=5)
        return run_trio(*args)

    monkeypatch.setattr(DuckDBStore, "save_places", places_noted)
    monkeypatch.setattr(runs, "_run_trio", trials_waiting_for_the_places)
    derived = themis.replay(
        source.run_id,
        "score",
        store,
        config=tmp_path / "demo.toml",
        overrides=[*FAST, "metrics.exact_match.case_sensitive=true"],
    )
    assert derived.run_id != source.run_id
    assert seen["places_before_the_trials"]
    # Its trials were taken from the source's places: copied as they are, not compared.
    assert seen["places_from"] == source.run_id
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute(
            "SELECT count(*) FROM trial_places WHERE run_id = $1", [derived.run_id]
        ).fetchone()
    assert rows == (derived.report.planned,)


def test_a_run_failing_after_its_places_started_waits_for_them_to_be_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    save_places, append = DuckDBStore.save_places, DuckDBStore.append_texts

    def slow_places(store: DuckDBStore, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.3)
        save_places(store, *args, **kwargs)
        seen["places_kept"] = True

    def failing_at_the_end(store: DuckDBStore, run_id: str, seq: int, texts: EventTexts) -> None:
        if texts.kinds[-1] == RunCompleted.kind:  # the writer appends texts (ADR 0125)
            raise StoreError("disk full at the run's end")
        append(store, run_id, seq, texts)

    monkeypatch.setattr(DuckDBStore, "save_places", slow_places)
    monkeypatch.setattr(DuckDBStore, "append_texts", failing_at_the_end)
    with pytest.raises(StoreError, match="disk full at the run's end"):
        _experiment(tmp_path).run(
            store=tmp_path / "s.duckdb", progress="off", store_retry_attempts=1
        )
    assert seen.get("places_kept")  # no thread was left inside the store


def test_places_not_planned_by_the_run_are_written_while_the_report_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from themis.app.usecases import runs

    reporting = threading.Event()
    seen: dict[str, Any] = {}
    save_places, build_report = DuckDBStore.save_places, runs.build_report

    def places_waiting_for_the_report(store: DuckDBStore, *args: Any, **kwargs: Any) -> None:
        seen["places_thread"] = threading.get_ident()
        # Written one after the other, the report would never start while this waits.
        seen["beside_the_report"] = reporting.wait(timeout=5)
        save_places(store, *args, **kwargs)
        seen["places_kept"] = True

    def report(*args: Any, **kwargs: Any) -> Any:
        reporting.set()
        return build_report(*args, **kwargs)

    monkeypatch.setattr(DuckDBStore, "save_places", places_waiting_for_the_report)
    monkeypatch.setattr(runs, "build_report", report)
    # As if the execution had stopped before reading the whole plan (a budget's pause).
    monkeypatch.setattr(PlacesKeeper, "planned", lambda keeper: False)
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
    def failing(store: DuckDBStore, *args: Any, **kwargs: Any) -> None:
        raise StoreError("disk full while keeping the places")

    monkeypatch.setattr(DuckDBStore, "save_places", failing)
    with pytest.raises(StoreError, match="disk full while keeping the places"):
        _experiment(tmp_path).run(store=tmp_path / "s.duckdb", progress="off")


KILLED_WHILE_KEEPING_THE_PLACES = """
import os, signal, sys
from pathlib import Path
from tests.app.test_places_kept_early import _experiment
from themis.adapters.stores import duckdb_views
from themis.adapters.stores.duckdb import DuckDBStore

duckdb_views.PLACES_PART = 7  # some parts inserted, not committed, when the kill comes
keep = DuckDBStore.save_places

def killed_midway(store, snapshot, places, **kwargs):
    def refs():
        for index, ref in enumerate(places):
            if index == 20:
                os.kill(os.getpid(), signal.SIGKILL)
            yield ref
    keep(store, snapshot, refs(), **kwargs)

DuckDBStore.save_places = killed_midway
tmp = Path(sys.argv[1])
_experiment(tmp).run(store=tmp / "s.duckdb", progress="off")
"""


def test_a_kill_while_the_places_are_kept_leaves_none_and_a_resume_keeps_them(
    tmp_path: Path,
) -> None:
    killed_script(KILLED_WHILE_KEEPING_THE_PLACES, str(tmp_path))
    store = tmp_path / "s.duckdb"
    experiment = _experiment(tmp_path)
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM trial_places").fetchone() == (0,)
    # A reader places the trials in memory meanwhile; the resume keeps them, all of them.
    trials = read_log(str(store), experiment.run_id, ["trials"])["trials"]
    assert len(trials) == experiment.compiled.trial_count
    result = experiment.run(store=store, progress="off")
    assert result.report == _experiment(tmp_path).run(store=tmp_path / "fresh.duckdb").report
    with duckdb.connect(str(store), read_only=True) as con:
        kept = con.execute("SELECT trial_key FROM trial_places ORDER BY position").fetchall()
    assert [key for (key,) in kept] == [ref.trial_key for ref in trial_refs(experiment.compiled)]
