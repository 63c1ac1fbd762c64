"""`themis.live_viewer` from research code: the viewer served by the process that runs, on the
store it holds. While the demo run proceeds (slowed by its scripted models' latency) its counts
rise and its pages answer; after `release` the store is closed (another reader may open it) and
the viewer answers from the file; leaving the block stops it and removes its notice."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import attrs
import httpx
import pytest

import themis
from tests.viewer.conftest import store_digests
from themis.adapters.live_progress import ViewerNotice, progress_directory
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.errors import ConfigError

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SLOW = [
    "samples=1",
    "models.strong.options.latency_s=0.05",
    "models.weak.options.latency_s=0.05",
]


@attrs.define
class Watched:
    """What a page open on the running run saw: its done counts, each page's status, and the
    case of the newest finished trial, poll after poll."""

    done: list[int] = attrs.Factory(list)
    pages: list[int] = attrs.Factory(list)
    finished: list[str] = attrs.Factory(list)


def watch(url: str, stop: threading.Event, watched: Watched) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            running = client.get("/api/live").json()["runs"]
            if running:
                run = running[0]["run_id"]
                watched.done.append(running[0]["done"])
                watched.pages.append(client.get(f"/runs/{run}").status_code)
                latest = client.get(f"/api/runs/{run}/latest").json()["rows"]
                if latest:  # a newly finished trial, and its case page, while it runs
                    case = latest[0]["case_id"]
                    watched.finished.append(case)
                    watched.pages.append(client.get(f"/runs/{run}/cases/{case}").status_code)
            time.sleep(0.1)


def asking(url: str, run: str, stop: threading.Event, answers: list[tuple[str, int]]) -> None:
    """Ask for pages of `run` without a pause until `stop`: each answer's path (or error
    text) and status."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            for path in ("/api/runs", f"/api/runs/{run}/latest", f"/api/runs/{run}/trials"):
                answer = client.get(path)
                answers.append((path if answer.is_success else answer.text, answer.status_code))


def test_a_run_on_the_viewers_store_is_watched_while_it_proceeds(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    config = shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml")
    experiment = themis.Experiment.from_file(config, overrides=SLOW)
    path = tmp_path / "runs.duckdb"
    watched = Watched()
    stop = threading.Event()
    hammering = threading.Event()

    with themis.live_viewer(path) as viewer:
        assert viewer.url.startswith("http://127.0.0.1:")
        notice = ViewerNotice(progress_directory(path))
        assert notice.announced(os.getpid()) == viewer.url
        watcher = threading.Thread(target=watch, args=(viewer.url, stop, watched))
        watcher.start()
        try:
            result = experiment.run(viewer.store, progress="off", max_concurrent_tasks=2)
        finally:
            stop.set()
            watcher.join()
        answers: list[tuple[str, int]] = []
        hammer = threading.Thread(
            target=asking, args=(viewer.url, result.run_id, hammering, answers)
        )
        hammer.start()  # requests in flight while the store is released are answered whole
        try:
            time.sleep(0.3)
            viewer.release()
            time.sleep(0.3)
        finally:
            hammering.set()
            hammer.join()
        assert {status for _, status in answers} == {200}, [a for a in answers if a[1] != 200]
        with pytest.raises(ConfigError, match="released"):
            _ = viewer.store
        DuckDBStore(path, read_only=True).close()  # released: any reader may open the file
        listed = httpx.get(f"{viewer.url}api/runs").json()["runs"]
        url = viewer.url
    assert result.report.status == "completed"
    assert [(run["run_id"], run["scored"]) for run in listed] == [(result.run_id, 96)]
    assert len(set(watched.done)) >= 2, watched.done  # the counts rose while it ran
    assert watched.done == sorted(watched.done)
    assert set(watched.pages) == {200}
    assert len(set(watched.finished)) >= 2, watched.finished  # newest finished trials, as they came
    assert not progress_directory(path).exists()  # the notice (and live progress) withdrawn
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_a_memory_store_cannot_be_viewed_live() -> None:
    with pytest.raises(ConfigError, match="DuckDB store file"), themis.live_viewer("memory"):
        pass


def test_an_orchestrators_store_is_served_and_left_to_its_owner(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    config = shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml")
    experiment = themis.Experiment.from_file(config, overrides=SLOW)
    project = themis.ProjectSpec(storage=themis.StorageSpec(path=str(tmp_path / "p.duckdb")))
    with themis.Orchestrator.from_project_spec(project) as orchestrator:
        with themis.live_viewer(orchestrator.store) as viewer:
            result = orchestrator.run(experiment.spec, progress="off")
            page = httpx.get(f"{viewer.url}runs/{result.run_id}")
            listed = httpx.get(f"{viewer.url}api/runs").json()["runs"]
        assert orchestrator.report(result.run_id) == result.report  # still open, still its
        held = orchestrator.store
        assert isinstance(held, DuckDBStore)
        cursor = held.cursor()
        try:  # the viewer's own memory database is detached from the owner's instance
            attached = cursor.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        finally:
            cursor.close()
        assert not [name for (name,) in attached if name.startswith("themis_viewer")]
    assert page.status_code == 200
    assert [(run["run_id"], run["status"]) for run in listed] == [(result.run_id, "completed")]
    DuckDBStore(tmp_path / "p.duckdb", read_only=True).close()  # the owner closed it


@attrs.define
class Placing:
    """While the run ran (as `/api/live` said before and after): the trials the viewer showed
    and the places the store kept for the run at that moment."""

    shown: list[int] = attrs.Factory(list)
    kept: list[int] = attrs.Factory(list)


def look(url: str, store: DuckDBStore, stop: threading.Event, placing: Placing) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            running = client.get("/api/live").json()["runs"]
            if running:
                run = running[0]["run_id"]
                shown = client.get(f"/api/runs/{run}/trials").json()["total"]
                cursor = store.cursor()
                try:
                    found = cursor.execute(
                        "SELECT count(*) FROM trial_places WHERE run_id = $1", [run]
                    ).fetchone()
                finally:
                    cursor.close()
                if client.get("/api/live").json()["runs"] and found is not None:
                    placing.shown.append(shown)
                    placing.kept.append(int(found[0]))
            time.sleep(0.05)


def test_the_live_viewer_writes_nothing_and_prepares_the_finished_run(tmp_path: Path) -> None:
    """While the run proceeds its trials show, yet the store keeps no places for it (the run
    writes them itself when it ends); once released, the viewer prepares the finished run in
    the background and then serves every page from what it keeps, the file byte-identical."""
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    config = shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml")
    experiment = themis.Experiment.from_file(config, overrides=SLOW)
    path = tmp_path / "runs.duckdb"
    placing = Placing()
    stop = threading.Event()
    with themis.live_viewer(path) as viewer:
        store = viewer.store
        assert isinstance(store, DuckDBStore)
        looker = threading.Thread(target=look, args=(viewer.url, store, stop, placing))
        looker.start()
        try:
            result = experiment.run(store, progress="off", max_concurrent_tasks=2)
        finally:
            stop.set()
            looker.join()
        assert viewer.preparing is None
        viewer.release()
        preparing = viewer.preparing
        assert preparing is not None
        listed = httpx.get(f"{viewer.url}api/runs", timeout=30).json()["runs"]  # answerable
        preparing.join(timeout=120)
        assert not preparing.is_alive()
        assert viewer.app.state.cache.prepared(result.run_id)
        before = store_digests(path)
        run = result.run_id
        with httpx.Client(base_url=viewer.url, timeout=30) as client:
            for page in (
                "/",
                f"/runs/{run}",
                f"/api/runs/{run}/trials?q=arith&sort=status",
                f"/api/runs/{run}/latest",
                f"/runs/{run}/cases/arith-01",
                f"/compare?a={run}&models=strong,weak",
            ):
                assert client.get(page).status_code == 200, page
        assert store_digests(path) == before
    assert [entry["run_id"] for entry in listed] == [run]
    assert placing.shown
    assert max(placing.shown) == 96, placing.shown
    assert set(placing.kept) == {0}, placing.kept
