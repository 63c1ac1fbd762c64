"""What each page of the viewer shows, as JSON-ready data, read from a store opened read-only
for the moment of one request (a store held by a running process answers from what that
process publishes, or says it is held).

Reports come from `report_document` (the checkpoint's cached report when it is fresh), trials,
failures and disagreements from paginated DuckDB queries (`LogBrowser`), one case from
`get_evaluation_execution` and statistics from `compare_stored`: the viewer computes nothing
that `themis report`, `inspect evaluation` and `themis compare` do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import attrs

from themis.app.api.viewer_cache import Listing, ViewerCache
from themis.app.api.views import get_evaluation_execution, live_runs
from themis.app.render.comparisons import comparison_json
from themis.app.render.evaluation import evaluation_json
from themis.app.render.inspect_views import lineage_json, progress_json, state_json
from themis.app.render.report_json import document_json
from themis.app.render.report_text import Columns, when
from themis.app.usecases.comparing import compare_stored
from themis.app.usecases.reporting import ReportDocument
from themis.app.usecases.stored import compile_case
from themis.app.wiring import (
    StoreLike,
    live_progress_at,
    viewer_notice,
)
from themis.core.breakdown import Breakdown
from themis.core.comparison import Comparison
from themis.core.errors import ConfigError, StoreLocked, ThemisError
from themis.core.evaluation_view import EvaluationExecution, evaluation_execution
from themis.core.inspection import changes_of, run_progress
from themis.core.report import Report
from themis.core.report_sampling import is_sampled
from themis.core.state import project

# Trials per page, and the most a request may ask for.
PAGE_SIZE = 50
MAX_PAGE = 500
# Latest finished trials a live run page shows.
LATEST = 10


def _never() -> bool:
    return False


def warm(store: StoreLike, cache: ViewerCache, stopped: Callable[[], bool] = _never) -> None:
    """Prepare every run of the store before anyone asks (its report, its trial rows and its
    compiled spec; then the case values of each run without sampled or judge rows, which any
    comparison of it pairs; then for a run of two models their comparison, in the order the
    run names them: what "compare its models" leads to), so that even the first page of each
    answers at once; a store held by a running process is left alone. Before each step it
    asks `stopped()`, and returns once that is true."""
    try:
        summaries = cache.runs(store)
    except StoreLocked:
        return
    prepared = []
    for summary in summaries:
        if stopped():
            return
        with suppress(ThemisError):  # a run this Themis cannot read: its pages will say why
            cache.document(store, summary.run_id, Breakdown(), summary.event_count)
            cache.browser.kept(summary.run_id, summary.event_count)
            # Compiled: a regrouped report, a sampled run's case values and a judged run's
            # case pages need it; a case page then reads the kept rows, not the case alone.
            with cache.browser.opened() as opened:
                cache.load(opened, summary.run_id)
            prepared.append(summary)
    for summary in prepared:
        spec = cache.spec(store, summary.run_id)
        if stopped():
            return
        if not (is_sampled(spec) or spec.judges):
            with suppress(ThemisError):
                cache.scores(store, summary.run_id, summary.event_count)
    for run_id in (summary.run_id for summary in prepared):
        models = tuple(model.name for model in cache.spec(store, run_id).models)
        if stopped():
            return
        if len(models) == 2:
            with suppress(ThemisError):
                compare_data(store, CompareQuery(a=run_id, models=models), cache)


def headline(report: Report) -> str | None:
    """The first metric's best mean over the report's rows, e.g. `numeric_match 0.861 (strong ·
    direct)`; `None` before anything is scored."""
    rows = [row for row in report.rows if row.mean is not None and not row.judge]
    if not rows:
        return None
    metric = rows[0].metric
    best = max((row for row in rows if row.metric == metric), key=lambda row: row.mean or 0.0)
    return f"{metric} {best.mean:.3f} ({best.model} · {best.prompt})"


def runs_data(store: StoreLike, cache: ViewerCache | None = None) -> dict[str, Any]:
    """Every run of the store, oldest first: name, id, status, counts, created, headline."""
    cache = cache or ViewerCache.of(store)
    try:
        listed = []
        summaries = cache.runs(store)
        for summary, report in zip(summaries, cache.listed_reports(store, summaries), strict=True):
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
            "live": {"pid": locked.pid, "viewer": holders_viewer(locked)},
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


def holders_viewer(locked: StoreLocked) -> str | None:
    """The URL of the live viewer the process holding the store serves, if it serves one."""
    return viewer_notice(locked.path).announced(locked.pid)


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


def latest_data(
    store: StoreLike, run_id: str, cache: ViewerCache | None = None, limit: int = LATEST
) -> dict[str, Any]:
    """`/api/runs/{id}/latest`: the trials that finished last, newest first."""
    cache = cache or ViewerCache.of(store)
    resolved, _ = cache.resolve(store, run_id)
    rows = cache.browser.latest(resolved, limit=max(1, min(limit, MAX_PAGE)))
    return {"run_id": resolved, "rows": rows}


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


def run_document(
    store: StoreLike,
    run_id: str,
    by: Breakdown | None = None,
    cache: ViewerCache | None = None,
) -> ReportDocument:
    """The run's report with its provenance, its rows grouped `by` (default dataset × model ×
    prompt); `RunNotFound` for an unknown id or prefix, `ConfigError` for an unknown field."""
    cache = cache or ViewerCache.of(store)
    resolved, events = cache.resolve(store, run_id)
    return cache.document(store, resolved, by or Breakdown(), events)


def runtime_changes_data(
    store: StoreLike, run_id: str, cache: ViewerCache | None = None
) -> list[dict[str, Any]]:
    """The run's runtime lineage as `themis inspect snapshot --json` has it: each setting a
    later execution changed, when, from what and to what, oldest first."""
    browser = (cache or ViewerCache.of(store)).browser
    return lineage_json(changes_of(browser.resumes(run_id)))


def failures_data(
    store: StoreLike, run_id: str, cache: ViewerCache | None = None
) -> list[dict[str, Any]]:
    browser = (cache or ViewerCache.of(store)).browser
    return [attrs.asdict(kind) for kind in browser.failure_kinds(run_id)]


def trials_data(
    store: StoreLike, run_id: str, query: TrialQuery, cache: ViewerCache | None = None
) -> dict[str, Any]:
    """A page of the run's trials (the `trials` log view's columns, plus `response`)."""
    limit = max(1, min(query.limit, MAX_PAGE))
    page = (cache or ViewerCache.of(store)).browser.trials(
        run_id,
        offset=max(0, query.offset),
        limit=limit,
        search=query.search,
        sort=query.sort,
        descending=query.descending,
    )
    return {"total": page.total, "offset": page.offset, "limit": limit, "rows": list(page.rows)}


def run_data(
    store: StoreLike,
    run_id: str,
    query: TrialQuery,
    by: Breakdown | None = None,
    cache: ViewerCache | None = None,
) -> dict[str, Any]:
    """`/api/runs/{id}`: the report as `themis report --format json --by ...`, its table's
    cells as the page shows them, failures by kind and a page of trials."""
    cache = cache or ViewerCache.of(store)
    document = run_document(store, run_id, by, cache)
    resolved = document.report.run_id
    columns = Columns.of(document.report)
    return {
        "report": document_json(document),
        # The report's table as the run page shows it (the same text in each cell).
        "results": {
            "headers": columns.headers,
            "rows": [columns.cells(row) for row in document.report.rows],
        },
        "failures": failures_data(store, resolved, cache),
        "runtime_changes": runtime_changes_data(store, resolved, cache),
        "trials": trials_data(store, resolved, query, cache),
    }


def case_data(
    store: StoreLike, run_id: str, case_id: str, cache: ViewerCache | None = None
) -> dict[str, Any]:
    """Every trial of one case, as `themis inspect evaluation --json` prints it: folded from
    the run's own events and the case's alone (a judged run's verdicts need its whole log)."""
    cache = cache or ViewerCache.of(store)
    try:
        resolved, _ = cache.resolve(store, run_id)
        alone = None if resolved in cache.compiled else _case_alone(cache, resolved, case_id)
        if alone is not None:
            return evaluation_json(alone)
        if resolved not in cache.compiled:
            with cache.browser.opened() as opened:
                cache.load(opened, resolved)
        _, compiled = cache.compiled[resolved]
    except StoreLocked:  # held by a running process: says so, as `inspect evaluation` does
        return evaluation_json(get_evaluation_execution(run_id, case_id, store))
    if compiled.spec.judges:
        return evaluation_json(get_evaluation_execution(resolved, case_id, store))
    events = cache.browser.case_events(resolved, case_id)
    state = project(event for _, event in events)
    return evaluation_json(evaluation_execution(compiled, state, case_id))


def _case_alone(cache: ViewerCache, run_id: str, case_id: str) -> EvaluationExecution | None:
    """The case from what the store keeps of it alone (ADR 0066): the snapshot cut to the
    case, compiled as far as planning it needs and checked against the trials the store placed
    for it, and the fold of those trials' events; `None` (the run is compiled whole instead)
    for a judged run, a case the run lacks, or trials the store did not place as planned."""
    read = cache.browser.case_alone(run_id, case_id)
    if read is None or read.snapshot.spec.judges:
        return None
    compiled = compile_case(read.snapshot, read.placed)
    if compiled is None:
        return None
    return evaluation_execution(compiled, project(event for _, event in read.events), case_id)


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


def compare_data(
    store: StoreLike, query: CompareQuery, cache: ViewerCache | None = None
) -> tuple[Comparison, dict[str, Any]]:
    """`themis compare`'s statistics and a page of the cases where the sides disagree."""
    if query.b is None and len(query.models) != 2:
        raise ConfigError("compare: give run b, or models=A,B (two models of run a)")
    cache = cache or ViewerCache.of(store)
    run_a, events_a = cache.resolve(store, query.a)
    run_b, events_b = (run_a, events_a) if query.b is None else cache.resolve(store, query.b)
    key = (run_a, run_b, query.models, events_a, events_b)
    comparison = cache.comparisons.get(key)
    if comparison is None:
        versions = {run_a: events_a, run_b: events_b}
        comparison = compare_stored(
            Listing(cache.runs(store)),
            (run_a, query.b and run_b),
            models=query.models,
            scores=lambda run: cache.scores(store, run, versions[run]),
        )
        cache.comparisons[key] = comparison
    metrics = cache.metrics(store, run_a)
    metric = query.metric or (metrics[0] if metrics else "")
    if metric not in metrics:
        raise ConfigError(f"metric: run {run_a[:12]} has no metric {metric!r}")
    sides: Sequence[tuple[str, str | None]] = (
        [(run_a, query.models[0]), (run_b, query.models[1])]
        if query.models
        else [(run_a, None), (run_b, None)]
    )
    limit = max(1, min(query.limit, MAX_PAGE))
    # Each run's case values on its metrics, as its comparison read them (ADR 0067).
    named = {run: cache.metrics(store, run) for run in (run_a, run_b)}
    page = cache.browser.disagreements(
        sides, metric, metrics=named, offset=max(0, query.offset), limit=limit
    )
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
