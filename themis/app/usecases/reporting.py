"""What a rendered report is made of: the report, where the run came from, and (for HTML) every
trial's result, all read from the store's log alone."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Protocol

from attrs import field, frozen

from themis.app.usecases.checkpoints import fresh_checkpoint_report, fresh_report
from themis.app.usecases.stored import (
    load_compiled,
    load_state,
    resolve_run_id,
    vouched_outline,
)
from themis.core.breakdown import Breakdown, check_breakdown, field_names
from themis.core.case_results import CaseResult, case_results, planned_once
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.report import Report, build_report
from themis.core.snapshot import RunSnapshot
from themis.core.state import RunState
from themis.ports.store import StorePort
from themis.versions import installed_version

# The per-case table of an HTML report holds at most this many trials (a page stays openable).
MAX_CASE_ROWS = 20_000


def _strings(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


def _cases(value: tuple[CaseResult, ...]) -> tuple[CaseResult, ...]:
    return tuple(value)


@frozen
class ReportDocument:
    """A report with its provenance: `provenance` is what the run recorded when it started
    (Themis version, config path and sha256, git commit, platform); `themis_version` is the
    version rendering it now. `cases` (HTML only) holds the first `MAX_CASE_ROWS` trials of
    `case_count`. `fields`: the case fields its rows could also be grouped by."""

    report: Report
    metrics: tuple[str, ...]
    created_at: float
    provenance: Mapping[str, str] = field(factory=dict, converter=_strings)
    themis_version: str = ""
    cases: tuple[CaseResult, ...] = field(default=(), converter=_cases)
    case_count: int = 0
    fields: tuple[str, ...] = ()


class RunReading(Protocol):
    """How `report_document` reads a run: its snapshot and compiled spec, its state (and the
    seq its next event gets), its plan's keys (`None`: the report plans the run again), and
    the report of that state (a viewer keeps the report of a run it follows current)."""

    def load(self, store: StorePort, run_id: str) -> tuple[RunSnapshot, CompiledRun]: ...

    def fold(self, store: StorePort, run_id: str) -> tuple[RunState, int]: ...

    def planned(self, compiled: CompiledRun) -> PlanRecord | None: ...

    def report(
        self, compiled: CompiledRun, state: RunState, record: PlanRecord | None, by: Breakdown
    ) -> Report: ...


class _ReadAgain:
    """Everything read from the store at each call."""

    def load(self, store: StorePort, run_id: str) -> tuple[RunSnapshot, CompiledRun]:
        return load_compiled(store, run_id)

    def fold(self, store: StorePort, run_id: str) -> tuple[RunState, int]:
        return load_state(store, run_id)

    def planned(self, compiled: CompiledRun) -> PlanRecord | None:
        return None

    def report(
        self, compiled: CompiledRun, state: RunState, record: PlanRecord | None, by: Breakdown
    ) -> Report:
        return build_report(compiled, state, record, by)


_READ_AGAIN = _ReadAgain()


def themis_version() -> str:
    """Themis's installed version (`unknown` in a source tree without an install)."""
    return installed_version("themis") or "unknown"


def report_document(
    store: StorePort,
    run_id_or_prefix: str,
    by: Breakdown | None = None,
    *,
    cases: bool = False,
    reading: RunReading | None = None,
) -> ReportDocument:
    """The report of a stored run grouped `by` (checked against the run's case fields), with
    its provenance, and with `cases` every trial's result (up to `MAX_CASE_ROWS`). `reading`
    reads the run (default: from the store each time; a viewer passes one that keeps what it
    read between requests). By default, the default rows of a run whose facts vouch for its
    identity (`vouched_outline`) come from its checkpoint, if it is the log's end, without
    reading a case (ADR 0077)."""
    by = by or Breakdown()
    run_id = resolve_run_id(store, run_id_or_prefix)
    if reading is None and by.is_default and not cases:  # maybe from the checkpoint alone
        vouched = vouched_outline(store, run_id)
        if vouched is not None:
            document = checkpoint_document(store, vouched.snapshot, vouched.fields)
            if document is not None:
                return document
    reading = reading or _READ_AGAIN
    snapshot, compiled = reading.load(store, run_id)
    check_breakdown(compiled.spec, by)
    cached = fresh_report(store, compiled) if by.is_default and not cases else None
    rows: tuple[CaseResult, ...] = ()
    count = 0
    if cached is not None:  # the checkpoint's report: the log need not be folded
        report = cached[1]
    else:
        state, _ = reading.fold(store, run_id)
        record = planned_once(compiled) if cases else reading.planned(compiled)
        report = reading.report(compiled, state, record, by)
        if cases:
            every = case_results(compiled, state, record)
            rows = tuple(islice(every, MAX_CASE_ROWS))
            count = len(rows) + sum(1 for _ in every)
    return _document(report, snapshot, rows, count, field_names(compiled.spec))


def checkpoint_document(
    store: StorePort, outline: RunSnapshot, fields: tuple[str, ...]
) -> ReportDocument | None:
    """`report_document` of the run (default rows, no cases) from its checkpoint's cached
    report, read without compiling the run: `outline` is its snapshot (its datasets' cases may
    be left out) and `fields` its cases' field names. `None` unless the checkpoint is the
    log's end, where `report_document` would fold the log."""
    cached = fresh_checkpoint_report(store, outline.run_id, outline.spec.name)
    return None if cached is None else _document(cached[1], outline, (), 0, fields)


def _document(
    report: Report,
    snapshot: RunSnapshot,
    rows: tuple[CaseResult, ...],
    count: int,
    fields: tuple[str, ...],
) -> ReportDocument:
    return ReportDocument(
        report=report,
        metrics=tuple(metric.name for metric in snapshot.spec.metrics),
        created_at=snapshot.created_at,
        provenance=snapshot.provenance,
        themis_version=themis_version(),
        cases=rows,
        case_count=count,
        fields=fields,
    )
