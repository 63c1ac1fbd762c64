"""Pure views of a run for inspection: its snapshot and its execution state (one case's trials:
`themis.core.evaluation_view`).

Each view is a function of the compiled run and the state the log folds to (plus, for the
snapshot, what the store keeps beside the log); none reads a store, a file or a clock. The app
layer fetches the inputs, or, while another process holds the store, rebuilds the same views
from that process's published progress and marks them `live`.

Stage counts: every planned trial passes through every executed stage. At a stage a trial is
`done` (its result is recorded), `failed` (it failed at this stage or upstream of it, so the
stage has nothing to show for it) or `pending`. A generation failure is therefore `failed` at
every stage; an answer that did not parse is `failed` at `parse` but still scored (as 0), so
the `score` counts equal the report's scored / failed / pending.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.controls import Spend, spend_summary
from themis.core.event_columns import EventColumns, reader
from themis.core.events import GenerationCompleted, JudgeFailed, RunPaused, RunResumed
from themis.core.generation import is_truncated
from themis.core.planner import CompiledRun, PlanRecord, trial_refs
from themis.core.provider_state import ProviderHold
from themis.core.report import ServedModel, run_status, served_models
from themis.core.runtime import Price
from themis.core.snapshot import RunSnapshot
from themis.core.stages import EXECUTED_STAGES, Stage
from themis.core.state import RunState

PARSE_ERROR = "parse_error"  # the failure kind of an answer that did not parse
_SUMMARY_LENGTH = 120


def _dict(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@frozen
class StageCounts:
    """One stage's trials: `planned == done + failed + pending`."""

    stage: Stage
    planned: int
    done: int
    failed: int
    pending: int


@frozen
class Tally:
    """Per-trial facts counted over the plan, from which every stage's counts follow."""

    planned: int
    generated: int = 0
    generation_failed: int = 0
    parsed: int = 0
    unparsed: int = 0
    scored: int = 0
    truncated: int = 0  # generations cut at `max_tokens`, parsed and scored as they are

    def stages(self) -> tuple[StageCounts, ...]:
        done_failed = {
            Stage.GENERATE: (self.generated, self.generation_failed),
            Stage.PARSE: (self.parsed, self.generation_failed + self.unparsed),
            Stage.SCORE: (self.scored, self.generation_failed),
        }
        return tuple(
            StageCounts(
                stage=stage,
                planned=self.planned,
                done=done,
                failed=failed,
                pending=max(0, self.planned - done - failed),
            )
            for stage, (done, failed) in done_failed.items()
        )


@frozen
class FailureReason:
    """How many trials failed at `stage` for one reason (`kind` plus a one-line message)."""

    stage: Stage
    kind: str
    message: str
    count: int


@frozen
class RuntimeChange:
    """One runtime setting changed when the run resumed at `at`."""

    at: float
    field: str
    old: Any
    new: Any


@frozen
class LiveSource:
    """A view rebuilt from the progress a running process publishes, not read from the store."""

    pid: int
    updated_at: float


@frozen
class ExecutionState:
    """Where a run stands: per-stage counts, why trials failed, and runtime changes so far.

    Runtime controls: `spend` at the configured prices (`None`: no price), `pause` while the
    run is paused (e.g. by its budget), `preflight_warnings` (requests near their model's
    context window), `recovered` (generations that succeeded after retried failures) and
    `holds` (what holds calls back: Retry-After pauses, open breakers, rate limits);
    `truncated`: trials whose generation was cut at `max_tokens`.
    """

    run_id: str
    name: str
    status: str
    completed_through_stage: Stage | None
    planned: int
    stages: tuple[StageCounts, ...]
    failures: tuple[FailureReason, ...] = ()
    lineage: tuple[RuntimeChange, ...] = ()
    live: LiveSource | None = None
    served: tuple[ServedModel, ...] = ()
    spend: Spend | None = None
    pause: RunPaused | None = None
    preflight_warnings: int = 0
    recovered: int = 0
    holds: tuple[ProviderHold, ...] = ()
    truncated: int = 0

    def counts(self, stage: Stage) -> StageCounts:
        for counts in self.stages:
            if counts.stage is stage:
                return counts
        raise KeyError(stage)


@frozen
class RunProgress:
    """One line about a run: its status and its counts at `stage` (what `quickcheck` lists)."""

    run_id: str
    name: str
    status: str
    completed_through_stage: Stage | None
    stage: Stage
    planned: int
    done: int
    failed: int
    pending: int
    live: LiveSource | None = None


@frozen
class RunStatus:
    """A run's status and the stage it is complete through (what `themis runs` lists beside
    its catalog line); `live` while read from a running process's published progress."""

    run_id: str
    status: str
    completed_through_stage: Stage | None
    live: LiveSource | None = None

    @classmethod
    def of(cls, progress: RunProgress) -> RunStatus:
        return cls(
            progress.run_id, progress.status, progress.completed_through_stage, progress.live
        )


@frozen
class DatasetSummary:
    name: str
    cases: int


@frozen
class ModelSummary:
    name: str
    provider: str
    model: str


@frozen
class IdentitySummary:
    """The run's shape at a glance: names and sizes, not contents."""

    datasets: tuple[DatasetSummary, ...]
    models: tuple[ModelSummary, ...]
    prompts: tuple[str, ...]
    samples: int
    parser: str
    metrics: tuple[str, ...]
    trials: int


@frozen
class RunSnapshotView:
    """What the run is: identity (full document from the store; `None` when live), runtime
    settings in effect (the snapshot's, updated by every resume), provenance and lineage."""

    run_id: str
    name: str
    created_at: float
    summary: IdentitySummary
    identity: Mapping[str, Any] | None
    runtime: Mapping[str, Any] = field(converter=_dict)
    provenance: Mapping[str, str] = field(factory=dict, converter=_dict)
    lineage: tuple[RuntimeChange, ...] = ()
    live: LiveSource | None = None
    served: tuple[ServedModel, ...] = ()


def lineage(state: RunState) -> tuple[RuntimeChange, ...]:
    """Every runtime change the log records, oldest first, one entry per field."""
    return changes_of(state.resumes)


def changes_of(resumes: Iterable[RunResumed]) -> tuple[RuntimeChange, ...]:
    """The runtime changes `resumes` record, in their order, one entry per field."""
    return tuple(
        RuntimeChange(at=resumed.at, field=name, old=change.get("old"), new=change.get("new"))
        for resumed in resumes
        for name, change in sorted(resumed.changes.items())
    )


def summarise(message: str) -> str:
    """A failure message as one short line, so that equal causes group together."""
    line = " ".join((message.strip().splitlines() or [""])[0].split())
    if len(line) <= _SUMMARY_LENGTH:
        return line
    return line[: _SUMMARY_LENGTH - 1] + "…"


def tally(
    compiled: CompiledRun, state: RunState, record: PlanRecord | None = None
) -> tuple[Tally, tuple[FailureReason, ...]]:
    """Count `state`'s facts over the run's plan, and group failures by stage and reason.

    `record`: the plan's keys if the caller has read the whole plan (see `trial_refs`).
    """
    trials = ((trial.trial_id, trial.trial_key) for trial in trial_refs(compiled, record))
    return tally_trials(trials, state)


def tally_trials(
    trials: Iterable[tuple[str, str]], state: RunState
) -> tuple[Tally, tuple[FailureReason, ...]]:
    """`tally` over the `(trial_id, trial_key)` of every trial of the run, in any order (the
    counts and the reasons' order do not depend on it): the plan's, or the places a store
    kept of it (ADR 0092)."""
    planned = generated = generation_failed = parsed = unparsed = scored = truncated = 0
    reasons: Counter[tuple[Stage, str, str]] = Counter()
    # Each trial's fields read from the fold's columns, no event object built (ADR 0084).
    finish_of = reader(state.generations, "finish_reason")
    parse_of = reader(state.parses, "answer", "error")
    failed_of, scores = state.generation_failures, state.scores
    for trial_id, trial_key in trials:
        planned += 1
        generation = finish_of(trial_key)
        if generation is None:
            failure = failed_of.get(trial_key)  # kept only while no attempt succeeded
            if failure is not None:
                generation_failed += 1
                reasons[Stage.GENERATE, failure.error_kind, summarise(failure.message)] += 1
                continue
        else:
            generated += 1
            truncated += is_truncated(generation[0])
        parse = parse_of(trial_id)
        if parse is not None and parse[0] is None:
            unparsed += 1
            reasons[Stage.PARSE, PARSE_ERROR, summarise(parse[1] or "no answer")] += 1
        elif parse is not None:
            parsed += 1
        scored += trial_id in scores
    failures = tuple(
        FailureReason(stage=stage, kind=kind, message=message, count=count)
        for (stage, kind, message), count in sorted(
            reasons.items(), key=lambda item: (item[0][0].order, -item[1], item[0][1:])
        )
    )
    counted = Tally(planned, generated, generation_failed, parsed, unparsed, scored, truncated)
    return counted, failures


def execution_state(
    compiled: CompiledRun,
    state: RunState,
    *,
    prices: Mapping[str, Price] | None = None,
    max_cost_per_run: float | None = None,
) -> ExecutionState:
    """The run's per-stage counts, failure reasons, status, runtime lineage and controls
    (its spend at `prices`, when given)."""
    counted, failures = tally(compiled, state)
    spend = spend_summary(compiled, state, prices, max_cost_per_run) if prices else None
    stages = counted.stages()
    if compiled.spec.judges:
        judged, judge_failures = judge_stage(compiled, state)
        stages, failures = (*stages, judged), (*failures, *judge_failures)
    view = placed_execution_state(compiled.run_id, compiled.spec.name, state, counted, failures)
    return attrs.evolve(view, stages=stages, spend=spend)


def placed_execution_state(
    run_id: str,
    name: str,
    state: RunState,
    counted: Tally,
    failures: tuple[FailureReason, ...],
) -> ExecutionState:
    """`execution_state` of a run without judges or prices, from its trials' tally (e.g. over
    the places a store kept of its plan: `tally_trials`), without the compiled run."""
    return ExecutionState(
        run_id=run_id,
        name=name,
        status=run_status(state),
        completed_through_stage=state.completed_through_stage,
        planned=counted.planned,
        stages=counted.stages(),
        failures=failures,
        lineage=lineage(state),
        pause=state.pause if state.paused else None,
        preflight_warnings=len(state.preflight_warnings),
        recovered=recovered(state.generations),
        truncated=counted.truncated,
    )


def recovered(generations: Mapping[str, GenerationCompleted]) -> int:
    """How many generations succeeded after retried failures: read from the fold's `retries`
    column, no event built (an event per generation was ~0.45 s at 100k trials, ADR 0092)."""
    if isinstance(generations, EventColumns):
        return sum(1 for retries in generations.column("retries") if retries)
    return sum(1 for generation in generations.values() if generation.retries)


def judge_stage(
    compiled: CompiledRun, state: RunState
) -> tuple[StageCounts, tuple[FailureReason, ...]]:
    """The judge stage's counts, in candidates (`report_judges.judge_progress`), and its
    failed verdicts grouped by kind and reason."""
    from themis.core.report_judges import judge_progress  # only runs with judges need it

    planned, done, failed = judge_progress(compiled, state)
    pending = max(0, planned - done - failed)
    reasons: Counter[tuple[str, str]] = Counter(
        (judgement.error_kind, summarise(judgement.message))
        for judgement in state.judgements.values()
        if isinstance(judgement, JudgeFailed)
    )
    failures = tuple(
        FailureReason(Stage.JUDGE, kind, message, count)
        for (kind, message), count in sorted(reasons.items(), key=lambda item: -item[1])
    )
    return StageCounts(Stage.JUDGE, planned, done, failed, pending), failures


def run_progress(view: ExecutionState, stage: Stage | None = None) -> RunProgress:
    """`view` as one line, counted at `stage` (default: the completed stage, else the last)."""
    at = stage or view.completed_through_stage or EXECUTED_STAGES[-1]
    counts = view.counts(at)
    return RunProgress(
        run_id=view.run_id,
        name=view.name,
        status=view.status,
        completed_through_stage=view.completed_through_stage,
        stage=at,
        planned=counts.planned,
        done=counts.done,
        failed=counts.failed,
        pending=counts.pending,
        live=view.live,
    )


def identity_summary(compiled: CompiledRun) -> IdentitySummary:
    spec = compiled.spec
    return IdentitySummary(
        datasets=tuple(DatasetSummary(d.name, len(d.cases)) for d in spec.datasets),
        models=tuple(ModelSummary(m.name, m.provider, m.model) for m in spec.models),
        prompts=tuple(prompt.name for prompt in spec.prompts),
        samples=spec.samples,
        parser=spec.parser.name,
        metrics=tuple(metric.name for metric in spec.metrics),
        trials=compiled.trial_count,
    )


def effective_runtime(snapshot: RunSnapshot, state: RunState) -> dict[str, Any]:
    """The snapshot's runtime settings as plain data, with every resume's changes applied."""
    document = attrs.asdict(snapshot.runtime, recurse=True)
    for change in lineage(state):
        document[change.field] = change.new
    return document


def snapshot_view(
    snapshot: RunSnapshot,
    compiled: CompiledRun,
    state: RunState,
    record: PlanRecord | None = None,
    *,
    identity: bool = True,
    served: tuple[ServedModel, ...] | None = None,
) -> RunSnapshotView:
    """The stored run as a researcher asks about it: what it is, how it runs, where from
    (`identity=False`: without the identity document, which views every case). `served`: the
    report's of `state`, when the caller holds it (else counted over the plan again)."""
    return RunSnapshotView(
        run_id=compiled.run_id,
        name=compiled.spec.name,
        created_at=snapshot.created_at,
        summary=identity_summary(compiled),
        identity=compiled.identity if identity else None,
        runtime=effective_runtime(snapshot, state),
        provenance=snapshot.provenance,
        lineage=lineage(state),
        served=served_models(compiled, state, record) if served is None else served,
    )
