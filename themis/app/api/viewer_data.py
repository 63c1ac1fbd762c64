"""What each page of the viewer shows, as JSON-ready data, read from a store opened read-only
for the moment of one request (a store held by a running process answers from what that
process publishes, or says it is held).

Reports come from `report_document` (the checkpoint's cached report when it is fresh), trials,
failures and disagreements from paginated DuckDB queries (`LogBrowser`), one case from
`get_evaluation_execution` and statistics from `compare_stored`: the viewer computes nothing
that `themis report`, `inspect evaluation` and `themis compare` do not.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import attrs

from themis.app.api.views import get_evaluation_execution, live_runs
from themis.app.render.comparisons import comparison_json
from themis.app.render.evaluation import evaluation_json
from themis.app.render.inspect_views import progress_json, state_json
from themis.app.render.report_text import Columns, when
from themis.app.render.reports import document_json
from themis.app.usecases.comparing import compare_stored
from themis.app.usecases.reporting import ReportDocument, report_document
from themis.app.usecases.stored import load_compiled, load_state, resolve_run_id
from themis.app.wiring import (
    StoreLike,
    live_progress_at,
    log_browser,
    opened_store,
    viewer_notice,
)
from themis.core.breakdown import Breakdown
from themis.core.case_results import planned_once
from themis.core.comparison import Comparison, GroupScores, case_scores, plain_case_scores
from themis.core.errors import ConfigError, StoreLocked, ThemisError
from themis.core.evaluation_view import evaluation_execution
from themis.core.events import Event
from themis.core.inspection import run_progress
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.report import Report
from themis.core.report_sampling import is_sampled
from themis.core.snapshot import RunSnapshot, RunSummary
from themis.core.state import RunState, evolve, project
from themis.ports.store import StorePort

# Trials per page, and the most a request may ask for.
PAGE_SIZE = 50
MAX_PAGE = 500
# Latest finished trials a live run page shows.
LATEST = 10


# Comparisons already computed, by (runs, models, both runs' event counts): paging through the
# disagreements or reloading the page does not rerun the statistics while the log is unchanged.
Comparisons = dict[tuple[Any, ...], Comparison]


@attrs.define
class ViewerCache:
    """What one viewer process keeps between requests, so a page costs a query, not a fold
    (ADR 0033): each run's compiled spec (a run id names one spec for good), each report by the
    run's event count, each comparison by both runs' event counts, and `browser`, the log
    browser whose in-memory copy of each run's trial rows is recomputed when its log grows.
    Nothing is written to the store."""

    browser: Any
    listed: tuple[Any, list[RunSummary]] | None = None  # (store fingerprint, its runs)
    compiled: dict[str, tuple[RunSnapshot, CompiledRun]] = attrs.Factory(dict)
    documents: dict[tuple[str, int, Breakdown], ReportDocument] = attrs.Factory(dict)
    comparisons: Comparisons = attrs.Factory(dict)
    lock: threading.Lock = attrs.Factory(threading.Lock)
    # The run last folded (its state, the seq its next event gets, its last event folded) and
    # the run last planned: a page following a running run folds only what its log added.
    folded: dict[str, tuple[RunState, int, Event | None]] = attrs.Factory(dict)
    plans: dict[str, PlanRecord] = attrs.Factory(dict)

    @classmethod
    def of(cls, store: StoreLike) -> ViewerCache:
        return cls(browser=log_browser(store))

    def runs(self, store: StoreLike) -> list[RunSummary]:
        """The store's runs with their event counts, read again only when the store file has
        changed since (`StoreLocked` when a running process holds it)."""
        fingerprint = self.browser.fingerprint()
        if fingerprint is not None and self.listed is not None and self.listed[0] == fingerprint:
            return self.listed[1]
        with opened_store(store, read_only=True) as opened:
            summaries = opened.runs()
        self.browser.versions.update({summary.run_id: summary.event_count for summary in summaries})
        self.listed = (fingerprint, summaries)
        return summaries

    def resolve(self, store: StoreLike, run_id: str) -> tuple[str, int]:
        """The full id of the run `run_id` names (a unique prefix will do) and its event count."""
        summaries = self.runs(store)
        resolved = resolve_run_id(_Listing(summaries), run_id)
        return resolved, next(s.event_count for s in summaries if s.run_id == resolved)

    def load(self, store: StorePort, run_id: str) -> tuple[RunSnapshot, CompiledRun]:
        """`load_compiled`, once per run."""
        loaded = self.compiled.get(run_id)
        if loaded is None:
            loaded = self.compiled[run_id] = load_compiled(store, run_id)
        return loaded

    def document(self, store: StoreLike, run_id: str, by: Breakdown, events: int) -> ReportDocument:
        """`report_document` of the (full) run id, once per state of its log (`events`: its
        event count); the store is opened only when it is not kept."""
        key = (run_id, events, by)
        document = self.documents.get(key)
        if document is None:
            with opened_store(store, read_only=True) as opened:
                document = report_document(opened, run_id, by, reading=self)
            with self.lock:  # the older states of this run's log will not be asked for again
                stale = [old for old in self.documents if old[0] == run_id and old[1] != events]
                for old in stale:
                    del self.documents[old]
                self.documents[key] = document
        return document

    def fold(self, store: StorePort, run_id: str) -> tuple[RunState, int]:
        """`load_state`, continued from the run's state as last folded when its log only grew
        since (its last folded event still stands at its seq), else from its checkpoint."""
        kept = self.folded.get(run_id)
        records = [] if kept is None else store.read(run_id, after_seq=kept[1] - 2)
        if kept is not None and kept[1] > 1 and records and records[0] == (kept[1] - 1, kept[2]):
            state, next_seq, last = kept
            if len(records) > 1:
                state = evolve(state, (event for _, event in records[1:]))
                next_seq, last = records[-1][0] + 1, records[-1][1]
        else:
            state, next_seq = load_state(store, run_id)
            tail = store.read(run_id, after_seq=next_seq - 2) if next_seq > 1 else []
            last = tail[0][1] if tail else None
        with self.lock:
            self.folded = {run_id: (state, next_seq, last)}
        return state, next_seq

    def planned(self, compiled: CompiledRun) -> PlanRecord:
        """The keys of the run's plan, planned once (the run last planned is kept)."""
        record = self.plans.get(compiled.run_id)
        if record is None:
            record = planned_once(compiled)
            with self.lock:
                self.plans = {compiled.run_id: record}
        return record

    def prepared(self, run_id: str) -> bool:
        """Whether the run's report (default rows) and trial rows are kept for its log as last
        listed: its pages then answer without a fold or a copy."""
        events = self.browser.versions.get(run_id)
        return (run_id, events, Breakdown()) in self.documents and self.browser.holds(
            run_id, events
        )

    def scores(self, store: StorePort, run_id: str) -> GroupScores:
        """`themis compare`'s case values of a run: from the kept trial rows when the run has
        no sampled or judge rows (the same values: `tests/viewer/test_viewer_cache.py`), else
        from its folded state."""
        _, compiled = self.load(store, run_id)
        spec = compiled.spec
        if is_sampled(spec) or spec.judges:
            state, _ = load_state(store, run_id)
            return case_scores(compiled, state)
        metrics = [metric.name for metric in spec.metrics]
        return plain_case_scores(metrics, self.browser.trial_scores(run_id, metrics))


def warm(store: StoreLike, cache: ViewerCache) -> None:
    """Prepare every run of the store before anyone asks (its compiled spec, its report and
    its trial rows, and for a run of two models their comparison, in the order the run names
    them: what "compare its models" leads to), so that even the first page of each answers at
    once; a store held by a running process is left alone."""
    try:
        summaries = cache.runs(store)
    except StoreLocked:
        return
    prepared = []
    for summary in summaries:
        with suppress(ThemisError):  # a run this Themis cannot read: its pages will say why
            cache.document(store, summary.run_id, Breakdown(), summary.event_count)
            cache.browser.kept(summary.run_id, summary.event_count)
            prepared.append(summary.run_id)
    for run_id in prepared:
        models = tuple(model.name for model in cache.compiled[run_id][1].spec.models)
        if len(models) == 2:
            with suppress(ThemisError):
                compare_data(store, CompareQuery(a=run_id, models=models), cache)


@attrs.frozen
class _Listing:
    summaries: list[RunSummary]

    def runs(self) -> list[RunSummary]:
        return self.summaries


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
        for summary in cache.runs(store):
            document = cache.document(store, summary.run_id, Breakdown(), summary.event_count)
            report = document.report
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
    resolved = resolve(store, run_id)
    browser = (cache or ViewerCache.of(store)).browser
    rows = browser.latest(resolved, limit=max(1, min(limit, MAX_PAGE)))
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
        if resolved not in cache.compiled:
            with opened_store(store, read_only=True) as opened:
                cache.load(opened, resolved)
        _, compiled = cache.compiled[resolved]
    except StoreLocked:  # held by a running process: says so, as `inspect evaluation` does
        return evaluation_json(get_evaluation_execution(run_id, case_id, store))
    if compiled.spec.judges:
        return evaluation_json(get_evaluation_execution(resolved, case_id, store))
    events = cache.browser.case_events(resolved, case_id)
    state = project(event for _, event in events)
    return evaluation_json(evaluation_execution(compiled, state, case_id))


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
        with opened_store(store, read_only=True) as opened:
            comparison = compare_stored(
                opened, (run_a, query.b and run_b), models=query.models, scores=cache.scores
            )
        cache.comparisons[key] = comparison
    metrics = cache.document(store, run_a, Breakdown(), events_a).metrics
    metric = query.metric or (metrics[0] if metrics else "")
    if metric not in metrics:
        raise ConfigError(f"metric: run {run_a[:12]} has no metric {metric!r}")
    sides: Sequence[tuple[str, str | None]] = (
        [(run_a, query.models[0]), (run_b, query.models[1])]
        if query.models
        else [(run_a, None), (run_b, None)]
    )
    limit = max(1, min(query.limit, MAX_PAGE))
    page = cache.browser.disagreements(sides, metric, offset=max(0, query.offset), limit=limit)
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
