"""What each page of the viewer shows, as JSON-ready data, read from a store opened read-only
for the moment of one request (a store held by a running process answers from what that
process publishes, or says it is held).

Reports come from `report_document` (the checkpoint's cached report when it is fresh), trials,
failures and disagreements from paginated DuckDB queries (`LogBrowser`), one case from
`get_evaluation_execution` and statistics from `compare_stored`: the viewer computes nothing
that `themis report`, `inspect evaluation` and `themis compare` do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from themis.app.api.views import get_evaluation_execution, live_runs
from themis.app.render.comparisons import comparison_json
from themis.app.render.evaluation import evaluation_json
from themis.app.render.inspect_views import progress_json, state_json
from themis.app.render.report_text import when
from themis.app.render.reports import document_json
from themis.app.usecases.comparing import compare_stored
from themis.app.usecases.reporting import ReportDocument, report_document
from themis.app.usecases.runs import resolve_run_id
from themis.app.wiring import (
    StoreLike,
    live_progress_at,
    log_browser,
    opened_store,
    viewer_notice,
)
from themis.core.breakdown import Breakdown
from themis.core.comparison import Comparison
from themis.core.errors import ConfigError, StoreLocked
from themis.core.inspection import run_progress
from themis.core.report import Report

# Trials per page, and the most a request may ask for.
PAGE_SIZE = 50
MAX_PAGE = 500
# Latest finished trials a live run page shows.
LATEST = 10


def headline(report: Report) -> str | None:
    """The first metric's best mean over the report's rows, e.g. `numeric_match 0.861 (strong ·
    direct)`; `None` before anything is scored."""
    rows = [row for row in report.rows if row.mean is not None and not row.judge]
    if not rows:
        return None
    metric = rows[0].metric
    best = max((row for row in rows if row.metric == metric), key=lambda row: row.mean or 0.0)
    return f"{metric} {best.mean:.3f} ({best.model} · {best.prompt})"


def runs_data(store: StoreLike) -> dict[str, Any]:
    """Every run of the store, oldest first: name, id, status, counts, created, headline."""
    try:
        with opened_store(store, read_only=True) as opened:
            listed = []
            for summary in opened.runs():
                report = report_document(opened, summary.run_id).report
                listed.append(
                    {
                        "run_id": summary.run_id,
                        "name": summary.name,
                        "status": report.status,
                        "completed_through_stage": _stage(report),
                        "planned": report.planned,
                        "scored": report.scored,
                        "failed": report.failed,
                        "pending": report.pending,
                        "created_at": when(summary.created_at),
                        "events": summary.event_count,
                        "headline": headline(report),
                    }
                )
            return {"live": None, "runs": listed}
    except StoreLocked as locked:  # a running process holds it: what that process publishes
        progress = live_runs(locked)
        return {
            "live": {"pid": locked.pid, "viewer": viewer_notice(locked.path).announced(locked.pid)},
            "runs": [
                {
                    "run_id": row.run_id,
                    "name": row.name,
                    "status": row.status,
                    "completed_through_stage": row.completed_through_stage.value
                    if row.completed_through_stage
                    else None,
                    "planned": row.planned,
                    "scored": row.done,
                    "failed": row.failed,
                    "pending": row.pending,
                    "created_at": None,
                    "events": None,
                    "headline": None,
                }
                for row in progress
            ],
        }


def live_data(store: StoreLike) -> dict[str, Any]:
    """`/api/live`: the runs executing on the store now, as their processes publish them (about
    twice a second): `inspect state`'s stage counts and `quickcheck`'s line for each."""
    published = live_progress_at(store)
    runs = []
    for record in [] if published is None else published.records():
        state = record.live_state()
        line = progress_json(run_progress(state, record.until_stage))
        runs.append({**line, "stages": state_json(state)["stages"]})
    return {"runs": runs}


def latest_data(store: StoreLike, run_id: str, limit: int = LATEST) -> dict[str, Any]:
    """`/api/runs/{id}/latest`: the trials that finished last, newest first."""
    resolved = resolve(store, run_id)
    rows = log_browser(store).latest(resolved, limit=max(1, min(limit, MAX_PAGE)))
    return {"run_id": resolved, "rows": rows}


def resolve(store: StoreLike, run_id: str) -> str:
    """The full id of the run `run_id` names (a unique prefix will do)."""
    with opened_store(store, read_only=True) as opened:
        return resolve_run_id(opened, run_id)


def _stage(report: Report) -> str | None:
    stage = report.completed_through_stage
    return stage.value if stage is not None else None


@attrs.frozen
class TrialQuery:
    """Which page of a run's trials: an offset, a size, words to match and a sort column."""

    offset: int = 0
    limit: int = PAGE_SIZE
    search: str = ""
    sort: str = "position"
    descending: bool = False


def run_document(store: StoreLike, run_id: str, by: Breakdown | None = None) -> ReportDocument:
    """The run's report with its provenance, its rows grouped `by` (default dataset × model ×
    prompt); `RunNotFound` for an unknown id or prefix, `ConfigError` for an unknown field."""
    with opened_store(store, read_only=True) as opened:
        return report_document(opened, run_id, by)


def failures_data(store: StoreLike, run_id: str) -> list[dict[str, Any]]:
    return [attrs.asdict(kind) for kind in log_browser(store).failure_kinds(run_id)]


def trials_data(store: StoreLike, run_id: str, query: TrialQuery) -> dict[str, Any]:
    """A page of the run's trials (the `trials` log view's columns, plus `response`)."""
    limit = max(1, min(query.limit, MAX_PAGE))
    page = log_browser(store).trials(
        run_id,
        offset=max(0, query.offset),
        limit=limit,
        search=query.search,
        sort=query.sort,
        descending=query.descending,
    )
    return {"total": page.total, "offset": page.offset, "limit": limit, "rows": list(page.rows)}


def run_data(
    store: StoreLike, run_id: str, query: TrialQuery, by: Breakdown | None = None
) -> dict[str, Any]:
    """`/api/runs/{id}`: the report as `themis report --format json --by ...`, failures by kind
    and a page of trials."""
    document = run_document(store, run_id, by)
    resolved = document.report.run_id
    return {
        "report": document_json(document),
        "failures": failures_data(store, resolved),
        "trials": trials_data(store, resolved, query),
    }


def case_data(store: StoreLike, run_id: str, case_id: str) -> dict[str, Any]:
    """Every trial of one case, as `themis inspect evaluation --json` prints it."""
    return evaluation_json(get_evaluation_execution(run_id, case_id, store))


@attrs.frozen
class CompareQuery:
    """Two runs (`a`, `b`), or run `a` and two of its `models`; `metric` picks the metric the
    disagreements list compares (default: the run's first)."""

    a: str
    b: str | None = None
    models: tuple[str, ...] = ()
    metric: str | None = None
    offset: int = 0
    limit: int = PAGE_SIZE


# Comparisons already computed, by (runs, models, both runs' event counts): paging through the
# disagreements or reloading the page does not rerun the statistics while the log is unchanged.
Comparisons = dict[tuple[Any, ...], Comparison]


def compare_data(
    store: StoreLike, query: CompareQuery, cache: Comparisons | None = None
) -> tuple[Comparison, dict[str, Any]]:
    """`themis compare`'s statistics and a page of the cases where the sides disagree."""
    if query.b is None and len(query.models) != 2:
        raise ConfigError("compare: give run b, or models=A,B (two models of run a)")
    cache = {} if cache is None else cache
    with opened_store(store, read_only=True) as opened:
        run_a = resolve_run_id(opened, query.a)
        run_b = run_a if query.b is None else resolve_run_id(opened, query.b)
        events = {summary.run_id: summary.event_count for summary in opened.runs()}
        key = (run_a, run_b, query.models, events.get(run_a), events.get(run_b))
        comparison = cache.get(key)
        if comparison is None:
            comparison = compare_stored(opened, (query.a, query.b), models=query.models)
            cache[key] = comparison
        metrics = report_document(opened, run_a).metrics
    metric = query.metric or (metrics[0] if metrics else "")
    if metric not in metrics:
        raise ConfigError(f"metric: run {run_a[:12]} has no metric {metric!r}")
    sides: Sequence[tuple[str, str | None]] = (
        [(run_a, query.models[0]), (run_b, query.models[1])]
        if query.models
        else [(run_a, None), (run_b, None)]
    )
    limit = max(1, min(query.limit, MAX_PAGE))
    page = log_browser(store).disagreements(sides, metric, offset=max(0, query.offset), limit=limit)
    disagreements = {
        "run_a": run_a,
        "run_b": run_b,
        "metric": metric,
        "total": page.total,
        "offset": page.offset,
        "limit": limit,
        "rows": list(page.rows),
    }
    return comparison, disagreements


def compare_json(comparison: Comparison, disagreements: dict[str, Any]) -> dict[str, Any]:
    return {"comparison": comparison_json(comparison), "disagreements": disagreements}
