"""What the viewer shows of runs executing now: `/api/live` (the progress their processes
publish), the run page's live panel with the trials finished last, the counts live.js keeps
current, and, on a store another process holds, the URL of the viewer that process serves."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

from starlette.testclient import TestClient

from tests.holders import holding, live_record, publish_as
from tests.viewer.conftest import CASES, HOSTILE, ViewerStore
from themis.adapters.live_progress import ViewerNotice, progress_directory
from themis.adapters.stores.memory import MemoryStore
from themis.app.api.viewer import viewer_app


def _published(viewer_store: ViewerStore, tmp_path: Path, scored: int) -> Path:
    """A copy of the store beside which this (living) process publishes run A's progress."""
    store = Path(shutil.copy(viewer_store.path, tmp_path / "live.duckdb"))
    publish_as(os.getpid(), store, live_record(store, viewer_store.run_a, scored=scored))
    return store


def test_api_live_lists_what_running_processes_publish(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    with TestClient(viewer_app(viewer_store.path)) as client:
        assert client.get("/api/live").json() == {"runs": []}
    store = _published(viewer_store, tmp_path, scored=5)
    with TestClient(viewer_app(store)) as client:
        (run,) = client.get("/api/live").json()["runs"]
    assert (run["run_id"], run["status"], run["stage"]) == (viewer_store.run_a, "running", "score")
    assert (run["planned"], run["done"], run["pending"]) == (CASES * 4, 5, CASES * 4 - 5)
    assert run["live"]["pid"] == os.getpid()
    score = run["stages"]["score"]
    assert (score["planned"], score["done"], score["pending"]) == (CASES * 4, 5, CASES * 4 - 5)


def test_a_running_runs_pages_mark_the_counts_live_js_keeps_current(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    store = _published(viewer_store, tmp_path, scored=5)
    run = viewer_store.run_a
    with TestClient(viewer_app(store)) as client:
        listed = client.get("/").text
        page = client.get(f"/runs/{run}").text
        other = client.get(f"/runs/{viewer_store.run_b}").text
        script = client.get("/static/live.js")
        latest = client.get(f"/api/runs/{run[:8]}/latest").json()
    assert f'<span data-live-run="{run}" data-field="done">' in listed
    assert f'data-live-run="{viewer_store.run_b}"' not in listed
    assert '<section id="live">' in page
    assert f'<span data-live-run="{run}" data-stage="score" data-field="done">5</span>' in page
    assert f'<table id="latest" data-run="{run}">' in page
    assert 'src="/static/live.js"' in page
    assert '<section id="live">' not in other
    assert script.status_code == 200
    assert "connect-src 'self'" in script.headers["content-security-policy"]
    assert "textContent" in script.text
    assert "innerHTML" not in script.text  # nothing from a run becomes markup
    # Newest first: beta's two n5 samples failed for good last.
    assert [(t["case_id"], t["model"], t["status"]) for t in latest["rows"][:3]] == [
        ("n5", "beta", "failed"),
        ("n5", "beta", "failed"),
        ("n5", "alpha", "scored"),
    ]
    assert latest["rows"][2]["scores"] == {"exact_match": 1.0}
    assert HOSTILE not in page.split('<section id="live">')[1].split("</section>")[0]


def test_a_held_store_names_the_viewer_its_holder_serves(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    store = Path(shutil.copy(viewer_store.path, tmp_path / "held.duckdb"))
    record = live_record(store, viewer_store.run_a, scored=3)
    url = "http://127.0.0.1:4321/"
    with holding(store) as holder, TestClient(viewer_app(store)) as client:
        publish_as(holder.pid, store, record)
        ViewerNotice(progress_directory(store), pid=holder.pid).announce(url)
        listed = client.get("/api/runs").json()
        page = client.get("/").text
        held = client.get(f"/api/runs/{viewer_store.run_a}")
    assert listed["live"] == {"pid": holder.pid, "viewer": url}
    assert held.status_code == 503
    assert held.json()["error"].endswith(f"(it serves the live viewer at {url})")
    assert f'It serves them live at <a href="{url}">{url}</a>.' in page
    assert f'<span data-live-run="{viewer_store.run_a}" data-field="done">3</span>' in page


def test_a_viewer_notice_is_withdrawn_and_ignored_once_its_process_is_gone(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "store.duckdb.progress"
    notice = ViewerNotice(directory)
    notice.announce("http://127.0.0.1:1/")
    assert notice.announced(os.getpid()) == "http://127.0.0.1:1/"
    assert ViewerNotice(directory).announced(2**22 + 12345) is None
    notice.withdraw()
    assert notice.announced(os.getpid()) is None
    assert not directory.exists()


def test_the_run_json_carries_the_report_table_as_the_page_shows_it(
    viewer_store: ViewerStore,
) -> None:
    """live.js refills a running run's report table from `/api/runs/RUN`'s `results`: the same
    headers and cell texts as the page's table, for the page's own grouping."""
    run = viewer_store.run_a
    with TestClient(viewer_app(viewer_store.path)) as client:
        data = client.get(f"/api/runs/{run}", params={"by": "model"}).json()
        page = client.get(f"/runs/{run}", params={"by": "model"}).text
    results = data["results"]
    assert results["headers"][:4] == ["dataset", "model", "prompt", "metric"]
    assert [row[:4] for row in results["rows"]] == [
        ["*", "alpha", "*", "exact_match"],
        ["*", "beta", "*", "exact_match"],
    ]
    table = page[page.index('<table id="results">') :]
    table = table[: table.index("</table>")]
    shown = [
        [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>") :])
    ]
    assert shown == results["rows"]
    assert '<span class="shown">1–24 of 24</span>' in page  # the pager's count, refilled too


def test_a_runs_list_watches_for_runs_only_where_a_process_runs_on_the_store(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    # `themis run --view` prints its URL before the run is planned and publishes: a runs list
    # made then shows no running run, so it is marked for live.js to watch for one and reload.
    with TestClient(viewer_app(viewer_store.path)) as client:
        idle = client.get("/").text
    with TestClient(viewer_app(viewer_store.path, written=MemoryStore())) as client:
        about_to_run = client.get("/").text
        script = client.get("/static/live.js").text
    store = Path(shutil.copy(viewer_store.path, tmp_path / "held.duckdb"))
    record = live_record(store, viewer_store.run_a, scored=3)
    with holding(store) as holder, TestClient(viewer_app(store)) as client:
        publish_as(holder.pid, store, record)
        held = client.get("/").text
    assert "data-live-watch" not in idle
    assert 'id="live-status"' not in idle
    assert '<p id="live-status" data-live-watch></p>' in about_to_run
    assert "data-live-run" not in about_to_run
    assert '<p id="live-status" data-live-watch></p>' in held
    assert "[data-live-watch]" in script
    assert "window.location.reload()" in script
