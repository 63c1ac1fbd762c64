"""The HTML report in a real headless Chromium: what a person opening the file sees.

A run of two scripted models whose every response carries markup and a script must show that
text as text: the run id, both models, drawn plots and a sortable, filterable per-case table,
with no console error and nothing fetched from a network. A screenshot is kept in the test's
output directory (`tmp_path`) for the test log.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import themis
from tests.browser.conftest import OpenPage
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest

pytestmark = pytest.mark.slow

HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
CASES = 6


def _answer(request: ModelRequest) -> ModelResponse:
    """Right for every case with `alpha`, for even cases with `beta`; markup around it."""
    number = int(request.reference or 0)
    right = request.model == "alpha-1" or number % 2 == 0
    return ModelResponse(text=f"{HOSTILE} {number if right else number + 1}", finish_reason="stop")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The run (made once for the module) and its HTML report."""
    tmp_path = tmp_path_factory.mktemp("report")
    spec = themis.ExperimentSpec(
        name="browser <b>report</b>",
        seed=1,
        samples=2,
        datasets=[
            themis.DatasetSpec(
                name="numbers",
                cases=[
                    themis.Case(
                        id=f"n{i}",
                        fields={"q": i, "level": "odd" if i % 2 else "even"},
                        expected=str(i),
                    )
                    for i in range(CASES)
                ],
            )
        ],
        models=[
            themis.ModelSpec(name="alpha", model="alpha-1", provider="hostile"),
            themis.ModelSpec(name="beta", model="beta-1", provider="hostile"),
        ],
        prompts=[
            themis.PromptSpec(name="plain", template="{{ q }}"),
            themis.PromptSpec(name="asked", template="What is {{ q }}?"),
        ],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="exact_match"), themis.MetricSpec(name="numeric_match")],
    )
    store = tmp_path / "runs.duckdb"
    clock = themis.FakeClock()
    model = themis.ScriptedModel(clock, script=_answer)
    result = themis.Experiment.from_spec(spec).run(
        store=store, models={"hostile": model}, clock=clock
    )
    path = themis.Reporter(result.run_id, store).save(tmp_path / "report.html")
    return path, result.run_id


def test_a_person_sees_the_plots_the_run_and_every_model(
    report_file: tuple[Path, str], open_page: OpenPage, tmp_path: Path
) -> None:
    path, run_id = report_file
    opened = open_page(path)
    page = opened.page
    shot = opened.screenshot(tmp_path / "report.png")

    assert shot.stat().st_size > 10_000
    assert opened.errors == []
    assert opened.requests == [path.resolve().as_uri()]  # nothing fetched but the file
    text = page.inner_text("body")
    assert run_id in text
    assert "browser <b>report</b>" in text  # a name with markup shows as typed
    for model in ("alpha", "beta"):
        assert model in page.inner_text("#results")
    # One forest plot per metric, each with a dot per model × prompt, drawn with a real size.
    for metric in ("exact_match", "numeric_match"):
        forest = page.locator(f'svg.forest[data-metric="{metric}"]')
        assert forest.locator("circle.mean").count() == 4
        box = forest.bounding_box()
        assert box is not None
        assert (box["width"] > 300, box["height"] > 80) == (True, True)
        assert forest.locator("line.ci").count() == 4
    assert page.locator("svg.bars rect.bar").count() == 8  # 2 metrics × 4 groups


def test_model_output_is_shown_as_text_never_run(
    report_file: tuple[Path, str], open_page: OpenPage
) -> None:
    path, _ = report_file
    opened = open_page(path)
    page = opened.page

    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("#cases img").count() == 0
    first = page.locator("#cases tbody tr").first.locator("td.response").inner_text()
    assert HOSTILE in first
    assert opened.errors == []


def test_the_case_table_sorts_and_filters(
    report_file: tuple[Path, str], open_page: OpenPage
) -> None:
    path, _ = report_file
    page = open_page(path).page
    rows = page.locator("#cases tbody tr")
    assert rows.count() == CASES * 2 * 2 * 2  # cases × models × prompts × samples

    page.fill("#filter", "beta asked")
    visible = page.locator("#cases tbody tr:not([hidden])")
    assert visible.count() == CASES * 2
    assert page.inner_text("#shown") == str(CASES * 2)
    assert all("beta" in row and "asked" in row for row in visible.all_inner_texts())

    page.fill("#filter", "")
    header = page.locator("#cases th", has_text=re.compile(r"^exact_match$"))
    header.click()
    scores = [float(t) for t in page.locator("#cases tbody tr td:nth-child(9)").all_inner_texts()]
    assert scores == sorted(scores)
    header.click()
    scores = [float(t) for t in page.locator("#cases tbody tr td:nth-child(9)").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
