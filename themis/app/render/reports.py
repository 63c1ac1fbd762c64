"""Turning reports and run lists into what users read: rich tables (their JSON:
`report_json`; the other report formats: `report_formats`, `report_html`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from themis.app.render.report_json import status_json
from themis.app.render.report_text import (
    AGREEMENT_HEADERS,
    Columns,
    agreement_cells,
    legend_lines,
    provenance_text,
    status_text,
    trial_counts,
    when,
)
from themis.app.usecases.reporting import ReportDocument
from themis.core.inspection import RunStatus
from themis.core.report import Report, ServedModel
from themis.core.snapshot import RunSummary


def counted(count: int, noun: str) -> str:
    """`1 trial`, `2 trials`: a count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def report_table(report: Report) -> Table:
    """Rows (dataset × model × prompt, or the grouping asked for) × metric with mean, 95% CI
    (and which interval), n, and the trials that failed, were unparsed, cut at `max_tokens`,
    retried or answered from another run's generation (cache hits); `Columns` lays it out."""
    title = f"{report.name} · run {report.run_id[:12]} · {status_text(report)}"
    table = Table(title=title, title_justify="left")
    columns = Columns.of(report)
    for name in columns.headers:
        numeric = name in ("mean", "95% CI") or name not in (*columns.places, "metric", "interval")
        table.add_column(name, justify="right" if numeric else "left")
    for row in report.rows:
        table.add_row(*columns.cells(row))
    table.caption = f"trials: {trial_counts(report)}"
    table.caption_justify = "left"
    return table


def agreement_table(report: Report) -> Table:
    """Each judge's agreement statistics: which, its value, over how many raters and items."""
    table = Table(title="judge agreement", title_justify="left")
    for name in AGREEMENT_HEADERS:
        table.add_column(name, justify="left" if name in ("judge", "statistic") else "right")
    for row in report.agreement:
        table.add_row(*agreement_cells(row))
    return table


def report_render(report: Report) -> RenderableType:
    """The report table (then judge agreement, if any), then a line per model whose served
    model differs from the request."""
    warnings = [Text(line) for line in served_model_warnings(report.served)]
    parts: list[RenderableType] = [report_table(report)]
    if report.agreement:
        parts.append(agreement_table(report))
    return Group(*parts, *warnings)


def document_render(document: ReportDocument) -> RenderableType:
    """`themis report`'s table: the provenance, the table, drift warnings and the legend."""
    report = document.report
    provenance = Text(provenance_text(document) + f" · created {when(document.created_at)}")
    legend = [Text(line, style="dim") for line in legend_lines(report.rows)]
    return Group(provenance, report_render(report), *legend)


def served_model_warnings(served: Sequence[ServedModel]) -> list[str]:
    """One line per model whose answers came from another model id, or from several."""
    lines = []
    for model in served:
        if not (model.differs or model.changed):
            continue
        ids = ", ".join(f"{name} ({count})" for name, count in sorted(model.served.items()))
        what = "changed during the run" if model.changed else "differs from the request"
        lines.append(
            f"warning: model {model.model!r} requested {model.requested!r}, "
            f"served by {ids}: the served model {what}"
        )
    return lines


def runs_table(summaries: list[RunSummary], statuses: Sequence[RunStatus]) -> Table:
    """`themis runs`: one row per run, with its status (`queued` for a submitted run a worker
    has not taken yet; its `created` is when it was submitted)."""
    by_run = {row.run_id: row for row in statuses}
    table = Table(title="runs", title_justify="left")
    table.add_column("run_id")
    table.add_column("name")
    table.add_column("created")
    table.add_column("events", justify="right")
    table.add_column("status")
    for summary in summaries:
        status = status_json(by_run.get(summary.run_id))["status"]
        table.add_row(
            summary.run_id[:16],
            summary.name,
            when(summary.created_at),
            str(summary.event_count),
            status or "—",
        )
    return table
