"""`themis view` as a person uses it: the command started as a subprocess on a free 127.0.0.1
port, its pages opened in a real headless Chromium, runs list → run → case → compare.

What they see: the run id, both model names, a response's text, a plotted interval; a response
carrying `<script>` and an `onerror` image shows as text and runs nothing; the console stays
clean and nothing is fetched from anywhere but the viewer. Screenshots go to `tmp_path`.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import OpenPage
from tests.cli_process import themis_path
from tests.holders import live_record, publish_as
from tests.viewer.conftest import HOSTILE, ViewerStore, make_store
from themis.adapters.stores.memory import MemoryStore
from themis.app.api.serving import ServerThread, bound_socket, url_of
from themis.app.api.viewer import viewer_app

pytestmark = pytest.mark.slow

URL = re.compile(r"(http://127\.0\.0\.1:\d+/)")


@pytest.fixture(scope="module")
def viewer_store(tmp_path_factory: pytest.TempPathFactory) -> ViewerStore:
    return make_store(tmp_path_factory.mktemp("viewer"))


@pytest.fixture
def viewer_url(viewer_store: ViewerStore, tmp_path: Path) -> Iterator[str]:
    """`themis view --port 0` on the store; its URL read from the line it prints."""
    with (
        (tmp_path / "view.stderr").open("w") as errors,
        subprocess.Popen(
            [themis_path(), "view", "--store", str(viewer_store.path), "--port", "0"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        ) as process,
    ):
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 60)
            line = process.stdout.readline() if ready else ""
            found = URL.search(line)
            assert found, f"no URL printed: {line!r}"
            yield found.group(1)
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_runs_run_case_and_compare_in_a_browser(
    viewer_url: str, viewer_store: ViewerStore, open_page: OpenPage, tmp_path: Path
) -> None:
    opened = open_page(viewer_url)
    page = opened.page
    opened.screenshot(tmp_path / "runs.png")
    assert viewer_store.run_a[:16] in page.inner_text("#cases")
    assert "viewer <b>demo</b>" in page.inner_text("#cases")

    page.click(f"a:has-text('{viewer_store.run_a[:16]}')")
    page.wait_for_load_state("load")
    opened.screenshot(tmp_path / "run.png")
    assert viewer_store.run_a in page.inner_text("#run-id")
    for model in ("alpha", "beta"):
        assert model in page.inner_text("#results")
    forest = page.locator("svg.forest").first
    assert forest.locator("line.ci").count() == 2
    box = forest.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert HOSTILE in page.locator("#trials pre.response").first.inner_text()

    page.click("#failures a:has-text('n5')")
    page.wait_for_load_state("load")
    opened.screenshot(tmp_path / "case.png")
    assert page.locator("section.trial").count() == 4
    assert "no answer for five" in page.inner_text("body")
    assert HOSTILE in page.locator("section.trial pre.response").first.inner_text()

    page.goto(f"{viewer_url}compare")
    page.fill("input[name=a]", viewer_store.run_a)
    page.fill("input[name=models]", "alpha,beta")
    page.click("button:has-text('compare')")
    page.wait_for_load_state("load")
    opened.screenshot(tmp_path / "compare.png")
    assert page.locator("svg.differences circle.delta").count() == 1
    assert sorted(page.locator("#disagreements tbody td:nth-child(2)").all_inner_texts()) == [
        "n1",
        "n3",
        "n5",
    ]

    assert page.evaluate("window.__pwned === undefined")
    assert opened.errors == []
    assert all(url.startswith(viewer_url) for url in opened.requests)


def test_a_runs_list_opened_before_a_run_publishes_shows_it_once_it_does(
    viewer_store: ViewerStore, open_page: OpenPage, tmp_path: Path
) -> None:
    """`themis run --view` prints its URL before its run is planned: a runs list opened then
    shows no running run. It waits, and reloads itself once the run publishes its progress."""
    store = Path(shutil.copy(viewer_store.path, tmp_path / "live.duckdb"))
    record = live_record(store, viewer_store.run_a, scored=3)
    sock = bound_socket("127.0.0.1", 0)
    server = ServerThread(viewer_app(store, written=MemoryStore()), sock)
    server.start()
    try:
        opened = open_page(url_of(sock))
        page = opened.page
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('waiting')",
            timeout=60_000,
        )
        assert page.locator("span[data-live-run]").count() == 0
        publish_as(os.getpid(), store, record)
        done = f"span[data-live-run='{viewer_store.run_a}'][data-field=done]"
        page.wait_for_selector(done, timeout=60_000)
        assert page.inner_text(done) == "3"
        opened.screenshot(tmp_path / "runs-watching.png")
        assert opened.errors == []
        assert all(url.startswith(url_of(sock)) for url in opened.requests)
        page.close()
    finally:
        server.stop()
