"""The report: failures count as 0 and in `failed`, pending trials stay out of the means."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import themis.core.report
from tests.unit.builders import cases, completed, done, failed, parsed, scored, small_spec
from themis.core.events import RunCompleted, RunStarted
from themis.core.planner import (
    CompiledRun,
    PlanRecord,
    TrialPlan,
    compile_run,
    plan,
    trial_refs,
)
from themis.core.report import Report, ReportRow, build_report, run_status, served_models
from themis.core.spec import DatasetSpec, MetricSpec, ModelSpec, PromptSpec
from themis.core.stages import Stage
from themis.core.state import RunState, project


def _compiled(case_count: int = 4, models: int = 1) -> CompiledRun:
    return compile_run(
        small_spec(
            samples=1,
            datasets=(DatasetSpec(name="d", cases=cases(case_count)),),
            models=tuple(
                ModelSpec(name=f"m{index}", model=f"fake-{index}") for index in range(models)
            ),
            prompts=(PromptSpec(name="p", template="{{ a }} + {{ b }}"),),
            metrics=(MetricSpec(name="exact_match"),),
        )
    )


def _report(compiled: CompiledRun, events: list[Any]) -> tuple[Report, list[TrialPlan]]:
    return build_report(compiled, project(events)), list(plan(compiled))


def _row(report: Report, model: str = "m0", metric: str = "exact_match") -> ReportRow:
    (row,) = [r for r in report.rows if r.model == model and r.metric == metric]
    return row


def test_failed_generations_count_as_zero_and_as_failed() -> None:
    compiled = _compiled()
    trials = list(plan(compiled))
    events = [
        *done(trials[0], 1.0),
        *done(trials[1], 1.0),
        *done(trials[2], 1.0),
        failed(trials[3]),
    ]
    report = build_report(compiled, project(events))
    row = _row(report)
    assert row.mean == pytest.approx(0.75)
    assert row.n == 4
    assert row.failed == 1
    assert row.unparsed == 0
    assert (report.planned, report.scored, report.failed, report.pending) == (4, 3, 1, 0)


def test_pending_trials_stay_out_of_the_means() -> None:
    compiled = _compiled()
    trials = list(plan(compiled))
    events = [*done(trials[0], 1.0), *done(trials[1], 0.0), completed(trials[2])]
    report = build_report(compiled, project(events))
    row = _row(report)
    assert row.mean == pytest.approx(0.5)
    assert row.n == 2
    assert row.failed == 0
    assert (report.planned, report.scored, report.failed, report.pending) == (4, 2, 0, 2)


def test_a_retried_failure_that_succeeded_is_not_failed() -> None:
    compiled = _compiled(case_count=1)
    (trial,) = plan(compiled)
    report = build_report(compiled, project([failed(trial), completed(trial)]))
    assert (report.failed, report.pending) == (0, 1)
    assert _row(report).n == 0


def test_unparsed_answers_are_counted() -> None:
    compiled = _compiled()
    trials = list(plan(compiled))
    events = [
        *done(trials[0], 1.0),
        completed(trials[1], "no idea"),
        parsed(trials[1], None),
        scored(trials[1], {"exact_match": 0.0}),
    ]
    row = _row(build_report(compiled, project(events)))
    assert row.unparsed == 1
    assert row.n == 2
    assert row.mean == pytest.approx(0.5)


def test_a_group_with_only_pending_trials_keeps_its_row() -> None:
    compiled = _compiled(case_count=2, models=2)
    trials = [t for t in plan(compiled) if t.model == "m0"]
    report = build_report(compiled, project([e for t in trials for e in done(t, 1.0)]))
    assert [(r.model, r.n, r.mean) for r in report.rows] == [("m0", 2, 1.0), ("m1", 0, None)]
    assert _row(report, "m1").ci_method == "none"


def test_rows_cover_every_group_and_metric() -> None:
    compiled = compile_run(small_spec())
    report = build_report(compiled, RunState())
    keys = [(r.dataset, r.model, r.prompt, r.metric) for r in report.rows]
    assert keys == [
        ("arith", model, prompt, metric)
        for prompt in ("plain", "sys")
        for model in ("m1", "m2")
        for metric in ("exact_match", "numeric_match")
    ]
    assert report.run_id == compiled.run_id
    assert report.name == "experiment"
    assert (report.planned, report.pending) == (16, 16)


def test_a_metric_missing_from_a_score_counts_as_zero() -> None:
    compiled = compile_run(small_spec(samples=1, models=small_spec().models[:1]))
    trial = next(iter(plan(compiled)))
    report = build_report(compiled, project([*done(trial, 1.0, metrics=("exact_match",))]))
    row = next(r for r in report.rows if r.prompt == trial.prompt and r.metric == "numeric_match")
    assert (row.n, row.mean) == (1, 0.0)


def test_status() -> None:
    compiled = _compiled()
    assert build_report(compiled, RunState()).status == "planned"
    started = [RunStarted(at=0.0, planned=4)]
    assert build_report(compiled, project(started)).status == "incomplete"
    finished = project([*started, RunCompleted(at=1.0, completed_through_stage=Stage.SCORE)])
    report = build_report(compiled, finished)
    assert report.status == run_status(finished) == "completed"
    assert report.completed_through_stage is Stage.SCORE


def test_a_recorded_plan_builds_the_same_report_without_planning_again() -> None:
    compiled = compile_run(
        small_spec(
            samples=2,
            datasets=(
                DatasetSpec(name="d", cases=cases(3)),
                DatasetSpec(name="e", cases=cases(2)),
            ),
            models=(ModelSpec(name="m0", model="fake-0"), ModelSpec(name="m1", model="fake-1")),
            prompts=(
                PromptSpec(name="p", template="{{ a }} + {{ b }}"),
                PromptSpec(name="q", template="{{ b }} - {{ a }}"),
            ),
            metrics=(MetricSpec(name="exact_match"),),
        )
    )
    trials = list(plan(compiled))
    events = [*done(trials[0], 1.0), *done(trials[5], 0.0), failed(trials[7])]
    state = project(events)
    record = PlanRecord()
    assert list(record.tap(plan(compiled))) == trials
    assert record.complete
    assert [ref.trial_key for ref in trial_refs(compiled, record)] == [
        trial.trial_key for trial in trials
    ]
    assert list(trial_refs(compiled, record)) == list(trial_refs(compiled))
    assert build_report(compiled, state, record) == build_report(compiled, state)


def test_a_partly_read_plan_record_is_not_used() -> None:
    compiled = _compiled()
    record = PlanRecord()
    tapped = record.tap(plan(compiled))
    next(tapped)
    assert not record.complete
    record.trial_ids[0] = record.trial_keys[0] = "bogus"  # would show if it were used
    assert list(trial_refs(compiled, record)) == list(trial_refs(compiled))


def test_served_models_without_generations_needs_no_plan() -> None:
    compiled = _compiled(models=2)
    assert served_models(compiled, RunState()) == build_report(compiled, RunState()).served
    trials = list(plan(compiled))
    state = project(list(done(trials[0], 1.0)))
    assert served_models(compiled, state) == build_report(compiled, state).served


@pytest.mark.parametrize(
    ("scores", "method"),
    [
        ([1.0, 0.0, 1.0, 1.0, 0.0, None, 1.0], "wilson"),  # binary, one failed
        ([0.25, 1.0, 0.5, 0.0, 0.75, 1.0, None], "t-cluster"),  # not binary
    ],
)
def test_one_sample_rows_are_estimated_as_over_a_list_per_case(
    scores: list[float | None], method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one value per case and row is kept in an array, not a list per case: the same report
    compiled = _compiled(case_count=len(scores), models=2)
    events: list[Any] = []
    for trial, score in zip(plan(compiled), [*scores, *reversed(scores)], strict=True):
        events += [failed(trial)] if score is None else done(trial, score)
    state = project(events)

    arrays = build_report(compiled, state)
    monkeypatch.setattr(themis.core.report, "_one_value_each", lambda spec, by: False)
    lists = build_report(compiled, state)

    assert arrays == lists
    assert {row.ci_method for row in arrays.rows} == {method}


def test_a_case_id_twice_in_a_dataset_is_one_case_of_the_report() -> None:
    # a spec built in code may repeat a case id: its trials share a place, one case's values
    cases_twice = (*cases(1, prefix="a"), *cases(1, prefix="a"), *cases(1, prefix="b"))
    compiled = attrs.evolve(
        _compiled(),
        spec=attrs.evolve(_compiled().spec, datasets=(DatasetSpec(name="d", cases=cases_twice),)),
    )
    first, _, other = plan(compiled)
    report = build_report(compiled, project([*done(first, 1.0), *done(other, 0.0)]))

    row = _row(report)
    assert (row.mean, row.n, row.ci_method) == (0.5, 3, "wilson-deff")  # a: 1, 1; b: 0
