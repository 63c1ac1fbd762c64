"""The HTML report's plots as inline SVG text: a forest plot of means with their 95% intervals
and a grouped bar chart of every metric's means. Scores live in [0, 1], so both share that axis.

Every label is escaped here; nothing is fetched (no fonts, no scripts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

from attrs import frozen

from themis.core.report import ReportRow

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
# A forest plot's geometry (this one's and the paired comparison's difference plot).
ROW_H = 24
TOP = 14
BOTTOM = 34
_LABEL_W = 300
_PLOT_W = 420


def series_label(row: ReportRow) -> str:
    """What tells a row apart within one metric: its model and prompt (and dataset, and case
    fields), pooled dimensions left out."""
    parts = [row.model, row.prompt, row.dataset, *(v or "—" for v in row.case_fields.values())]
    return " · ".join(part for part in parts if part != "*") or "all"


def series_colours(rows: Sequence[ReportRow]) -> dict[str, str]:
    """One colour per series label, in the rows' order, the same in every plot."""
    labels = dict.fromkeys(series_label(row) for row in rows)
    return {label: PALETTE[index % len(PALETTE)] for index, label in enumerate(labels)}


@frozen
class Frame:
    """Where a forest plot draws: row labels end at `label_w`; `x` places a value."""

    label_w: int
    x: Callable[[float], float]


@frozen
class Mark:
    """One row of a forest plot: its `label`, a dot at `point` (class `css`, radius `radius`,
    tooltip `title`, already escaped) and a line across [`low`, `high`] in `colour`; without a
    point, `missing` is written at zero instead."""

    label: str
    point: float | None
    low: float | None
    high: float | None
    colour: str
    dot: tuple[str, float]  # its class and radius
    title: str = ""
    missing: str = ""


def axis(frame: Frame, ticks: Sequence[float], height: float, *, signed: bool = False) -> str:
    """Vertical grid lines down to `height`, with tick labels under them; `signed` (a plot of
    differences): labels with their sign, and the zero line marked."""
    parts = []
    for tick in ticks:
        x = frame.x(tick)
        css = "zero" if signed and tick == 0.0 else "grid"
        label = f"{tick:+g}" if signed else f"{tick:g}"
        parts.append(
            f'<line class="{css}" x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{height:.1f}"/>'
            f'<text class="tick" x="{x:.1f}" y="{height + 16:.1f}" text-anchor="middle">'
            f"{label}</text>"
        )
    return "".join(parts)


def marked_rows(frame: Frame, marks: Sequence[Mark]) -> str:
    """Each mark on its row, top to bottom."""
    parts = []
    for index, mark in enumerate(marks):
        y = TOP + ROW_H * index + ROW_H / 2
        parts.append(
            f'<text class="label" x="{frame.label_w}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(mark.label)}</text>"
        )
        if mark.point is None:
            parts.append(
                f'<text class="none" x="{frame.x(0) + 4:.1f}" y="{y + 4:.1f}">{mark.missing}</text>'
            )
            continue
        if mark.low is not None and mark.high is not None:
            parts.append(
                f'<line class="ci" x1="{frame.x(mark.low):.1f}" y1="{y:.1f}" '
                f'x2="{frame.x(mark.high):.1f}" y2="{y:.1f}" stroke="{mark.colour}"/>'
            )
        css, radius = mark.dot
        parts.append(
            f'<circle class="{css}" cx="{frame.x(mark.point):.1f}" cy="{y:.1f}" r="{radius:g}" '
            f'fill="{mark.colour}"><title>{mark.title}</title></circle>'
        )
    return "".join(parts)


_FOREST = Frame(_LABEL_W, lambda value: _LABEL_W + 10 + value * _PLOT_W)


def _mean_mark(row: ReportRow, colours: Mapping[str, str]) -> Mark:
    label = series_label(row)
    interval = (
        ""
        if row.ci_low is None or row.ci_high is None
        else f" [{row.ci_low:.3f}, {row.ci_high:.3f}]"
    )
    title = (
        ""
        if row.mean is None
        else f"{escape(label)}: {row.mean:.3f}{interval} ({escape(row.ci_method)}, n={row.n})"
    )
    return Mark(
        label,
        row.mean,
        row.ci_low,
        row.ci_high,
        colours.get(label, PALETTE[0]),
        ("mean", 5),
        title,
        "no scores",
    )


def forest_plot(metric: str, rows: Sequence[ReportRow], colours: Mapping[str, str]) -> str:
    """One metric's rows: a dot at each mean and a line across its 95% interval."""
    height = TOP + ROW_H * len(rows)
    total = height + BOTTOM
    return (
        f'<svg class="forest" data-metric="{escape(metric)}" role="img" '
        f'viewBox="0 0 {_LABEL_W + _PLOT_W + 40} {total}" '
        f'width="{_LABEL_W + _PLOT_W + 40}" height="{total}">'
        f"<title>{escape(metric)}: mean and 95% CI per group</title>"
        + axis(_FOREST, TICKS, height)
        + marked_rows(_FOREST, [_mean_mark(row, colours) for row in rows])
        + "</svg>"
    )


def bar_chart(metrics: Sequence[str], rows: Sequence[ReportRow], colours: Mapping[str, str]) -> str:
    """Every metric's mean per series (bars side by side per metric), with interval whiskers
    and a legend of the series."""
    labels = list(colours)
    by_key = {(row.metric, series_label(row)): row for row in rows}
    bar_w, gap, plot_h, top = 18, 28, 220, 16
    group_w = bar_w * len(labels) + gap
    width = 60 + group_w * len(metrics)
    legend_h = 18 * len(labels)
    height = top + plot_h + 50 + legend_h

    def y(value: float) -> float:
        return top + plot_h * (1 - value)

    parts = [
        f'<svg class="bars" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}"><title>mean per metric and group</title>'
    ]
    for tick in TICKS:
        parts.append(
            f'<line class="grid" x1="50" y1="{y(tick):.1f}" x2="{width - 4}" y2="{y(tick):.1f}"/>'
            f'<text class="tick" x="44" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    for group, metric in enumerate(metrics):
        left = 60 + group * group_w
        for index, label in enumerate(labels):
            row = by_key.get((metric, label))
            if row is None or row.mean is None:
                continue
            x = left + index * bar_w
            colour = colours[label]
            parts.append(
                f'<rect class="bar" x="{x}" y="{y(row.mean):.1f}" width="{bar_w - 3}" '
                f'height="{plot_h * row.mean:.1f}" fill="{colour}"><title>{escape(metric)} · '
                f"{escape(label)}: {row.mean:.3f}</title></rect>"
            )
            if row.ci_low is not None and row.ci_high is not None:
                middle = x + (bar_w - 3) / 2
                parts.append(
                    f'<line class="whisker" x1="{middle:.1f}" y1="{y(row.ci_low):.1f}" '
                    f'x2="{middle:.1f}" y2="{y(row.ci_high):.1f}"/>'
                )
        parts.append(
            f'<text class="metric" x="{left + (group_w - gap) / 2:.1f}" y="{top + plot_h + 18}" '
            f'text-anchor="middle">{escape(metric)}</text>'
        )
    for index, label in enumerate(labels):
        ly = top + plot_h + 40 + 18 * index
        parts.append(
            f'<rect x="60" y="{ly - 10}" width="12" height="12" '
            f'fill="{colours[label]}"/>'
            f'<text class="label" x="78" y="{ly}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
