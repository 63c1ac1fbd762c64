"""The pure inspection views: stage counts, failure reasons, lineage, snapshot, one case."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from tests.unit.builders import completed, done, parsed, scored, small_spec
from themis.core.errors import CaseNotFound
from themis.core.evaluation_view import evaluation_execution
from themis.core.events import GenerationFailed, RunCompleted, RunResumed, RunStarted
from themis.core.inspection import (
    PARSE_ERROR,
    FailureReason,
    RuntimeChange,
    StageCounts,
    Tally,
    execution_state,
    run_progress,
    snapshot_view,
    summarise,
)
from themis.core.planner import compile_run, plan
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.stages import EXECUTED_STAGES, Stage
from themis.core.state import project

COMPILED = compile_run(small_spec())
TRIALS = list(plan(COMPILED))  # 2 cases x 2 prompts x 2 models x 2 samples = 16


def _failure(index: int, kind: str = "server", message: str = "500 Internal Server Error") -> Any:
    return GenerationFailed(
        at=1.0, trial_key=TRIALS[index].trial_key, error_kind=kind, message=message, attempts=3
    )


def _mixed_events() -> list[Any]:
    """Trials 0-9 scored, 10-11 failed to generate, 12 unparsed but scored, 13 generated only."""
    events: list[Any] = [RunStarted(at=0.5, planned=len(TRIALS))]
    for trial in TRIALS[:10]:
        events += done(trial, 1.0)
    events += [
        _failure(10),
        _failure(11, message="500 Internal Server Error\nretry later"),
    ]
    events += [
        completed(TRIALS[12], "no digits here"),
        parsed(TRIALS[12], None),
        scored(TRIALS[12], {"exact_match": 0.0}),
    ]
    events.append(completed(TRIALS[13]))
    return events


def test_an_unstarted_run_is_all_pending() -> None:
    view = execution_state(COMPILED, project([]))

    assert (view.status, view.completed_through_stage, view.planned) == ("planned", None, 16)
    assert view.stages == tuple(StageCounts(stage, 16, 0, 0, 16) for stage in EXECUTED_STAGES)
    assert (view.failures, view.lineage, view.live) == ((), (), None)


def test_stage_counts_follow_each_trials_furthest_fact() -> None:
    view = execution_state(COMPILED, project(_mixed_events()))

    assert view.status == "incomplete"
    assert view.counts(Stage.GENERATE) == StageCounts(Stage.GENERATE, 16, 12, 2, 2)
    # the unparsed answer failed at parse; both generation failures failed upstream of it
    assert view.counts(Stage.PARSE) == StageCounts(Stage.PARSE, 16, 10, 3, 3)
    # an unparsed answer is still scored (as 0), so scored/failed/pending match the report
    assert view.counts(Stage.SCORE) == StageCounts(Stage.SCORE, 16, 11, 2, 3)
    for counts in view.stages:
        assert counts.planned == counts.done + counts.failed + counts.pending


def test_failure_reasons_group_by_kind_and_summarised_message() -> None:
    view = execution_state(COMPILED, project(_mixed_events()))

    assert view.failures == (
        FailureReason(Stage.GENERATE, "server", "500 Internal Server Error", 2),
        FailureReason(Stage.PARSE, PARSE_ERROR, "no number in response", 1),
    )


def test_a_later_success_clears_a_failure_and_reasons_sort_by_stage_then_count() -> None:
    events = [
        _failure(0, "timeout", "call timed out"),
        _failure(1, "rate_limit", "429"),
        _failure(2, "rate_limit", "429"),
        _failure(3, "server", "boom"),
        completed(TRIALS[3]),
    ]

    view = execution_state(COMPILED, project(events))

    assert [(r.kind, r.message, r.count) for r in view.failures] == [
        ("rate_limit", "429", 2),
        ("timeout", "call timed out", 1),
    ]
    assert view.counts(Stage.GENERATE).failed == 3


def test_summarise_keeps_one_short_line() -> None:
    assert summarise("  first   line \n second line") == "first line"
    long = summarise("x" * 500)
    assert len(long) == 120
    assert long.endswith("…")
    assert summarise("") == ""


def test_completion_and_lineage_come_from_the_log() -> None:
    events = [
        *_mixed_events(),
        RunResumed(at=7.0, changes={"max_concurrent_tasks": {"old": 16, "new": 4}}),
        RunResumed(
            at=9.0,
            changes={"progress": {"old": "auto", "new": "off"}, "store_batch_size": {"new": 10}},
        ),
        RunCompleted(at=10.0, completed_through_stage=Stage.GENERATE),
    ]

    view = execution_state(COMPILED, project(events))

    assert (view.status, view.completed_through_stage) == ("completed", Stage.GENERATE)
    assert view.lineage == (
        RuntimeChange(7.0, "max_concurrent_tasks", 16, 4),
        RuntimeChange(9.0, "progress", "auto", "off"),
        RuntimeChange(9.0, "store_batch_size", None, 10),
    )
    progress = run_progress(view)
    assert (progress.stage, progress.done, progress.failed, progress.pending) == (
        Stage.GENERATE,
        12,
        2,
        2,
    )


def test_run_progress_counts_the_last_stage_of_an_unfinished_run() -> None:
    view = execution_state(COMPILED, project(_mixed_events()))

    progress = run_progress(view)
    at_parse = run_progress(view, Stage.PARSE)

    assert (progress.stage, progress.planned, progress.done, progress.pending) == (
        Stage.SCORE,
        16,
        11,
        3,
    )
    assert (at_parse.stage, at_parse.done, at_parse.failed) == (Stage.PARSE, 10, 3)
    assert (progress.run_id, progress.name, progress.status) == (
        COMPILED.run_id,
        COMPILED.spec.name,
        "incomplete",
    )


def test_a_tally_never_reports_negative_pending() -> None:
    stages = Tally(planned=2, generated=2, generation_failed=1, scored=3).stages()

    assert [counts.pending for counts in stages] == [0, 1, 0]


def test_snapshot_view_applies_every_resume_to_the_runtime() -> None:
    snapshot = RunSnapshot(
        run_id=COMPILED.run_id,
        created_at=100.0,
        spec=COMPILED.spec,
        runtime=RuntimeConfig(max_concurrent_tasks=16),
        provenance={"python": "3.11"},
    )
    state = project([RunResumed(at=7.0, changes={"max_concurrent_tasks": {"old": 16, "new": 4}})])

    view = snapshot_view(snapshot, COMPILED, state)

    assert view.identity == COMPILED.identity
    assert (view.run_id, view.created_at, view.provenance) == (
        COMPILED.run_id,
        100.0,
        {"python": "3.11"},
    )
    assert view.runtime["max_concurrent_tasks"] == 4
    assert view.runtime["store_batch_size"] == RuntimeConfig().store_batch_size
    assert view.lineage == (RuntimeChange(7.0, "max_concurrent_tasks", 16, 4),)
    summary = view.summary
    assert [(d.name, d.cases) for d in summary.datasets] == [("arith", 2)]
    assert [(m.name, m.provider, m.model) for m in summary.models] == [
        ("m1", "fake", "fake-1"),
        ("m2", "fake", "fake-2"),
    ]
    assert (summary.prompts, summary.samples, summary.parser, summary.trials) == (
        ("plain", "sys"),
        2,
        "number",
        16,
    )
    assert summary.metrics == ("exact_match", "numeric_match")


def test_evaluation_execution_gathers_every_trial_of_the_case() -> None:
    view = evaluation_execution(COMPILED, project(_mixed_events()), "c1")

    expected_trials = [trial for trial in TRIALS if trial.case_id == "c1"]
    assert view.case_id == "c1"
    assert [trial.trial_id for trial in view.trials] == [t.trial_id for t in expected_trials]
    assert len(view.trials) == 8  # 2 prompts x 2 models x 2 samples
    assert {(t.model, t.prompt, t.sample) for t in view.trials} == {
        (model, prompt, sample)
        for model in ("m1", "m2")
        for prompt in ("plain", "sys")
        for sample in (0, 1)
    }
    for trial, planned in zip(view.trials, expected_trials, strict=True):
        assert trial.trial_key == planned.trial_key  # planned alone, keyed as in the whole plan
        assert trial.messages == planned.request.messages
        assert trial.expected == "3"
    sys_prompt = next(t for t in view.trials if t.prompt == "sys")
    assert [m.role for m in sys_prompt.messages] == ["system", "user"]


def test_a_case_in_two_datasets_shows_its_trials_of_both() -> None:
    spec = small_spec()
    other = attrs.evolve(spec.datasets[0], name="again")
    compiled = compile_run(attrs.evolve(spec, datasets=(spec.datasets[0], other)))

    view = evaluation_execution(compiled, project([]), "c1")

    planned = [(t.trial_id, t.trial_key) for t in plan(compiled) if t.case_id == "c1"]
    assert [(t.trial_id, t.trial_key) for t in view.trials] == planned
    assert {t.dataset for t in view.trials} == {"arith", "again"}


def test_evaluation_execution_attaches_each_recorded_fact() -> None:
    state = project(_mixed_events())
    by_id = {
        trial.trial_id: trial
        for case in ("c0", "c1")
        for trial in evaluation_execution(COMPILED, state, case).trials
    }

    statuses = [by_id[trial.trial_id].status for trial in TRIALS]
    assert statuses == ["scored"] * 10 + ["failed"] * 2 + ["scored", "generated"] + ["pending"] * 2
    first = by_id[TRIALS[0].trial_id]
    assert first.generation is not None
    assert first.generation.text == "42"
    assert first.parse is not None
    assert first.parse.answer == "42"
    assert first.score is not None
    assert dict(first.score.scores) == {"exact_match": 1.0}
    failed = by_id[TRIALS[10].trial_id]
    assert failed.failure is not None
    assert (failed.failure.error_kind, failed.failure.attempts) == ("server", 3)
    assert (failed.generation, failed.parse, failed.score) == (None, None, None)
    unparsed = by_id[TRIALS[12].trial_id]
    assert unparsed.parse is not None
    assert (unparsed.parse.answer, unparsed.parse.error) == (None, "no number in response")


def test_an_unknown_case_names_the_count_and_close_ids() -> None:
    spec = small_spec()
    many = attrs.evolve(
        spec.datasets[0],
        cases=[attrs.evolve(spec.datasets[0].cases[0], id=f"arith-{i:02d}") for i in range(1, 25)],
    )
    compiled = compile_run(attrs.evolve(spec, datasets=[many]))

    with pytest.raises(CaseNotFound) as raised:
        evaluation_execution(compiled, project([]), "arith-1")
    with pytest.raises(CaseNotFound) as unlike:
        evaluation_execution(compiled, project([]), "zzz")

    message = str(raised.value)
    assert message.startswith(f"run {compiled.run_id[:12]} has no case 'arith-1' (24 cases; ")
    assert "did you mean 'arith-" in message
    assert str(unlike.value) == (
        f"run {compiled.run_id[:12]} has no case 'zzz' "
        "(24 cases; e.g. 'arith-01', 'arith-02', 'arith-03')"
    )
