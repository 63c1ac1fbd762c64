"""The HTML report of run A with run B compared (`themis compare A B --format html`, `themis
report A --compare B`), in a real headless Chromium: the difference plot is drawn, both run ids
and every compared group are on the page, and the console has no error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import themis
from tests.browser.conftest import OpenPage
from themis.app.cli import app

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["models.strong.options.latency_s=0", "models.weak.options.latency_s=0", "samples=1"]


def test_a_person_sees_the_paired_comparison(open_page: OpenPage, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    config = Path(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))
    store = tmp_path / "s.duckdb"
    runs = [
        themis.Experiment.from_file(config, overrides=[*FAST, *extra])
        .run(store=store, progress="off")
        .run_id
        for extra in ([], ["models.weak.options.skill=0.75"])
    ]
    page_file = tmp_path / "compare.html"
    result = CliRunner().invoke(
        app,
        ["compare", runs[0][:8], runs[1][:8], "--store", str(store), "--format", "html",
         "--output", str(page_file)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    opened = open_page(page_file)
    page = opened.page
    opened.screenshot(tmp_path / "compare.png")

    assert opened.errors == []
    assert opened.requests == [page_file.resolve().as_uri()]
    heading = page.inner_text("#comparison")
    assert runs[0][:12] in heading
    assert runs[1][:12] in heading
    table = page.inner_text("#comparison-table")
    for group in ("strong / direct", "weak / reasoning"):
        assert group in table
    assert "McNemar exact" in table
    plot = page.locator("svg.differences")
    assert plot.locator("circle.delta").count() == 8  # 2 models × 2 prompts × 2 metrics
    box = plot.bounding_box()
    assert box is not None
    assert box["width"] > 300
    # The report of run A is the same page as `themis report A --compare B` writes.
    same = themis.Reporter(runs[0], store, compare_to=runs[1]).render("html")
    assert same.split("<h2>Per case</h2>")[0] == page_file.read_text().split("<h2>Per case</h2>")[0]
