"""A viewer served by the process that runs (`themis.live_viewer`) follows a running run from
its execution's own compiled run and fold (ADR 0057): its first page of the run neither
compiles the run nor folds its log nor plans it a second time for its trials' places nor
counts its report trial by trial (ADR 0068), shows what a fold of the log shows, and later
pages fold only what the log adds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import themis
from tests.viewer.conftest import _answer, _spec
from themis.adapters.stores import duckdb_trial_rows
from themis.app.api import viewer_cache
from themis.app.execution.running import running_execution
from themis.app.render.report_json import document_json
from themis.app.usecases.reporting import report_document
from themis.core.breakdown import Breakdown
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest

# Calls answered before the gate closes: the run's first trials, written while the rest wait.
FREE = 10


class GatedModel:
    """Answers as the viewer tests' model, but every call after the first `FREE` waits (in a
    worker thread: the run's writer goes on) until `gate` is set."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.calls = 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.calls > FREE:
            await trio.to_thread.run_sync(self.gate.wait, abandon_on_cancel=True)
        return _answer(request)


def _until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


def _never(*args: object, **kwargs: object) -> object:
    raise AssertionError("the viewer compiled the run or folded its log again")


def _read_from_own_rows(client: httpx.Client, cache: Any, run: str, shown: Any) -> None:
    """The page's trials and failures were read from their own rows, not a copy of every
    trial's (ADR 0068), and are the copy's."""
    version = cache.browser.versions[run]
    assert not cache.browser.holds(run, version)
    cache.browser.kept(run, version)  # a copy of every trial's rows, which the page now reads
    copied = client.get(f"/api/runs/{run}").json()
    assert cache.browser.holds(run, cache.browser.versions[run])
    for part in ("trials", "failures"):
        assert shown[part] == copied[part]


def test_a_running_run_is_followed_from_its_executions_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = themis.Experiment.from_spec(_spec(1))
    run = experiment.run_id
    gate = threading.Event()
    with themis.live_viewer(tmp_path / "live.duckdb") as viewer:
        store = viewer.store
        thread = threading.Thread(
            target=lambda: experiment.run(store=store, models={"hostile": GatedModel(gate)}),
        )
        thread.start()
        try:
            execution = _until(lambda: running_execution(store, run), "the execution")
            # Every trial the free calls answered is written (the rest wait at the gate).
            _until(
                lambda: (
                    (folded := execution.writer.folded()) is not None
                    and len(folded[0].scores) + len(folded[0].generation_failures) == FREE
                ),
                "the free trials written",
            )
            # The run was prepared as it started, before any page asked (ADR 0068): its
            # whole plan's keys and where each trial stands in it.
            cache = viewer.app.state.cache
            _until(
                lambda: run in cache.indexes and cache.indexes[run].count == 24,
                "the run prepared",
            )
            monkeypatch.setattr(viewer_cache, "planned_once", _never)
            monkeypatch.setattr(viewer_cache, "load_state", _never)
            monkeypatch.setattr(viewer_cache, "load_compiled", _never)
            # Its trials' places come from the plan the viewer read for the report.
            monkeypatch.setattr(duckdb_trial_rows, "place_columns", _never)
            # Its report is summed over the fold's columns, not counted trial by trial.
            monkeypatch.setattr(viewer_cache.RunningReport, "of", staticmethod(_never))
            monkeypatch.setattr(viewer_cache, "build_report", _never)
            with httpx.Client(base_url=viewer.url, timeout=30) as client:
                page = client.get(f"/api/runs/{run}")
                assert page.status_code == 200, page.text
                shown = page.json()["report"]
                monkeypatch.undo()
                expected = document_json(report_document(store, run, Breakdown()))
                assert shown == expected
                trials = shown["trials"]
                assert (trials["planned"], trials["scored"] + trials["failed"]) == (24, FREE)
                rows = page.json()["trials"]
                assert rows["total"] == 24
                settled = [row for row in rows["rows"] if row["status"] in ("scored", "failed")]
                assert len(settled) == FREE
                _read_from_own_rows(client, cache, run, page.json())
                assert client.get(f"/runs/{run}").status_code == 200
                gate.set()
                thread.join(timeout=60)
                assert not thread.is_alive()
                # The rest of the run is folded onto the state taken from its execution.
                monkeypatch.setattr(viewer_cache, "load_state", _never)
                ended = client.get(f"/api/runs/{run}")
                assert ended.status_code == 200, ended.text
                monkeypatch.undo()
                expected = document_json(report_document(store, run, Breakdown()))
                assert ended.json()["report"] == expected
                assert expected["trials"]["pending"] == 0
        finally:
            gate.set()
            thread.join(timeout=60)


def test_a_resumed_run_is_followed_from_the_plan_its_execution_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed execution reads its whole plan as it starts: the live viewer's report takes
    that record rather than planning the run again."""
    experiment = themis.Experiment.from_spec(_spec(1))
    run, path = experiment.run_id, tmp_path / "resumed.duckdb"
    clock = themis.FakeClock()
    experiment.run(store=path, models={"hostile": themis.ScriptedModel(clock, script=_answer)})
    gate = threading.Event()
    held = GatedModel(gate)
    held.calls = FREE  # every call waits: the retried failures, at the gate
    with themis.live_viewer(path) as viewer:
        store = viewer.store
        thread = threading.Thread(
            target=lambda: experiment.resume(
                store=store, models={"hostile": held}, retry_failed=True
            ),
        )
        thread.start()
        try:
            execution = _until(lambda: running_execution(store, run), "the execution")
            _until(lambda: execution.writer.folded() is not None, "the preamble written")
            assert execution.planned() is not None
            monkeypatch.setattr(viewer_cache, "planned_once", _never)
            with httpx.Client(base_url=viewer.url, timeout=30) as client:
                page = client.get(f"/api/runs/{run}")
                assert page.status_code == 200, page.text
                monkeypatch.undo()
                expected = document_json(report_document(store, run, Breakdown()))
                assert page.json()["report"] == expected
        finally:
            gate.set()
            thread.join(timeout=60)
        assert not thread.is_alive()
