"""A paired comparison as a section of the HTML report: a forest plot of each row's B − A with
its 95% interval around a zero line, the comparison table and its notes.

Inline SVG and escaped text only, like the rest of the report (`report_html`).
"""

from __future__ import annotations

from html import escape

from themis.app.render.comparisons import COLUMNS, cells, notes
from themis.core.comparison import Comparison, PairedComparison

_ROW_H = 24
_LABEL_W = 340
_PLOT_W = 420
_TOP = 14
_BOTTOM = 34
_TICKS = (-1.0, -0.5, 0.0, 0.5, 1.0)
_NUMERIC = {"n", "only A", "only B", "A", "B", "B − A", "95% CI", "p", "p (Holm)", "MDE"}


def _x(value: float) -> float:
    """Differences of scores in [0, 1] lie in [-1, 1]."""
    return _LABEL_W + 10 + (max(-1.0, min(1.0, value)) + 1.0) / 2.0 * _PLOT_W


def difference_plot(rows: list[PairedComparison]) -> str:
    """One line per row: a dot at B − A and a line across its 95% interval; zero marked."""
    height = _TOP + _ROW_H * len(rows)
    width = _LABEL_W + _PLOT_W + 40
    parts = [
        f'<svg class="differences" role="img" viewBox="0 0 {width} {height + _BOTTOM}" '
        f'width="{width}" height="{height + _BOTTOM}">',
        "<title>B − A and its 95% CI per group and metric</title>",
    ]
    for tick in _TICKS:
        x = _x(tick)
        css = "zero" if tick == 0.0 else "grid"
        parts.append(
            f'<line class="{css}" x1="{x:.1f}" y1="{_TOP - 4}" x2="{x:.1f}" y2="{height:.1f}"/>'
            f'<text class="tick" x="{x:.1f}" y="{height + 16:.1f}" text-anchor="middle">'
            f"{tick:+g}</text>"
        )
    for index, row in enumerate(rows):
        y = _TOP + _ROW_H * index + _ROW_H / 2
        label = f"{row.group} · {row.metric}"
        parts.append(
            f'<text class="label" x="{_LABEL_W}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        if row.delta is None:
            parts.append(f'<text class="none" x="{_x(0) + 4:.1f}" y="{y + 4:.1f}">no pairs</text>')
            continue
        if row.ci_low is not None and row.ci_high is not None:
            parts.append(
                f'<line class="ci" x1="{_x(row.ci_low):.1f}" y1="{y:.1f}" '
                f'x2="{_x(row.ci_high):.1f}" y2="{y:.1f}" stroke="#1f77b4"/>'
            )
        parts.append(
            f'<circle class="delta" cx="{_x(row.delta):.1f}" cy="{y:.1f}" r="4.5" '
            f'fill="#1f77b4"><title>{escape(label)}: {row.delta:+.3f}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _cell(tag: str, column: str, text: str) -> str:
    css = ' class="num"' if column in _NUMERIC else ""
    return f"<{tag}{css}>{escape(text)}</{tag}>"


def comparison_section(comparison: Comparison) -> str:
    """The report's section comparing run B with run A (the report's own run)."""
    head = "".join(
        f'<th class="num">{escape(name)}</th>' if name in _NUMERIC else f"<th>{escape(name)}</th>"
        for name in COLUMNS
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(cell)}</td>'
            if name in _NUMERIC
            else f"<td>{escape(cell)}</td>"
            for name, cell in zip(COLUMNS, cells(row), strict=True)
        )
        + "</tr>"
        for row in comparison.rows
    )
    items = "".join(f"<li>{escape(line)}</li>" for line in notes(comparison))
    return "\n".join(
        [
            f'<h2 id="comparison">Paired comparison: B ({escape(comparison.b)}) − '
            f"A ({escape(comparison.a)})</h2>",
            f"<figure>{difference_plot(list(comparison.rows))}</figure>",
            f'<table id="comparison-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>",
            f'<ul class="legend">{items}</ul>',
        ]
    )
