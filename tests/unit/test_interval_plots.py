"""The SVG plots of the HTML report and of a paired comparison, pinned as text (syrupy): the
forest plot of means, the difference plot of B − A and the bar chart draw the same marks for the
same rows, whatever helpers draw them. Rows cover a full interval, a missing one, a missing value,
values out of [-1, 1] and a label to escape."""

from __future__ import annotations

from syrupy.assertion import SnapshotAssertion

from themis.app.render.comparison_html import difference_plot
from themis.app.render.report_svg import bar_chart, forest_plot, series_colours
from themis.core.comparison import PairedComparison
from themis.core.report import ReportRow


def _row(model: str, mean: float | None, ci: tuple[float, float] | None) -> ReportRow:
    low, high = ci if ci is not None else (None, None)
    return ReportRow(
        dataset="sums",
        model=model,
        prompt="plain",
        metric="exact",
        mean=mean,
        ci_low=low,
        ci_high=high,
        n=40,
        failed=1,
        unparsed=2,
        ci_method="t",
    )


ROWS = [
    _row("steady", 0.625, (0.51, 0.74)),
    _row("<b>shaky</b>", 0.3, None),
    _row("absent", None, None),
    _row("perfect", 1.0, (1.0, 1.0)),
]


def _pair(group: str, delta: float | None, ci: tuple[float, float] | None) -> PairedComparison:
    low, high = ci if ci is not None else (None, None)
    return PairedComparison(
        group=group,
        metric="exact",
        n=40,
        only_a=0,
        only_b=1,
        mean_a=0.5,
        mean_b=None if delta is None else 0.5 + delta,
        delta=delta,
        ci_low=low,
        ci_high=high,
        bootstrap_low=None,
        bootstrap_high=None,
        test="sign-flip",
        p_value=0.2,
        mde=0.1,
    )


PAIRS = [
    _pair("sums · plain", 0.125, (-0.05, 0.3)),
    _pair("a & <b>", -0.4, None),
    _pair("none", None, None),
    _pair("wide", 0.9, (-1.5, 1.5)),
]


def test_the_forest_plot_is_unchanged(snapshot: SnapshotAssertion) -> None:
    assert forest_plot("exact", ROWS, series_colours(ROWS)) == snapshot


def test_the_difference_plot_is_unchanged(snapshot: SnapshotAssertion) -> None:
    assert difference_plot(PAIRS) == snapshot


def test_the_bar_chart_is_unchanged(snapshot: SnapshotAssertion) -> None:
    assert bar_chart(["exact"], ROWS, series_colours(ROWS)) == snapshot
