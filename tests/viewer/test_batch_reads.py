"""The reads of a log kept one row per batch (ADR 0046) that split only some of its rows, or split
them once (ADR 0054: the viewer's, `log_table`'s) answer what the `events` view, which splits
every row of the store on each scan, answers: the same events in the same order, on a store of
several runs whose logs span many rows."""

from __future__ import annotations

from pathlib import Path

import pytest

import themis
from tests.viewer.conftest import CASES, _answer, _spec
from themis.adapters.codec import decode_event
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_browse import LogBrowser
from themis.adapters.stores.duckdb_log import events_of_rows
from themis.adapters.stores.duckdb_tables import read_log
from themis.adapters.stores.duckdb_views import VIEW_NAMES
from themis.core.events import Event

# The run's events about the case's keys and its own, through the view that splits every row.
_CASE_EVENTS = (
    "SELECT seq, kind, payload FROM events WHERE run_id = $run AND (trial_key IS NULL"
    " OR trial_key IN (SELECT trial_key FROM trial_places WHERE run_id = $run"
    " AND case_id = $case)) ORDER BY seq"
)


@pytest.fixture(scope="module")
def many_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three runs appended a trial's events at a time (many rows each), one replayed (a reset)."""
    store = tmp_path_factory.mktemp("rows") / "runs.duckdb"
    runs = []
    for seed in (1, 2, 3):
        clock = themis.FakeClock()
        model = themis.ScriptedModel(clock, script=_answer)
        experiment = themis.Experiment.from_spec(_spec(seed))
        result = experiment.run(
            store=store, models={"hostile": model}, clock=clock, store_batch_size=1
        )
        runs.append(result.run_id)
    themis.replay(runs[1], "score", store=store)
    return store, runs


def _viewed(store: DuckDBStore, run_id: str, case_id: str) -> list[tuple[int, Event]]:
    cursor = store.cursor()
    try:
        rows = cursor.execute(_CASE_EVENTS, {"run": run_id, "case": case_id}).fetchall()
    finally:
        cursor.close()
    return [(seq, decode_event(kind, payload)) for seq, kind, payload in rows]


def test_the_store_holds_several_runs_in_many_rows(many_rows: tuple[Path, list[str]]) -> None:
    store, runs = many_rows
    opened = DuckDBStore(store, read_only=True)
    try:
        counts = dict(
            opened.cursor()
            .execute("SELECT run_id, count(*) FROM event_batches GROUP BY run_id")
            .fetchall()
        )
    finally:
        opened.close()
    assert all(counts[run] > 10 for run in runs)


@pytest.mark.parametrize("how", ["narrow", "kept", "open store"])
def test_case_events_are_the_views(many_rows: tuple[Path, list[str]], how: str) -> None:
    """From a path before and after the run's trial rows are kept, and from an open store."""
    path, runs = many_rows
    store = DuckDBStore(path, read_only=True)
    browser = LogBrowser(store if how == "open store" else str(path))
    try:
        for run_id in runs:
            if how == "kept":
                browser.versions[run_id] = -1
                browser.kept(run_id, -1)
            own = browser.case_events(run_id, "no such case")  # the run's own events
            assert own == _viewed(store, run_id, "no such case")
            assert len(own) >= 2
            for case in (f"n{i}" for i in range(CASES)):
                found = browser.case_events(run_id, case)
                assert found == _viewed(store, run_id, case)
                assert len(found) > len(own)
    finally:
        browser.close()
        store.close()


@pytest.mark.parametrize("limit", [3, 20])  # a few keys (searched for), more (keys split)
def test_narrow_pages_are_the_kept_rows(many_rows: tuple[Path, list[str]], limit: int) -> None:
    """Pages a fresh viewer answers from only the rows holding their trials' events equal the
    pages of the run's trial rows computed from the whole `events` view."""
    path, runs = many_rows
    narrow, kept = LogBrowser(str(path)), LogBrowser(str(path))
    try:
        for run_id in runs:
            kept.kept(run_id, -1)
            kept.versions[run_id] = -1
            for offset in (0, 5, 21):
                page = narrow.trials(run_id, offset=offset, limit=limit)
                assert page == kept.trials(run_id, offset=offset, limit=limit)
                assert page.rows
            assert narrow.failure_kinds(run_id) == kept.failure_kinds(run_id)
            assert narrow.failure_kinds(run_id)
    finally:
        narrow.close()
        kept.close()


def test_log_tables_are_the_stores_views(many_rows: tuple[Path, list[str]]) -> None:
    """`log_table`'s copies (the run's rows split once) equal the store's own views' rows."""
    path, runs = many_rows
    store = DuckDBStore(path, read_only=True)
    cursor = store.cursor()
    try:
        for run_id in runs:
            tables = read_log(str(path), run_id)
            for name in VIEW_NAMES:
                copied = tables[name].relation.fetchall()
                viewed = cursor.execute(
                    f"SELECT * FROM {name} WHERE run_id = $1", [run_id]
                ).fetchall()
                if name == "trials":  # the copy has a column per metric instead of a map
                    viewed = [row[:10] + row[11:] for row in viewed]
                    copied = [row[:-1] for row in copied]
                assert copied == viewed, name
                assert copied or name in ("retries", "cases"), name
    finally:
        cursor.close()
        store.close()


def test_the_untimed_split_is_the_views_events(many_rows: tuple[Path, list[str]]) -> None:
    """`events_of_rows(..., timed=False)` (what whole-run trial rows read, ADR 0064): the view's
    events, columns and order, without their stages and times."""
    path, runs = many_rows
    store = DuckDBStore(path, read_only=True)
    try:
        cursor = store.cursor()
        untimed = events_of_rows("", timed=False)
        columns = "run_id, seq, kind, trial_key, payload"
        for run_id in runs:
            split = cursor.execute(f"SELECT * FROM {untimed} ORDER BY seq", {"run": run_id})
            assert [d[0] for d in split.description] == columns.split(", ")
            events = split.fetchall()
            viewed = cursor.execute(
                f"SELECT {columns} FROM events WHERE run_id = $run ORDER BY seq", {"run": run_id}
            ).fetchall()
            assert events == viewed
            assert len(viewed) > 50
    finally:
        store.close()
