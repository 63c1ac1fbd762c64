"""Turning reports and run lists into what users read: rich tables and stable JSON (the
other report formats: `report_formats`, `report_html`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from themis.app.render.report_text import (
    AGREEMENT_HEADERS,
    CI_METHODS,
    MEAN_DEFINITION,
    N_DEFINITION,
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

if TYPE_CHECKING:  # not at import: `themis report` never loads the execution engine
    from themis.app.usecases.runs import RunResult


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


def served_json(served: Sequence[ServedModel]) -> list[dict[str, Any]]:
    """Per model: the requested id, generation counts per served id, and whether they differ."""
    return [
        {
            "model": model.model,
            "requested": model.requested,
            "served": dict(sorted(model.served.items())),
            "differs": model.differs,
            "changed": model.changed,
        }
        for model in served
    ]


def report_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data (the `--json` / `--format json` shape)."""
    return {
        "run_id": report.run_id,
        "name": report.name,
        "status": report.status,
        "completed_through_stage": (
            report.completed_through_stage.value if report.completed_through_stage else None
        ),
        "trials": {
            "planned": report.planned,
            "scored": report.scored,
            "failed": report.failed,
            "pending": report.pending,
            "truncated": report.truncated,
            "retried": report.retried,
            "cache_hits": report.cache_hits,
        },
        "results": [
            {
                "dataset": row.dataset,
                "model": row.model,
                "prompt": row.prompt,
                "metric": row.metric,
                "mean": row.mean,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "n": row.n,
                "failed": row.failed,
                "unparsed": row.unparsed,
                "truncated": row.truncated,
                "retried": row.retried,
                "cache_hits": row.cache_hits,
                "ci_method": row.ci_method,
                **({"case_fields": dict(row.case_fields)} if row.case_fields else {}),
                **({"judge_failed": row.judge_failed} if row.judge else {}),
            }
            for row in report.rows
        ],
        "served_models": served_json(report.served),
        **({"agreement": agreement_json(report)} if report.agreement else {}),
    }


def document_json(document: ReportDocument) -> dict[str, Any]:
    """`themis report --format json`: the report, grouped `by`, with its provenance and the
    definitions of the mean and of each interval's statistic."""
    report = document.report
    return {
        **report_json(report),
        "by": list(report.by),
        "created_at": when(document.created_at),
        "provenance": {
            **dict(sorted(document.provenance.items())),
            "themis_now": document.themis_version,
        },
        "statistics": {
            "mean": MEAN_DEFINITION,
            "n": N_DEFINITION,
            "ci_level": 0.95,
            "ci_methods": {
                method: CI_METHODS.get(method, method)
                for method in dict.fromkeys(row.ci_method for row in report.rows)
            },
        },
    }


def agreement_json(report: Report) -> list[dict[str, Any]]:
    """The report's agreement rows as JSON-ready data."""
    return [
        {
            "judge": row.judge,
            "statistic": row.statistic,
            "value": row.value,
            "raters": row.raters,
            "items": row.items,
        }
        for row in report.agreement
    ]


def run_json(result: RunResult) -> dict[str, Any]:
    """`themis run --json`: the report plus what this invocation did."""
    return {
        **report_json(result.report),
        "reused": result.reused,
        "trials_executed": result.trials_executed,
        "model_calls": result.model_calls,
    }


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
        status = _status(by_run.get(summary.run_id))["status"]
        table.add_row(
            summary.run_id[:16],
            summary.name,
            when(summary.created_at),
            str(summary.event_count),
            status or "—",
        )
    return table


def runs_json(summaries: list[RunSummary], statuses: Sequence[RunStatus]) -> dict[str, Any]:
    """`themis runs --json`: the shape of `quickcheck --json` (an object: `live`, then `runs`),
    each run with its status beside when it was created and how many events it logged."""
    by_run = {row.run_id: row for row in statuses}
    return {
        "live": None,
        "runs": [
            {
                "run_id": summary.run_id,
                "name": summary.name,
                "created_at": when(summary.created_at),
                "events": summary.event_count,
                **_status(by_run.get(summary.run_id)),
            }
            for summary in summaries
        ],
    }


def _status(row: RunStatus | None) -> dict[str, Any]:
    if row is None:  # a run that started after the list was read
        return {"status": None, "completed_through_stage": None}
    through = row.completed_through_stage
    return {
        "status": row.status,
        "completed_through_stage": through.value if through else None,
    }
