"""`RunningReport` gives `build_report`'s report of the same state after every batch of a
growing log, whatever the batches, the grouping and the events (retries, failures superseded
by a later execution, cut and reused answers, served model drift, unparsed answers, a stage
reset)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import cases, small_spec, trial_events
from themis.core.breakdown import Breakdown
from themis.core.events import (
    RunCompleted,
    RunStarted,
    StageReset,
)
from themis.core.planner import CompiledRun, PlanRecord, compile_run, plan
from themis.core.report import build_report
from themis.core.report_running import RunningReport
from themis.core.spec import DatasetSpec, MetricSpec, ParserSpec
from themis.core.stages import Stage
from themis.core.state import Projection

COMPILED = compile_run(
    small_spec(
        samples=1,
        datasets=(
            DatasetSpec(name="d1", cases=cases(3)),
            DatasetSpec(name="d2", cases=cases(2, prefix="e")),
        ),
        metrics=(MetricSpec(name="exact_match"), MetricSpec(name="numeric_match")),
    )
)
TRIALS = list(plan(COMPILED))


_EVENT = st.one_of(
    st.tuples(st.integers(0, len(TRIALS) - 1), st.integers(0, 4), st.integers(0, 11)).map(
        lambda drawn: trial_events(COMPILED, *drawn)
    ),
    st.just([StageReset(at=5.0, reset_stage=Stage.SCORE, epoch=1)]),
    st.just([RunCompleted(at=6.0, completed_through_stage=Stage.SCORE)]),
)

BREAKDOWNS = [Breakdown(), Breakdown.of(["model"]), Breakdown.of(["dataset", "prompt"])]


def _record(compiled: CompiledRun) -> PlanRecord:
    record = PlanRecord()
    for _ in record.tap(plan(compiled)):
        pass
    return record


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(_EVENT, max_size=6), min_size=1, max_size=8),
    which=st.integers(0, len(BREAKDOWNS) - 1),
)
def test_every_step_reports_as_a_whole_build(batches: list[list[list[Any]]], which: int) -> None:
    by = BREAKDOWNS[which]
    running = RunningReport.of(COMPILED, _record(COMPILED), by)
    assert running is not None
    projection = Projection()
    projection.apply([RunStarted(at=0.0, planned=len(TRIALS))])
    for batch in batches:
        events = [event for group in batch for event in group]
        projection.apply(events)
        running.touch(events)
        state = projection.state()
        assert running.report(state) == build_report(COMPILED, state, None, by)


def test_runs_with_rows_over_samples_are_not_kept() -> None:
    sampled = compile_run(small_spec(samples=2, pass_at_k=(1,)))
    assert RunningReport.of(sampled, None) is None
    plain = compile_run(small_spec(samples=2, parser=ParserSpec(name="number")))
    assert RunningReport.of(plain, None) is not None
