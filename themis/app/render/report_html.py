"""The report as one self-contained HTML page: provenance, a forest plot per metric, a bar chart
of every metric, the report table and a per-case table to sort and filter.

Nothing is fetched when the page opens: the CSS, the SVG plots and a few lines of JavaScript
are inline, and a Content-Security-Policy forbids any other source. Every text that comes from
a run (names, case fields, model responses, answers) is HTML-escaped; the script only reorders
and hides rows that are already on the page, so no run data ever passes through JavaScript.
"""

from __future__ import annotations

from html import escape
from importlib import resources

from themis.app.render.comparison_html import comparison_section
from themis.app.render.report_svg import bar_chart, forest_plot, series_colours
from themis.app.render.report_text import (
    AGREEMENT_HEADERS,
    Columns,
    agreement_cells,
    header_lines,
    legend_lines,
    served_text,
)
from themis.app.usecases.reporting import ReportDocument
from themis.core.case_results import CaseResult
from themis.core.comparison import Comparison

# A response longer than this is cut in the per-case table (the store keeps all of it).
RESPONSE_CHARS = 2_000
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
_NUMERIC = {
    "sample",
    "mean",
    "n",
    "failed",
    "unparsed",
    "truncated",
    "retried",
    "cache hits",
    "judge failed",
    "value",
    "raters",
    "items",
}


def _asset(name: str) -> str:
    return resources.files("themis.app.render").joinpath("assets", name).read_text("utf-8")


def report_html(document: ReportDocument, comparison: Comparison | None = None) -> str:
    """The page; with `comparison` (run B against this run), a paired-comparison section."""
    report = document.report
    title = f"{report.name} · run {report.run_id[:12]}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_asset('report.css')}</style>",
        "</head><body>",
        f"<h1>{escape(report.name)}</h1>",
        report_body(document),
        *([] if comparison is None else [comparison_section(comparison)]),
        "<h2>Per case</h2>",
        _cases_table(document),
        f"<script>{_asset('report.js')}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def report_body(document: ReportDocument) -> str:
    """The report without its page: provenance, plots, the results table and its legend (the
    viewer's run page shows the same)."""
    parts = [
        _provenance(document),
        _plots(document),
        "<h2>Results</h2>",
        _results_table(document),
        _legend(document),
    ]
    return "\n".join(parts)


def _provenance(document: ReportDocument) -> str:
    drift = set(served_text(document)) - {
        line for line in served_text(document) if line.endswith("(as requested)")
    }
    items = []
    for line in header_lines(document):
        served = line.removeprefix("served model ")
        css = ' class="drift"' if served in drift else ""
        items.append(f"<li{css}>{escape(line)}</li>")
    run = f'<p>run <code id="run-id">{escape(document.report.run_id)}</code></p>'
    return run + '<ul class="provenance">' + "".join(items) + "</ul>"


def _plots(document: ReportDocument) -> str:
    rows = document.report.rows
    colours = series_colours(rows)
    metrics = list(dict.fromkeys(row.metric for row in rows))
    parts = ['<section id="plots"><h2>Means and 95% confidence intervals</h2>']
    for metric in metrics:
        chosen = [row for row in rows if row.metric == metric]
        parts.append(
            f"<figure><figcaption>{escape(metric)}</figcaption>"
            f"{forest_plot(metric, chosen, colours)}</figure>"
        )
    parts.append("<h2>Every metric</h2>")
    parts.append(f"<figure>{bar_chart(metrics, rows, colours)}</figure></section>")
    return "\n".join(parts)


def _header_cells(headers: list[str]) -> str:
    return "".join(
        f'<th class="num">{escape(name)}</th>' if name in _NUMERIC else f"<th>{escape(name)}</th>"
        for name in headers
    )


def _table(table_id: str, headers: list[str], rows: list[list[str]]) -> str:
    lines = [f'<table id="{table_id}"><thead><tr>{_header_cells(headers)}</tr></thead><tbody>']
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(cell)}</td>'
            if name in _NUMERIC
            else f"<td>{escape(cell)}</td>"
            for name, cell in zip(headers, row, strict=True)
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def _results_table(document: ReportDocument) -> str:
    report = document.report
    columns = Columns.of(report)
    html = _table("results", columns.headers, [columns.cells(row) for row in report.rows])
    if report.agreement:
        agreement = [agreement_cells(row) for row in report.agreement]
        html += "<h3>Judge agreement</h3>" + _table("agreement", [*AGREEMENT_HEADERS], agreement)
    return html


def _legend(document: ReportDocument) -> str:
    items = "".join(f"<li>{escape(line)}</li>" for line in legend_lines(document.report.rows))
    return f'<ul class="legend">{items}</ul>'


def _cases_table(document: ReportDocument) -> str:
    # Every score a trial recorded (metrics, their stages, any later kind), in the spec's order
    # first: a new kind of score needs no change here.
    metrics = list(
        dict.fromkeys([*document.metrics, *(key for case in document.cases for key in case.scores)])
    )
    headers = ["dataset", "case", "model", "prompt", "sample", "status", "expected", "answer"]
    head = _header_cells(headers) + "".join(f'<th class="num">{escape(m)}</th>' for m in metrics)
    head += "<th>response</th>"
    count = len(document.cases)
    note = (
        ""
        if count == document.case_count
        else f" (the first {count} of {document.case_count} trials)"
    )
    lines = [
        f'<p><input id="filter" type="search" placeholder="filter: words every row must contain">'
        f' <span id="shown">{count}</span> trials shown{escape(note)}</p>',
        f'<table id="cases"><thead><tr>{head}</tr></thead><tbody>',
    ]
    lines += [_case_row(case, metrics) for case in document.cases]
    lines.append("</tbody></table>")
    return "".join(lines)


def _case_row(case: CaseResult, metrics: list[str]) -> str:
    def text(value: object) -> str:
        return "—" if value is None else escape(str(value))

    cells = [
        case.dataset,
        case.case_id,
        case.model,
        case.prompt,
        case.sample,
        case.status,
        case.expected,
        case.answer,
    ]
    out = [f"<td>{text(cell)}</td>" for cell in cells]
    for metric in metrics:
        score = case.scores.get(metric)
        out.append(f'<td class="num">{"—" if score is None else f"{score:g}"}</td>')
    response = case.response
    if response is not None and len(response) > RESPONSE_CHARS:
        response = response[:RESPONSE_CHARS] + " …"
    out.append(f'<td class="response"><pre>{text(response)}</pre></td>')
    return "<tr>" + "".join(out) + "</tr>"
