"""Reports and run lists as stable JSON (`--json`, `--format json`), without rich: a command
that prints JSON loads no console, table or text module (the tables: `reports`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from themis.app.render.report_text import CI_METHODS, MEAN_DEFINITION, N_DEFINITION, when

if TYPE_CHECKING:  # not at import: `themis report` never loads the execution engine
    from themis.app.usecases.reporting import ReportDocument
    from themis.app.usecases.runs import RunResult
    from themis.core.inspection import RunStatus
    from themis.core.report import Report, ServedModel
    from themis.core.snapshot import RunSummary

__all__ = [
    "agreement_json",
    "document_json",
    "report_json",
    "run_json",
    "runs_json",
    "served_json",
    "status_json",
]


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
                **status_json(by_run.get(summary.run_id)),
            }
            for summary in summaries
        ],
    }


def status_json(row: RunStatus | None) -> dict[str, Any]:
    """A run's status and the last stage it completed, as `themis runs --json` gives them."""
    if row is None:  # a run that started after the list was read
        return {"status": None, "completed_through_stage": None}
    through = row.completed_through_stage
    return {
        "status": row.status,
        "completed_through_stage": through.value if through else None,
    }
