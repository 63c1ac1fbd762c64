"""The reduce stage's pure parts: reducers, group planning, the report's sampled rows."""

from __future__ import annotations

import pytest

from tests.unit.builders import cases, completed, failed, parsed, scored, small_spec
from themis.core.events import (
    ParseCompleted,
    ReductionCompleted,
    RunCompleted,
    ScoreCompleted,
    StageReset,
)
from themis.core.planner import compile_run, plan
from themis.core.reduction import (
    group_id_of,
    pending_groups,
    plan_groups,
    reduce_group,
)
from themis.core.report import build_report
from themis.core.sampling import pass_at_k
from themis.core.spec import (
    DatasetSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
    ReducerSpec,
)
from themis.core.stages import Stage
from themis.core.state import project

NUMBER = ParserSpec(name="number")
EXACT = (MetricSpec(name="exact_match"),)


def _reduce(name: str, texts: list[tuple[int, str]], metric: str | None = None) -> tuple:
    reduced = reduce_group(
        ReducerSpec(name=name, metric=metric),
        NUMBER,
        EXACT,
        "3",
        [(sample, f"key{sample}", text) for sample, text in texts],
    )
    return reduced.sample, reduced.text, dict(reduced.votes)


def test_first_takes_the_lowest_sample_that_answered() -> None:
    assert _reduce("first", [(3, "x 9"), (1, "x 4")]) == (1, "x 4", {})


def test_majority_votes_over_parsed_answers_and_records_the_counts() -> None:
    texts = [(0, "it is 4"), (1, "3"), (2, "= 3"), (3, "no idea"), (4, "3.0")]
    assert _reduce("majority", texts) == (1, "3", {"3": 3, "4": 1})


def test_majority_tie_goes_to_the_answer_of_the_lowest_sample() -> None:
    texts = [(2, "3"), (0, "it is 4"), (1, "3"), (4, "4.0")]
    assert _reduce("majority", texts) == (0, "it is 4", {"3": 2, "4": 2})


def test_majority_without_any_parsed_answer_falls_back_to_the_first_sample() -> None:
    assert _reduce("majority", [(1, "none"), (0, "nothing")]) == (0, "nothing", {})


def test_best_of_takes_the_best_score_with_ties_to_the_lowest_sample() -> None:
    texts = [(0, "4"), (1, "3"), (2, "3"), (3, "5")]
    assert _reduce("best_of", texts, "exact_match") == (1, "3", {})
    assert _reduce("best_of", [(2, "7"), (1, "8")], "exact_match") == (1, "8", {})


def test_no_answered_sample_reduces_to_no_candidate() -> None:
    reduced = reduce_group(ReducerSpec(name="first"), NUMBER, EXACT, "3", [])
    assert (reduced.trial_key, reduced.sample, reduced.text) == (None, None, None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reducer": ReducerSpec(name="best_of")}, "best_of needs metric"),
        ({"reducer": ReducerSpec(name="best_of", metric="bleu")}, "best_of needs metric"),
        ({"reducer": ReducerSpec(name="first", metric="exact_match")}, "only used by best_of"),
        ({"pass_at_k": (1, 3)}, "pass_at_k: k = 3 must be between 1 and samples = 2"),
        ({"majority_at_k": (0,)}, "majority_at_k: k = 0"),
        ({"pass_at_k": (1, 1)}, "k = 1 is listed twice"),
    ],
)
def test_spec_rejects_reduce_settings_it_cannot_honour(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small_spec(**overrides)


def test_reduce_settings_at_their_defaults_keep_the_run_id() -> None:
    assert (
        compile_run(small_spec()).run_id
        == compile_run(small_spec(reducer=None, pass_at_k=(), majority_at_k=())).run_id
    )
    assert compile_run(small_spec(pass_at_k=(1,))).run_id != compile_run(small_spec()).run_id


def _sampled_spec(**overrides: object):
    values = {
        "samples": 3,
        "datasets": (DatasetSpec(name="d", cases=cases(2)),),
        "models": (ModelSpec(name="m", model="fake"),),
        "prompts": (PromptSpec(name="p", template="{{ a }} + {{ b }}"),),
        "metrics": EXACT,
    }
    values.update(overrides)
    return small_spec(**values)


def test_groups_hold_a_cases_consecutive_samples_in_plan_order() -> None:
    compiled = compile_run(_sampled_spec())
    trials = list(plan(compiled))
    groups = list(plan_groups(compiled))
    assert [group.case_id for group in groups] == ["c0", "c1"]
    for group, start in zip(groups, (0, 3), strict=True):
        assert group.group_id == group_id_of("d", group.case_id, "p", "m")
        assert [(m.sample, m.trial_id, m.trial_key) for m in group.members] == [
            (t.sample, t.trial_id, t.trial_key) for t in trials[start : start + 3]
        ]
    assert {group.group_id for group in groups}.isdisjoint(t.trial_id for t in trials)


def test_pending_groups_wait_for_settled_members_and_skip_done_work() -> None:
    compiled = compile_run(_sampled_spec(reducer=ReducerSpec(name="first")))
    trials = list(plan(compiled))
    groups = list(plan_groups(compiled))
    assert list(pending_groups(groups, project([]))) == []
    events = [completed(trials[0]), failed(trials[1]), completed(trials[2])]
    state = project(events)
    (only,) = pending_groups(groups, state)
    assert (only.plan, only.stages) == (groups[0], (Stage.REDUCE, Stage.PARSE, Stage.SCORE))
    (until_reduce,) = pending_groups(groups, state, Stage.REDUCE)
    assert until_reduce.stages == (Stage.REDUCE,)
    gid = groups[0].group_id
    reduction = ReductionCompleted(
        at=1.0, group_id=gid, reducer="first", trial_key=trials[0].trial_key, sample=0, text="42"
    )
    assert [p.stages for p in pending_groups(groups, project([*events, reduction]))] == [
        (Stage.PARSE, Stage.SCORE)
    ]
    finished = [
        *events,
        reduction,
        ParseCompleted(at=1.0, trial_id=gid, trial_key=trials[0].trial_key, answer="42"),
        ScoreCompleted(
            at=1.0, trial_id=gid, trial_key=trials[0].trial_key, scores={"exact_match": 0.0}
        ),
    ]
    assert list(pending_groups(groups, project(finished))) == []


def test_report_shows_pass_at_k_majority_at_k_and_reduced_rows_with_cis() -> None:
    spec = _sampled_spec(reducer=ReducerSpec(name="majority"), pass_at_k=(1, 3), majority_at_k=(3,))
    compiled = compile_run(spec)
    trials = list(plan(compiled))
    # c0: answers 0, 0, 0 with sample 1 right; c1: sample 0 failed, 3, 3 (expected "3").
    outcomes = [("0", 0.0), ("0", 1.0), ("0", 0.0), None, ("3", 1.0), ("3", 1.0)]
    events: list = []
    for trial, outcome in zip(trials, outcomes, strict=True):
        if outcome is None:
            events.append(failed(trial))
            continue
        answer, score = outcome
        events += [
            completed(trial, answer),
            parsed(trial, answer),
            scored(trial, {"exact_match": score}),
        ]
    for group, score in zip(plan_groups(compiled), (0.0, 1.0), strict=True):
        events.append(
            ScoreCompleted(
                at=4.0, trial_id=group.group_id, trial_key="k", scores={"exact_match": score}
            )
        )
    report = build_report(compiled, project(events))
    rows = {row.metric: row for row in report.rows}
    assert list(rows) == [
        "exact_match",
        "pass@1(exact_match)",
        "pass@3(exact_match)",
        "majority@3(exact_match)",
        "majority(exact_match)",
    ]
    expected_pass1 = (pass_at_k(3, 1, 1) + pass_at_k(3, 2, 1)) / 2
    assert rows["pass@1(exact_match)"].mean == pytest.approx(expected_pass1)
    assert rows["pass@3(exact_match)"].mean == 1.0
    assert rows["majority@3(exact_match)"].mean == 0.5  # c0 votes "0" (sample 0 wrong)
    assert rows["majority(exact_match)"].mean == 0.5
    for label, row in rows.items():
        assert row.n == (6 if label == "exact_match" else 2)
        assert row.ci_low is not None
    assert rows["pass@1(exact_match)"].failed == 1


def test_reduce_counts_as_a_stage_only_for_runs_that_reduce() -> None:
    reduction = ReductionCompleted(
        at=1.0, group_id="g", reducer="first", trial_key="k", sample=0, text="3"
    )
    through_score = RunCompleted(at=2.0, completed_through_stage=Stage.SCORE)
    assert project([through_score]).completed_through_stage is Stage.SCORE
    parse_reset = StageReset(at=3.0, reset_stage=Stage.PARSE, epoch=1)
    # Without a reducer, parse is the first voided stage after generate.
    assert project([through_score, parse_reset]).completed_through_stage is Stage.GENERATE
    # A run that reduced keeps its reductions when only parse is replayed.
    reduced = project([reduction, through_score, parse_reset])
    assert reduced.completed_through_stage is Stage.REDUCE
    reduce_reset = StageReset(at=4.0, reset_stage=Stage.REDUCE, epoch=2)
    assert project([reduction, through_score, reduce_reset]).completed_through_stage is (
        Stage.GENERATE
    )
    until_reduce = RunCompleted(at=2.0, completed_through_stage=Stage.REDUCE)
    assert project([until_reduce]).completed_through_stage is Stage.REDUCE
