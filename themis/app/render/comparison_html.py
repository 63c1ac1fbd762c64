"""A paired comparison as a section of the HTML report: a forest plot of each row's B − A with
its 95% interval around a zero line, the comparison table and its notes.

Inline SVG and escaped text only, like the rest of the report (`report_html`).
"""

from __future__ import annotations

from html import escape

from themis.app.render.comparisons import COLUMNS, cells, notes
from themis.app.render.report_svg import BOTTOM, PALETTE, ROW_H, TOP, Frame, Mark, axis, marked_rows
from themis.core.comparison import Comparison, PairedComparison

_LABEL_W = 340
_PLOT_W = 420
_TICKS = (-1.0, -0.5, 0.0, 0.5, 1.0)
_NUMERIC = {"n", "only A", "only B", "A", "B", "B − A", "95% CI", "p", "p (Holm)", "MDE"}


def _x(value: float) -> float:
    """Differences of scores in [0, 1] lie in [-1, 1]."""
    return _LABEL_W + 10 + (max(-1.0, min(1.0, value)) + 1.0) / 2.0 * _PLOT_W


_DIFFERENCES = Frame(_LABEL_W, _x)


def _delta_mark(row: PairedComparison) -> Mark:
    label = f"{row.group} · {row.metric}"
    title = "" if row.delta is None else f"{escape(label)}: {row.delta:+.3f}"
    return Mark(
        label, row.delta, row.ci_low, row.ci_high, PALETTE[0], ("delta", 4.5), title, "no pairs"
    )


def difference_plot(rows: list[PairedComparison]) -> str:
    """One line per row: a dot at B − A and a line across its 95% interval; zero marked."""
    height = TOP + ROW_H * len(rows)
    width = _LABEL_W + _PLOT_W + 40
    return (
        f'<svg class="differences" role="img" viewBox="0 0 {width} {height + BOTTOM}" '
        f'width="{width}" height="{height + BOTTOM}">'
        "<title>B − A and its 95% CI per group and metric</title>"
        + axis(_DIFFERENCES, _TICKS, height, signed=True)
        + marked_rows(_DIFFERENCES, [_delta_mark(row) for row in rows])
        + "</svg>"
    )


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
