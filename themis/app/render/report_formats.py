"""The report as Markdown, CSV and LaTeX text: the same rows, counts and legend in each.

Markdown and LaTeX open with the provenance header and close with the legend naming the mean
and each interval's statistic; CSV is one row per report row, then one per judge agreement
statistic, with a `run_id` column and every number in its own column (`ci_method` names the
interval), for spreadsheets and data frames.
"""

from __future__ import annotations

import csv
import io

from themis.app.render.report_text import (
    AGREEMENT_HEADERS,
    Columns,
    agreement_cells,
    header_lines,
    legend_lines,
)
from themis.app.usecases.reporting import ReportDocument


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown_table(headers: list[str], aligns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def report_markdown(document: ReportDocument) -> str:
    report = document.report
    columns = Columns.of(report)
    lines = [f"# {_markdown_cell(report.name)}", ""]
    lines += [f"- {_markdown_cell(line)}" for line in header_lines(document)]
    aligns = [*("---" for _ in columns.places), "---", "---:", "---:", "---"]
    aligns += ["---:" for _ in columns.counts]
    rows = [columns.cells(row) for row in report.rows]
    lines += ["", *_markdown_table(columns.headers, aligns, rows)]
    if report.agreement:
        agreement = [agreement_cells(row) for row in report.agreement]
        aligns = ["---", "---", "---:", "---:", "---:"]
        lines += [
            "",
            "Judge agreement:",
            "",
            *_markdown_table([*AGREEMENT_HEADERS], aligns, agreement),
        ]
    lines.append("")
    lines += [f"- {_markdown_cell(line)}" for line in legend_lines(report.rows)]
    return "\n".join(lines) + "\n"


def report_csv(document: ReportDocument) -> str:
    """One line per report row, then one per judge agreement statistic: its `metric` is
    `agreement:<statistic>(<judge>)`, `mean` its value, `n` the candidates rated, and the
    `raters` column (there only when the report has agreement) the number of raters."""
    report = document.report
    columns = Columns.of(report)
    raters = ["raters"] if report.agreement else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "run_id",
            *columns.places,
            "metric",
            "mean",
            "ci_low",
            "ci_high",
            "ci_method",
            *columns.counts,
            *raters,
        ]
    )
    for row in report.rows:
        writer.writerow(
            [
                report.run_id,
                *("" if value is None else value for value in columns.places_of(row)),
                row.metric,
                _raw(row.mean),
                _raw(row.ci_low),
                _raw(row.ci_high),
                row.ci_method,
                *columns.counts_of(row),
                *("" for _ in raters),
            ]
        )
    for agreement in report.agreement:
        writer.writerow(
            [
                report.run_id,
                *("" for _ in columns.places),
                f"agreement:{agreement.statistic}({agreement.judge})",
                _raw(agreement.value),
                "",
                "",
                "",
                str(agreement.items),
                *("" for _ in columns.counts[1:]),
                str(agreement.raters),
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


def _tabular(spec: str, headers: list[str], rows: list[list[str]]) -> list[str]:
    return [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(header) for header in headers) + r" \\",
        r"\midrule",
        *(" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]


def report_latex(document: ReportDocument) -> str:
    """A `table` with a booktabs `tabular` (and one of judge agreement, if any); the provenance
    in comments above it, the legend in the caption (needs `\\usepackage{booktabs}`)."""
    report = document.report
    columns = Columns.of(report)
    spec = "l" * (len(columns.places) + 1) + "rrl" + "r" * len(columns.counts)
    lines = [f"% {latex_escape(line)}" for line in header_lines(document)]
    lines += [r"\begin{table}[ht]", r"\centering", r"\small"]
    lines += _tabular(spec, columns.headers, [columns.cells(row) for row in report.rows])
    if report.agreement:
        agreement = [agreement_cells(row) for row in report.agreement]
        lines += [r"\par\medskip", *_tabular("llrrr", [*AGREEMENT_HEADERS], agreement)]
    caption = "; ".join([f"{report.name}, run {report.run_id[:12]}", *legend_lines(report.rows)])
    lines += [
        rf"\caption{{{latex_escape(caption)}.}}",
        rf"\label{{tab:themis-{report.run_id[:12]}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"
