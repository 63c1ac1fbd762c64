"""The report as Markdown, CSV and LaTeX text: the same rows, counts and legend in each.

Markdown and LaTeX open with the provenance header and close with the legend naming the mean
and each interval's statistic; CSV is one row per report row with a `run_id` column and every
number in its own column (`ci_method` names the interval), for spreadsheets and data frames.
"""

from __future__ import annotations

import csv
import io

from themis.app.render.report_text import (
    COUNTS,
    count_cells,
    header_lines,
    legend_lines,
    place_columns,
    place_values,
    row_cells,
    row_headers,
)
from themis.app.usecases.reporting import ReportDocument


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def report_markdown(document: ReportDocument) -> str:
    report = document.report
    headers = row_headers(report)
    lines = [f"# {_markdown_cell(report.name)}", ""]
    lines += [f"- {_markdown_cell(line)}" for line in header_lines(document)]
    lines += ["", "| " + " | ".join(headers) + " |"]
    aligns = [*("---" for _ in place_columns(report)), "---", "---:", "---:", "---"]
    lines.append("| " + " | ".join([*aligns, *("---:" for _ in COUNTS)]) + " |")
    for row in report.rows:
        cells = row_cells(row)
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |")
    lines.append("")
    lines += [f"- {_markdown_cell(line)}" for line in legend_lines(report.rows)]
    return "\n".join(lines) + "\n"


def report_csv(document: ReportDocument) -> str:
    report = document.report
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    places = place_columns(report)
    writer.writerow(
        ["run_id", *places, "metric", "mean", "ci_low", "ci_high", "ci_method", *COUNTS]
    )
    for row in report.rows:
        writer.writerow(
            [
                report.run_id,
                *("" if value is None else value for value in place_values(row)),
                row.metric,
                _raw(row.mean),
                _raw(row.ci_low),
                _raw(row.ci_high),
                row.ci_method,
                *count_cells(row),
            ]
        )
    return out.getvalue()


def _raw(value: float | None) -> str:
    return "" if value is None else repr(value)


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "---",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def report_latex(document: ReportDocument) -> str:
    """A `table` with a booktabs `tabular`; the provenance in comments above it and in the
    caption, the legend in the caption (needs `\\usepackage{booktabs}`)."""
    report = document.report
    places = place_columns(report)
    headers = [latex_escape(header) for header in row_headers(report)]
    spec = "l" * (len(places) + 1) + "rrl" + "r" * len(COUNTS)
    lines = [f"% {latex_escape(line)}" for line in header_lines(document)]
    lines += [
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    for row in report.rows:
        cells = row_cells(row)
        lines.append(" & ".join(latex_escape(cell) for cell in cells) + r" \\")
    caption = "; ".join([f"{report.name}, run {report.run_id[:12]}", *legend_lines(report.rows)])
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{latex_escape(caption)}.}}",
        rf"\label{{tab:themis-{report.run_id[:12]}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"
