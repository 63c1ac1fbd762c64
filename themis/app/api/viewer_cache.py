"""What one viewer process keeps between requests (ADR 0033, 0044): each run's compiled spec,
its reports by the state of its log, the comparisons computed, the state and plan of the run a
page follows while it executes, and the log browser's copies of each run's trial rows. Nothing
is written to the store.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import attrs

from themis.app.execution.running import RunningExecution, running_execution
from themis.app.usecases.checkpoints import fresh_checkpoint_report
from themis.app.usecases.reporting import ReportDocument, checkpoint_document, report_document
from themis.app.usecases.stored import load_compiled, load_state, resolve_run_id
from themis.app.wiring import StoreLike, log_browser
from themis.core.breakdown import Breakdown, field_names
from themis.core.case_results import planned_once
from themis.core.case_table import CaseTable
from themis.core.case_values import CaseMeans
from themis.core.comparison import Comparison, GroupScores, case_scores, plain_case_scores
from themis.core.errors import RunNotFound
from themis.core.events import Event
from themis.core.planner import CompiledRun, PlanRecord, trial_refs
from themis.core.report import Report, build_report
from themis.core.report_columns import PlanIndex, columnar_report
from themis.core.report_running import RunningReport
from themis.core.report_sampling import is_sampled
from themis.core.snapshot import RunSnapshot, RunSummary
from themis.core.spec import ExperimentSpec
from themis.core.state import Projection, RunState
from themis.ports.store import StorePort

__all__ = ["Comparisons", "Listing", "ViewerCache"]

# Comparisons already computed, by (runs, models, both runs' event counts): paging through the
# disagreements or reloading the page does not rerun the statistics while the log is unchanged.
Comparisons = dict[tuple[Any, ...], Comparison]
# How many groupings of the followed run's report are kept current.
_GROUPINGS = 3


@attrs.define
class ViewerCache:
    """What one viewer process keeps between requests, so a page costs a query, not a fold
    (ADR 0033): each run's compiled spec (a run id names one spec for good), each report by the
    run's event count, each run's case values (what a comparison pairs) and each comparison by
    the runs' event counts, and `browser`, the log browser whose in-memory copy of each run's
    trial rows is recomputed when its log grows. Nothing is written to the store."""

    browser: Any
    listed: tuple[Any, list[RunSummary]] | None = None  # (store fingerprint, its runs)
    compiled: dict[str, tuple[RunSnapshot, CompiledRun]] = attrs.Factory(dict)
    # Each run's outline (its snapshot without cases, its cases' field names): what the first
    # pages need of a run, read without compiling it (ADR 0051).
    outlines: dict[str, tuple[RunSnapshot, tuple[str, ...]]] = attrs.Factory(dict)
    # Each run's report as its checkpoint caches it, by the run's event count (the runs list).
    reports: dict[tuple[str, int], Report] = attrs.Factory(dict)
    documents: dict[tuple[str, int, Breakdown], ReportDocument] = attrs.Factory(dict)
    comparisons: Comparisons = attrs.Factory(dict)
    case_values: dict[tuple[str, int], GroupScores] = attrs.Factory(dict)
    # Whether case values come from copies of the runs' trial rows (kept for the pages that
    # follow) or, for a one-off reader such as `themis compare`, are summed in the store.
    copy_rows: bool = True
    lock: threading.Lock = attrs.Factory(threading.Lock)
    # The run last folded (its state, the seq its next event gets, its last event folded) and
    # the run last planned: a page following a running run folds only what its log added.
    folded: dict[str, tuple[Projection, int, Event | None]] = attrs.Factory(dict)
    plans: dict[str, PlanRecord] = attrs.Factory(dict)
    # The followed run's reports by grouping, kept current from what `fold` adds (ADR 0052).
    running: dict[tuple[str, Breakdown], RunningReport] = attrs.Factory(dict)
    # Where each trial of a run executing in this process stands in its plan (ADR 0068).
    indexes: dict[str, PlanIndex] = attrs.Factory(dict)
    # Each run's `report_document` one at a time: a fold and the report of its state go
    # together.
    reporting: dict[str, threading.Lock] = attrs.Factory(dict)
    # The store this process writes (the live viewer's): a run it executes now is compiled
    # and folded by its execution already, and followed from there (ADR 0057).
    written: StorePort | None = None

    @classmethod
    def of(cls, store: StoreLike, written: StorePort | None = None) -> ViewerCache:
        return cls(browser=log_browser(store), written=written)

    def _execution(self, run_id: str) -> RunningExecution | None:
        """The execution of the run running in this process on the store it writes, if any."""
        return None if self.written is None else running_execution(self.written, run_id)

    def hand_over(self, other: ViewerCache) -> None:
        """Give `other` (the viewer of this store's file, once a live viewer releases it) what
        this one keeps of each run: compiled specs, plans, reports, case values, comparisons
        and (brought up to date) copies of trial rows, so it need not prepare them again."""
        self.browser.hand_over(other.browser)
        with self.lock:
            other.compiled.update(self.compiled)
            other.plans.update(self.plans)
            other.documents.update(self.documents)
            other.case_values.update(self.case_values)
            other.comparisons.update(self.comparisons)

    def runs(self, store: StoreLike) -> list[RunSummary]:
        """The store's runs with their event counts, read again only when the store file has
        changed since (`StoreLocked` when a running process holds it)."""
        fingerprint = self.browser.fingerprint()
        if fingerprint is not None and self.listed is not None and self.listed[0] == fingerprint:
            return self.listed[1]
        with self.browser.opened() as opened:
            summaries: list[RunSummary] = opened.runs()
        self.browser.versions.update({summary.run_id: summary.event_count for summary in summaries})
        self.listed = (fingerprint, summaries)
        return summaries

    def resolve(self, store: StoreLike, run_id: str) -> tuple[str, int]:
        """The full id of the run `run_id` names (a unique prefix will do) and its event count."""
        summaries = self.runs(store)
        resolved = resolve_run_id(Listing(summaries), run_id)
        return resolved, next(s.event_count for s in summaries if s.run_id == resolved)

    def listed_reports(self, store: StoreLike, summaries: Sequence[RunSummary]) -> list[Report]:
        """The report of each listed run (default rows), for the runs list: the one kept, else
        its checkpoint's when that is the log's end (all read in one open of the store, the
        run never compiled), else its `document`'s."""
        missing = [
            summary
            for summary in summaries
            if (summary.run_id, summary.event_count) not in self.reports
            and (summary.run_id, summary.event_count, Breakdown()) not in self.documents
        ]
        if missing:
            with self.browser.opened() as opened:
                for summary in missing:
                    cached = fresh_checkpoint_report(opened, summary.run_id, summary.name)
                    if cached is not None:
                        self.reports[(summary.run_id, summary.event_count)] = cached[1]
        return [
            self.reports.get((summary.run_id, summary.event_count))
            or self.document(store, summary.run_id, Breakdown(), summary.event_count).report
            for summary in summaries
        ]

    def load(self, store: StorePort, run_id: str) -> tuple[RunSnapshot, CompiledRun]:
        """`load_compiled`, once per run."""
        loaded = self.compiled.get(run_id)
        if loaded is None:
            execution = self._execution(run_id)
            loaded = (
                load_compiled(store, run_id)
                if execution is None
                else (execution.snapshot, execution.compiled)
            )
            self.compiled[run_id] = loaded
        return loaded

    def outline(self, store: StoreLike, run_id: str) -> tuple[RunSnapshot, tuple[str, ...]]:
        """The run's snapshot (its datasets' cases left out unless the run was compiled here)
        and its cases' field names, once per run; `RunNotFound` for a run without a snapshot."""
        kept = self.outlines.get(run_id)
        if kept is None:
            loaded = self.compiled.get(run_id)
            found = (loaded[0], field_names(loaded[1].spec)) if loaded else None
            kept = found or self.browser.outline(run_id)
            if kept is None:
                raise RunNotFound(f"no run {run_id!r} in the store (see `themis runs`)")
            self.outlines[run_id] = kept
        return kept

    def spec(self, store: StoreLike, run_id: str) -> ExperimentSpec:
        """The run's spec as its outline has it (without cases): its names and settings."""
        return self.outline(store, run_id)[0].spec

    def document(self, store: StoreLike, run_id: str, by: Breakdown, events: int) -> ReportDocument:
        """`report_document` of the (full) run id, once per state of its log (`events`: its
        event count); the store is opened only when it is not kept. The default rows of a run
        whose checkpoint is the log's end come from that checkpoint and the run's outline,
        without compiling the run (ADR 0051)."""
        key = (run_id, events, by)
        document = self.documents.get(key)
        if document is None:
            outline = self.outline(store, run_id) if by.is_default else None
            with self.lock:
                reporting = self.reporting.setdefault(run_id, threading.Lock())
            with reporting, self.browser.opened() as opened:
                if outline is not None:
                    document = checkpoint_document(opened, *outline)
                if document is None:
                    document = report_document(opened, run_id, by, reading=self)
            with self.lock:  # the older states of this run's log will not be asked for again
                stale = [old for old in self.documents if old[0] == run_id and old[1] != events]
                for old in stale:
                    del self.documents[old]
                self.documents[key] = document
        return document

    def fold(self, store: StorePort, run_id: str) -> tuple[RunState, int]:
        """`load_state`, continued (the core fold's `Projection`) from the run's state as last
        folded when its log only grew since (its last folded event still stands at its seq),
        else from the fold of its execution when this process runs it (ADR 0057), else from
        its checkpoint; the run's running reports are told what the events added are about."""
        with self.lock:
            kept = self.folded.get(run_id)
        records = [] if kept is None else store.read(run_id, after_seq=kept[1] - 2)
        if kept is not None and kept[1] > 1 and records and records[0] == (kept[1] - 1, kept[2]):
            projection, next_seq, last = kept
            if len(records) > 1:
                added = [event for _, event in records[1:]]
                projection.apply(added)
                for (run, _), running in list(self.running.items()):
                    if run == run_id:
                        running.touch(added)
                next_seq, last = records[-1][0] + 1, records[-1][1]
        else:
            execution = self._execution(run_id)
            folded = None if execution is None else execution.writer.folded()
            if folded is not None:
                state, next_seq, last = folded
            else:
                state, next_seq = load_state(store, run_id)
                tail = store.read(run_id, after_seq=next_seq - 2) if next_seq > 1 else []
                last = tail[0][1] if tail else None
            projection = Projection(state)
            self.running = {}
        with self.lock:
            self.folded = {run_id: (projection, next_seq, last)}
        return projection.state(), next_seq

    def report(
        self, compiled: CompiledRun, state: RunState, record: PlanRecord | None, by: Breakdown
    ) -> Report:
        """`build_report` of the state `fold` gave last: for a run executing in this process,
        summed over columns of its trials' facts (`columnar_report`, ADR 0068) where that
        applies; else kept current from the events it folded (`RunningReport`) for the run a
        page follows; another run, or a report that cannot be kept so, is built whole."""
        if record is not None and self._execution(compiled.run_id) is not None:
            with self.lock:  # the run last reported on is kept
                index = self.indexes.get(compiled.run_id) or PlanIndex()
                self.indexes = {compiled.run_id: index}
                index.extend(record)
            found = columnar_report(compiled, state, index, by)
            if found is not None:
                return found
        key = (compiled.run_id, by)
        followed = compiled.run_id in self.folded
        running = self.running.get(key) if followed else None
        if running is None and followed:
            running = RunningReport.of(compiled, record, by)
            if running is not None:
                # A few groupings of the followed run: the oldest goes first.
                kept = [item for item in self.running.items() if item[0][0] == compiled.run_id]
                self.running = {**dict(kept[-(_GROUPINGS - 1) :]), key: running}
        if running is None:
            return build_report(compiled, state, record, by)
        return running.report(state)

    def planned(self, compiled: CompiledRun) -> PlanRecord:
        """The keys of the run's plan, planned once (the run last planned is kept), or read
        from its execution in this process once that has read the whole plan (ADR 0057)."""
        record = self.plans.get(compiled.run_id)
        if record is None:
            execution = self._execution(compiled.run_id)
            record = (None if execution is None else execution.planned()) or planned_once(compiled)
            with self.lock:
                self.plans = {compiled.run_id: record}
            loaded = self.compiled.get(compiled.run_id)
            if loaded is not None:  # its trials' places, if the store keeps none yet
                self.browser.give_places(loaded[0], trial_refs(compiled, record))
        return record

    def prepare_running(self, execution: RunningExecution) -> None:
        """What the pages of a run executing in this process need that stays as it runs,
        prepared before anyone asks (ADR 0068): its compiled run and outline, the keys of its
        whole plan (planned here while a fresh execution reads its own plan as it goes), where
        each trial stands in it (position, row group, case, model), and its trials' places. A
        page of the run meanwhile waits for it (the run's reporting lock) rather than planning
        the run a second time."""
        run_id = execution.compiled.run_id
        with self.lock:
            reporting = self.reporting.setdefault(run_id, threading.Lock())
        with reporting:
            self.load(execution.store, run_id)
            self.outline(execution.store, run_id)
            record = self.planned(execution.compiled)
            index = PlanIndex()
            index.extend(record)
            index.layout(execution.compiled)
            with self.lock:
                self.indexes = {run_id: index}
        self.browser.place(run_id)

    def prepared(self, run_id: str) -> bool:
        """Whether the run's report (default rows) and trial rows are kept for its log as last
        listed: its pages then answer without a fold or a copy."""
        events = self.browser.versions.get(run_id)
        return (run_id, events, Breakdown()) in self.documents and self.browser.holds(
            run_id, events
        )

    def scores(self, store: StoreLike, run_id: str, events: int) -> GroupScores:
        """`themis compare`'s case values of a run (its full id), once per state of its log
        (`events`). When the run has no sampled or judge rows: each case's mean summed by
        DuckDB from the kept trial rows (ADR 0043), or, where such a sum might not be the
        exact mean, the kept rows' scores (the same values either way:
        `tests/viewer/test_viewer_cache.py`); else from its folded state. A run whose end kept
        its case table (ADR 0072) answers from that, its log unread. The store is opened only
        for what is not kept."""
        key = (run_id, events)
        kept = self.case_values.get(key)
        if kept is not None:
            return kept
        stored = self.browser.stored_cases(run_id)
        found = stored.scores() if stored is not None else self._scores(store, run_id)
        with self.lock:  # older states of this run's log will not be asked for again
            for old in [old for old in self.case_values if old[0] == run_id]:
                del self.case_values[old]
            self.case_values[key] = found
        return found

    def _scores(self, store: StoreLike, run_id: str) -> GroupScores:
        """`scores` of a run whose end kept no case table: from its log or its fold."""
        spec = self.spec(store, run_id)
        if is_sampled(spec) or spec.judges:
            return case_scores(*self._folded(store, run_id))
        metrics = [metric.name for metric in spec.metrics]
        sums = self.browser.case_sums(run_id, metrics, copy=self.copy_rows)
        summed = _summed_means(sums, metrics)
        if summed is None and self.copy_rows:
            summed = plain_case_scores(metrics, self.browser.trial_scores(run_id, metrics))
        if summed is None:  # from the fold, as `themis compare` always read them
            summed = case_scores(*self._folded(store, run_id))
        return summed

    def metrics(self, store: StoreLike, run_id: str) -> tuple[str, ...]:
        """The run's metrics: those of the case table its end kept, else its outline's."""
        stored: CaseTable | None = self.browser.stored_cases(run_id)
        if stored is not None:
            return stored.metrics
        return tuple(metric.name for metric in self.spec(store, run_id).metrics)

    def _folded(self, store: StoreLike, run_id: str) -> tuple[CompiledRun, RunState]:
        """The run compiled (once) and its state folded from the store."""
        with self.browser.opened() as opened:
            compiled = self.load(opened, run_id)[1]
            state, _ = load_state(opened, run_id)
        return compiled, state


def _summed_means(
    groups: list[tuple[tuple[str, str, str], dict[str, Any]]] | None, metrics: Sequence[str]
) -> GroupScores | None:
    """`CaseMeans` of every group and metric from `LogBrowser.case_sums`, or `None` when any
    is not exact (or the browser keeps no rows)."""
    if groups is None:
        return None
    result: dict[tuple[str, str, str], dict[str, CaseMeans]] = {}
    for place, columns in groups:
        for index, metric in enumerate(metrics):
            means = CaseMeans.from_sums(
                columns["case_id"], columns["n"], columns[f"s{index}"], columns[f"w{index}"]
            )
            if means is None:
                return None
            result.setdefault(place, {})[metric] = means
    return result


@attrs.frozen
class Listing:
    """A list of runs as a store lists them (what resolving a run id needs)."""

    summaries: list[RunSummary]

    def runs(self) -> list[RunSummary]:
        return self.summaries
