"""`themis run --view` as a person watches it: the demo run, slowed by its scripted models'
latency (about 40 s), started as a subprocess with its live viewer on a free 127.0.0.1 port,
and real headless Chromium watching the counts rise on the runs list and the run page without a
reload, the trials finished last appearing, then the finished run regrouped by the breakdown
selector.

The console stays clean and nothing is fetched from anywhere but the viewer; screenshots go to
`tmp_path`. Ending the process (SIGTERM, as Ctrl-C) stops the viewer and exits 0.
"""

from __future__ import annotations

import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import OpenPage
from tests.cli_process import themis_path

pytestmark = pytest.mark.slow

URL = re.compile(r"viewer: (http://127\.0\.0\.1:\d+/) shows this run live")
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
# 24 cases x 2 models x 2 prompts, one sample each, 0.8 s a call, two at a time: about 40 s,
# long enough for every check made while it runs even on a loaded machine.
SLOW = [
    "--set",
    "samples=1",
    "--set",
    "models.strong.options.latency_s=0.8",
    "--set",
    "models.weak.options.latency_s=0.8",
    "--set",
    "runtime.max_concurrent_tasks=2",
]
PLANNED = 96


@attrs.frozen
class LiveRun:
    url: str
    process: subprocess.Popen[str]


@pytest.fixture
def live_run(tmp_path: Path) -> Iterator[LiveRun]:
    """`themis run demo.toml --view --port 0`, slowed down; its URL read from its stderr."""
    errors = tmp_path / "run.stderr"
    command = [themis_path(), "run", str(DEMO), "--store", "live.duckdb", "--view", "--port", "0"]
    with subprocess.Popen(
        [*command, *SLOW, "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            found = None
            lines = []
            deadline = time.monotonic() + 60
            while found is None and time.monotonic() < deadline:
                ready, _, _ = select.select([process.stderr], [], [], 1)
                if ready:
                    lines.append(process.stderr.readline())
                    found = URL.search(lines[-1])
            assert found, f"no viewer URL printed: {lines!r}"
            yield LiveRun(found.group(1), process)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
            errors.write_text("".join(lines), encoding="utf-8")


def _themis_view_points_to_the_live_viewer(
    live_run: LiveRun, open_page: OpenPage, tmp_path: Path
) -> None:
    """`themis view` on the store the run holds: one note naming the run's process and its live
    viewer, and a runs list of the published counts linking to it."""
    with subprocess.Popen(
        [themis_path(), "view", "--store", "live.duckdb", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as viewer:
        try:
            assert viewer.stdout is not None
            assert viewer.stderr is not None
            note = viewer.stderr.readline()
            assert note == (
                f"note: live.duckdb is held by a running Themis process (PID "
                f"{live_run.process.pid}): the viewer shows what it publishes; it serves the "
                f"live viewer at {live_run.url}\n"
            )
            found = re.search(r"(http://127\.0\.0\.1:\d+/)", viewer.stdout.readline())
            assert found
            held = open_page(found.group(1))
            assert held.page.locator(f"a[href='{live_run.url}']").count() == 1
            assert held.page.locator("span[data-field=done]").count() == 1
            assert held.errors == []
            held.page.close()
        finally:
            viewer.send_signal(signal.SIGTERM)
            viewer.wait(timeout=30)


def _number(page: Page, selector: str) -> int:
    return int(page.inner_text(selector))


def _rises(page: Page, selector: str) -> tuple[int, int]:
    """Two readings of the count at `selector`, the second higher, with no reload between."""
    first = _number(page, selector)
    page.wait_for_function(
        "([selector, first]) => Number(document.querySelector(selector).textContent) > first",
        arg=[selector, first],
        timeout=30_000,
    )
    return first, _number(page, selector)


def test_counts_rise_while_the_run_proceeds_and_the_finished_run_regroups(
    live_run: LiveRun, open_page: OpenPage, tmp_path: Path
) -> None:
    opened = open_page(live_run.url)
    page = opened.page
    done = "span[data-field=done]"
    assert page.locator(done).count() == 1, "the run should still be running"
    before, after = _rises(page, done)
    assert 0 <= before < after <= PLANNED
    opened.screenshot(tmp_path / "runs-live.png")
    _themis_view_points_to_the_live_viewer(live_run, open_page, tmp_path)

    page.click("#cases td a")
    page.wait_for_load_state("load")
    assert page.locator("#live").count() == 1
    scored = "#live-stages span[data-stage=score][data-field=done]"
    before, after = _rises(page, scored)
    assert before < after <= PLANNED
    page.wait_for_function("() => document.querySelectorAll('#latest tbody tr').length > 0")
    first = page.locator("#latest tbody tr").first.inner_text()
    assert re.search(r"arith-\d+\s+arithmetic\s+(strong|weak)\s+(direct|reasoning)", first), first
    assert "exact_match" in first
    page.wait_for_function(  # a newly finished trial takes the top row
        "(first) => document.querySelector('#latest tbody tr').innerText !== first",
        arg=first,
        timeout=30_000,
    )
    opened.screenshot(tmp_path / "run-live.png")

    page.wait_for_function(
        "() => document.getElementById('live-status').textContent.startsWith('finished')",
        timeout=120_000,
    )
    assert _number(page, scored) <= PLANNED
    page.reload(wait_until="load")
    assert page.locator("#live").count() == 0
    assert page.locator("#results tbody tr").count() == 8  # 2 models x 2 prompts x 2 metrics

    page.uncheck("#breakdown input[value=dataset]")
    page.uncheck("#breakdown input[value=prompt]")
    page.click("#breakdown button")
    page.wait_for_load_state("load")
    assert "by=model" in page.url
    rows = page.locator("#results tbody tr")
    assert rows.count() == 4  # 2 models x 2 metrics
    cells = {tuple(rows.nth(index).locator("td").all_inner_texts()[:3]) for index in range(4)}
    assert cells == {("*", "strong", "*"), ("*", "weak", "*")}
    assert page.is_checked("#breakdown input[value=model]")
    assert not page.is_checked("#breakdown input[value=dataset]")
    opened.screenshot(tmp_path / "run-by-model.png")

    assert opened.errors == []
    assert all(url.startswith(live_run.url) for url in opened.requests)
    page.close()
    live_run.process.send_signal(signal.SIGTERM)  # as Ctrl-C: the viewer stops, the run is done
    _, rest = live_run.process.communicate(timeout=60)
    assert live_run.process.returncode == 0
    assert "run finished: the viewer still serves" in rest
    assert rest.rstrip().endswith("viewer stopped")
