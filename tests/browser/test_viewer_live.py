"""`themis run --view` as a person watches it: the demo run, slowed by its scripted models'
latency (about a minute), started as a subprocess with its live viewer on a free 127.0.0.1
port, and real headless Chromium watching, without a reload: the counts rise on the runs list
and the run page, the trials finished last appear, and the run page follows the run — with the
person's own search, sort and page size kept, a report number rises, the trials table grows,
its plots are redrawn and its failures section refilled — then the finished run is regrouped
by the breakdown selector.

Every wait is for a condition, with a generous timeout: on a loaded machine each step may be
slow, and the run lasts long enough for every check made while it runs. The console stays clean
and nothing is fetched from anywhere but the viewer; screenshots go to `tmp_path`. Ending the
process (SIGTERM, as Ctrl-C) stops the viewer and exits 0.
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
# 24 cases x 2 models x 2 prompts, one sample each, 1.25 s a call, two at a time: about 60 s,
# long enough for every check made while it runs even on a loaded machine.
SLOW = [
    "--set",
    "samples=1",
    "--set",
    "models.strong.options.latency_s=1.25",
    "--set",
    "models.weak.options.latency_s=1.25",
    "--set",
    "runtime.max_concurrent_tasks=2",
]
PLANNED = 96
# How long any one condition may take to come true while the run proceeds (generous: the
# machine may be loaded), and how long the whole run may take.
WAIT_MS = 60_000
RUN_MS = 240_000
# The user's own view of the trials: only scored ones, sorted by case, all on one page.
FILTERED = "?q=scored&sort=case_id&limit=200"


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
            deadline = time.monotonic() + 120
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
        timeout=WAIT_MS,
    )
    return first, _number(page, selector)


# The sum of the report table's `n` column (cases with a value, over every row).
_REPORT_N = """() => {
  const headers = [...document.querySelectorAll('#results thead th')].map(th => th.textContent);
  const column = headers.indexOf('n');
  return [...document.querySelectorAll('#results tbody tr')]
    .reduce((sum, row) => sum + Number(row.cells[column].textContent), 0);
}"""
_TRIAL_ROWS = "() => document.querySelectorAll('#trials tbody tr').length"


# Marks the page as loaded: a marker no reload keeps, the plots as drawn at load, and the
# failures section as loaded (a refill puts the server's new one in its place).
_MARK = """() => {
  window.themisMarker = 'kept';
  window.themisPlots = document.querySelector('#plots').innerHTML;
  document.querySelector('#failures-by-kind').dataset.loaded = 'yes';
}"""


def _follows(page: Page) -> tuple[tuple[int, int], tuple[int, int]]:
    """On a running run's page filtered by the user: the report's n and the trials table's row
    count, each read twice, the second higher, the plots redrawn and the failures section
    refilled, with no reload between (a marker set in the page survives) and the user's
    search and sort kept."""
    page.evaluate(_MARK)
    n, rows = page.evaluate(_REPORT_N), page.evaluate(_TRIAL_ROWS)
    page.wait_for_function(f"(first) => ({_REPORT_N})() > first", arg=n, timeout=WAIT_MS)
    page.wait_for_function(f"(first) => ({_TRIAL_ROWS})() > first", arg=rows, timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.querySelector('#plots').innerHTML !== window.themisPlots", timeout=WAIT_MS
    )
    assert page.locator("#plots figure svg").count() == 3  # a forest plot per metric, the bars
    page.wait_for_function(
        "() => !document.querySelector('#failures-by-kind').dataset.loaded", timeout=WAIT_MS
    )
    assert page.evaluate("() => window.themisMarker") == "kept", "the page was reloaded"
    assert page.url.endswith(FILTERED)
    statuses = page.locator("#trials tbody tr td:nth-child(6)").all_inner_texts()
    assert set(statuses) == {"scored"}
    cases = page.locator("#trials tbody tr td:nth-child(1)").all_inner_texts()
    assert cases == sorted(cases)
    return (n, page.evaluate(_REPORT_N)), (rows, page.evaluate(_TRIAL_ROWS))


def _newest_takes_the_top_row(page: Page) -> None:
    """The "finished last" table fills, and a newly finished trial takes its top row."""
    page.wait_for_function(
        "() => document.querySelectorAll('#latest tbody tr').length > 0", timeout=WAIT_MS
    )
    first = page.locator("#latest tbody tr").first.inner_text()
    assert re.search(r"arith-\d+\s+arithmetic\s+(strong|weak)\s+(direct|reasoning)", first), first
    assert "exact_match" in first
    page.wait_for_function(
        "(first) => document.querySelector('#latest tbody tr').innerText !== first",
        arg=first,
        timeout=WAIT_MS,
    )


def _shows_the_finished_run(page: Page, scored: str, run_url: str) -> None:
    """Once the run ends, the last refill shows the finished run: every scored trial on the
    user's one page, and the plots and failures a reload then shows."""
    page.wait_for_function(
        "() => document.getElementById('live-status').textContent.startsWith('finished')",
        timeout=RUN_MS,
    )
    assert _number(page, scored) <= PLANNED
    final = page.evaluate(_TRIAL_ROWS)
    assert page.inner_text(".pager .shown") == f"1–{final} of {final}"
    assert page.evaluate("() => window.themisMarker") == "kept"
    followed = [page.inner_html(part) for part in ("#plots", "#failures-by-kind")]
    page.goto(run_url, wait_until="load")
    assert [page.inner_html(part) for part in ("#plots", "#failures-by-kind")] == followed
    assert page.locator("#live").count() == 0


def test_counts_rise_while_the_run_proceeds_and_the_finished_run_regroups(
    live_run: LiveRun, open_page: OpenPage, tmp_path: Path
) -> None:
    # Opened as soon as the URL is printed, as a person following it does: the run is not
    # planned yet and publishes nothing, so the runs list watches for it and reloads itself.
    opened = open_page(live_run.url)
    page = opened.page
    page.set_default_timeout(WAIT_MS)
    done = "span[data-field=done]"
    page.wait_for_selector(done, timeout=WAIT_MS)
    assert page.locator(done).count() == 1, "the run should still be running"
    before, after = _rises(page, done)
    assert 0 <= before < after <= PLANNED
    opened.screenshot(tmp_path / "runs-live.png")

    page.click("#cases td a")
    page.wait_for_load_state("load")
    run_url = page.url
    page.goto(run_url + FILTERED, wait_until="load")
    assert page.locator("#live").count() == 1, "the run should still be running"
    scored = "#live-stages span[data-stage=score][data-field=done]"
    before, after = _rises(page, scored)
    assert before < after <= PLANNED
    (n_before, n_after), (rows_before, rows_after) = _follows(page)
    assert n_before < n_after
    assert rows_before < rows_after <= PLANNED
    _newest_takes_the_top_row(page)
    opened.screenshot(tmp_path / "run-live.png")
    _themis_view_points_to_the_live_viewer(live_run, open_page, tmp_path)

    _shows_the_finished_run(page, scored, run_url)
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
