"""A followed run's kept trial rows are brought up to date from what its log added (ADR 0052):
at every step of a growing log, in the process that holds the store and from its file, they
answer every query as a copy made afresh; a log that is not the one copied is copied anew; on
release they are handed to the viewer of the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.viewer.conftest import ViewerStore
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_browse import LogBrowser
from themis.app.api import viewer_data as data
from themis.app.api.viewer_cache import ViewerCache

Ask = Callable[[LogBrowser], Any]


def _asks(run: str) -> list[Ask]:
    return [
        lambda b: b.trials(run, limit=500),
        lambda b: b.trials(run, search="scored", sort="case_id", descending=True),
        lambda b: b.failure_kinds(run),
        lambda b: b.trial_scores(run, ["exact_match"]),
    ]


def _log_without(store: DuckDBStore, run: str, after: int) -> None:
    """Set aside the run's events after seq `after` (in `aside`), as if not logged yet; the
    log's rows are made one event each first (`event_batches` rows of one), so that the
    edits below name events by seq."""
    with store.cursor() as con:
        con.execute(
            "CREATE TABLE single AS SELECT run_id, seq, 1, kind, coalesce(stage, ''),"
            " CAST(recorded_at AS VARCHAR), to_json([trial_key]), payload FROM events"
        )
        con.execute("DELETE FROM event_batches")
        con.execute("INSERT INTO event_batches SELECT * FROM single")
        con.execute("CREATE TABLE aside AS SELECT * FROM event_batches WHERE run_id = $1", [run])
        con.execute("DELETE FROM event_batches WHERE run_id = $1 AND seq > $2", [run, after])


_LATER = "recorded_at = CAST(CAST(recorded_at AS DOUBLE) + 1 AS VARCHAR)"


def _log_through(store: DuckDBStore, run: str, upto: int) -> int:
    """Log the events set aside through seq `upto`; the run's event count."""
    with store.cursor() as con:
        con.execute(
            "INSERT INTO event_batches SELECT * FROM aside WHERE seq > (SELECT max(seq)"
            " FROM event_batches WHERE run_id = $1) AND seq <= $2",
            [run, upto],
        )
        count = con.execute("SELECT count(*) FROM events WHERE run_id = $1", [run]).fetchone()
    assert count is not None
    return int(count[0])


@pytest.mark.parametrize("held", [True, False], ids=["open store", "from its file"])
def test_kept_rows_of_a_growing_log_answer_as_a_fresh_copy(
    viewer_store: ViewerStore, tmp_path: Path, held: bool
) -> None:
    path = str(shutil.copy(viewer_store.path, tmp_path / "growing.duckdb"))
    run = viewer_store.run_b  # the run with failures
    store = DuckDBStore(path)
    try:
        last = store.last_seq(run)
        _log_without(store, run, 5)
        following = LogBrowser(store if held else path)
        copies = set()
        for upto in (5, 6, 20, last // 2, last // 2 + 1, last - 3, last):
            count = _log_through(store, run, upto)
            if not held:
                store.close()
            following.versions[run] = count
            fresh = LogBrowser(DuckDBStore(path) if held else path)
            fresh.versions[run] = count
            for ask in _asks(run):
                assert ask(following) == ask(fresh), upto
            copies.add(following.kept(run, count))
            if not held:
                store = DuckDBStore(path)
        assert len(copies) == 1, "one copy, brought up to date"
        # Another log of the run (deleted and logged again, as a fresh rerun does): copied anew.
        with store.cursor() as con:
            con.execute("DELETE FROM event_batches WHERE run_id = $1 AND seq > 9", [run])
            con.execute(f"UPDATE event_batches SET {_LATER} WHERE run_id = $1", [run])
            con.execute(f"UPDATE aside SET {_LATER}")
        _log_through(store, run, last)
        with store.cursor() as con:  # one event fewer: another count, the same last seq
            con.execute("DELETE FROM event_batches WHERE run_id = $1 AND seq = 3", [run])
        count = _log_through(store, run, last)
        if not held:
            store.close()
        following.versions[run] = count
        fresh = LogBrowser(DuckDBStore(path) if held else path)
        for ask in _asks(run):
            assert ask(following) == ask(fresh)
        assert following.kept(run, count) not in copies
    finally:
        store.close()


def test_what_a_live_viewer_kept_is_handed_to_the_released_viewer(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    """On release, the live viewer's cache gives the file's viewer its reports and (brought up
    to date) copies of trial rows: the followed run is prepared at once, and its pages read
    as a viewer that prepared it itself."""
    path = str(shutil.copy(viewer_store.path, tmp_path / "held.duckdb"))
    run = viewer_store.run_b
    store = DuckDBStore(path)
    try:
        last = store.last_seq(run)
        _log_without(store, run, last // 2)
        live = ViewerCache.of(store)
        data.run_data(store, run, data.TrialQuery(), None, live)  # a page followed it midway
        _log_through(store, run, last)
        # ... and once it ended, searched (its plain pages read their own rows: ADR 0072)
        data.run_data(store, run, data.TrialQuery(search="failed"), None, live)
        released = ViewerCache.of(path)
        live.hand_over(released)
    finally:
        store.close()
    assert released.prepared(run)
    handed = released.browser.kept(run, released.browser.versions[run])
    prepared = ViewerCache.of(path)
    data.warm(path, prepared)
    query = data.TrialQuery(search="failed", sort="case_id")
    assert data.run_data(path, run, query, None, released) == data.run_data(
        path, run, query, None, prepared
    )
    assert released.browser.kept(run, released.browser.versions[run]) == handed  # no new copy


def test_an_open_stores_run_is_paged_by_its_own_rows(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    """An open store's pages of trials in plan order and its failures read only their own rows
    (ADR 0068), at every step of a growing log (as while the run executes) and once it has
    ended (ADR 0072): nothing is copied, and they answer as a copy made afresh."""
    path = str(shutil.copy(viewer_store.path, tmp_path / "executing.duckdb"))
    run = viewer_store.run_b  # the run with failures
    store = DuckDBStore(path)
    try:
        last = store.last_seq(run)
        _log_without(store, run, 5)
        browser = LogBrowser(store)
        for upto in (5, 20, last // 2, last):
            count = _log_through(store, run, upto)
            browser.versions[run] = count
            copied = LogBrowser(DuckDBStore(path))
            assert copied._keeps_copies()  # its memory database attached
            copied.kept(run, count)
            copied.versions[run] = count
            asks: list[Ask] = [
                lambda b: b.trials(run, limit=500),
                lambda b: b.trials(run, offset=7, limit=5, descending=True),
                lambda b: b.failure_kinds(run),
            ]
            for ask in asks:
                assert ask(browser) == ask(copied), upto
            assert not browser.holds(run, count)
        assert browser.failure_kinds(run), "the run has failures"
    finally:
        store.close()


# Run in a process of its own: a test's process has imported DuckDB's Python package, which
# gives every connection the relation API (`sql`, `to_arrow_table`) `hand_over` reads copies with;
# a `themis run --view` process has only DuckDB's engine until it is asked for (ADR 0123).
_HAND_OVER = """
import sys
from themis.adapters.stores.duckdb import DuckDBStore
from themis.app.api import viewer_data as data
from themis.app.api.viewer_cache import ViewerCache
path, run = sys.argv[1], sys.argv[2]
store = DuckDBStore(path)
live = ViewerCache.of(store)
data.run_data(store, run, data.TrialQuery(search="failed"), None, live)
released = ViewerCache.of(path)
live.hand_over(released)
store.close()
print("duckdb" in sys.modules, released.prepared(run))
"""


def test_a_run_s_process_hands_its_copies_over_without_duckdb_s_package(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    path = str(shutil.copy(viewer_store.path, tmp_path / "held.duckdb"))
    handed = subprocess.run(
        [sys.executable, "-c", _HAND_OVER, path, viewer_store.run_b],
        capture_output=True,
        text=True,
        check=False,
    )
    assert handed.returncode == 0, handed.stderr
    assert handed.stdout.split() == ["True", "True"]  # the package loaded to hand over
